"""platform.yaml of pks, typed."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from compiler.platform import DataModel, PathDefaults, PlatformData, load_data


class PksPaths(PathDefaults):
    bpm_config: str  # the job's bpm.yml: what the patch script edits under bpm
    bpm_log_path: str  # the audit log TKGI >= 1.14 writes itself


class Bosh(DataModel):
    instance_group: str
    deployment_prefix: str
    runtime_config_name: str
    os_conf: dict[str, str]


class Bpm(DataModel):
    visible: list[str]  # what kube-apiserver sees inside its bpm sandbox (read-only)
    writable: list[str]  # what bpm lets the kube-apiserver job write


class PksData(PlatformData):
    paths: PksPaths
    bosh: Bosh
    bpm: Bpm


@cache
def data() -> PksData:
    return load_data(Path(__file__).parent, PksData)
