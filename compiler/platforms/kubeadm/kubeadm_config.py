"""node/kubeadm-config.yaml: the same apiserver change as a kubeadm ClusterConfiguration.

Hand edits to the static pod manifest are lost on ``kubeadm upgrade``; this fragment,
merged into the cluster's ClusterConfiguration, keeps them. The API version and the
shape of extraArgs follow the target Kubernetes version (map up to v1beta3, a list of
name/value pairs from v1beta4).
"""

from __future__ import annotations

from typing import Any

from compiler.artifacts.apiserver import ApiserverChange
from compiler.platforms.kubeadm.data import data
from compiler.resolve import Resolved
from compiler.versions import Version, in_range


def kubeadm_config_api(version: Version) -> tuple[str, str]:
    """(apiVersion, extraArgs shape 'map' or 'list') of kubeadm's ClusterConfiguration."""
    for entry in data().kubeadm_config:
        if in_range(version, {"from": entry.since, "until": entry.until}):
            return entry.api_version, entry.extra_args
    raise LookupError(f"no kubeadm config API known for Kubernetes {version}")


def kubeadm_config(resolved: Resolved, change: ApiserverChange) -> dict[str, Any]:
    api_version, shape = kubeadm_config_api(resolved.kube)
    args = dict(change.flags)
    for name, item in change.list_items:
        args[name] = f"{args[name]},{item}" if name in args else item
    extra_args: Any
    if shape == "list":
        extra_args = [{"name": name, "value": value} for name, value in sorted(args.items())]
    else:
        extra_args = dict(sorted(args.items()))
    volumes = [
        {
            "name": v.name,
            "hostPath": v.host_path,
            "mountPath": v.mount_path,
            "readOnly": v.read_only,
            "pathType": v.type,
        }
        for v in change.volumes
    ]
    api_server: dict[str, Any] = {"extraArgs": extra_args}
    if volumes:
        api_server["extraVolumes"] = volumes
    return {"apiVersion": api_version, "kind": "ClusterConfiguration", "apiServer": api_server}
