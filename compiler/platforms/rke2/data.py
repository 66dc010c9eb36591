"""platform.yaml of RKE2, typed."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from compiler.platform import PlatformData, load_data


class Rke2Data(PlatformData):
    since: str  # the oldest Kubernetes minor release RKE2 has drop-ins and `key+:` in
    pod_manifest: str  # where RKE2 writes kube-apiserver's static pod


@cache
def data() -> Rke2Data:
    return load_data(Path(__file__).parent, Rke2Data)
