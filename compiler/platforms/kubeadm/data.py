"""platform.yaml of kubeadm, typed."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from compiler.platform import DataModel, PlatformData, load_data


class ConfigApi(DataModel):
    """The ClusterConfiguration API a range of Kubernetes versions reads."""

    since: str = Field(alias="from")
    until: str | None = None
    api_version: str
    extra_args: Literal["map", "list"]  # extraArgs as a map (up to v1beta3) or a name/value list
    source: str


class KubeadmData(PlatformData):
    kubeadm_config: list[ConfigApi]


@cache
def data() -> KubeadmData:
    return load_data(Path(__file__).parent, KubeadmData)
