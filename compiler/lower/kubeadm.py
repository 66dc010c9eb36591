"""kubeadm: static-pod kube-apiserver on each control-plane host, reached over ssh."""

from __future__ import annotations

import hashlib
from typing import Any

from compiler import __version__
from compiler.artifacts.apiserver import VOLUME_PREFIX, ApiserverChange
from compiler.artifacts.kubeadm_config import kubeadm_config
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.emit import yaml_bytes
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.resolve import Resolved
from compiler.templates import render_template

PATCH_SCRIPT = "apiserver-config.patch.sh"


def lower(built: Build) -> list[Artifact]:
    out: list[Artifact] = []
    out += cluster_artifacts(built)
    out += node_artifacts(built)
    out += plan_artifacts(built)
    return out


def node_artifacts(built: Build) -> list[Artifact]:
    resolved = built.resolved
    change = built.change
    config = built.node_files
    context = patch_context(resolved, change, config)
    script = render_template("kubeadm/templates/apiserver-config.patch.sh.j2", context)
    return [
        *(Artifact(f"node/{name}", content) for name, content in sorted(config.items())),
        Artifact(f"node/{PATCH_SCRIPT}", script.encode("utf-8"), executable=True),
        Artifact("node/kubeadm-config.yaml", yaml_bytes(kubeadm_config(resolved, change))),
    ]


def patch_context(resolved: Resolved, change: ApiserverChange, config: dict[str, bytes]) -> dict[str, Any]:
    """Everything the patch script template needs; every value reaches it through ``shq``."""
    digest = hashlib.sha256()
    for name in sorted(config):
        digest.update(name.encode() + b"\0" + config[name] + b"\0")
    paths = resolved.paths
    return {
        "site": resolved.name,
        "compiler_version": __version__,
        "manifest_path": paths.manifest,
        "config_dir": paths.config_dir,
        "config_files": sorted(config),
        "config_digest": digest.hexdigest(),
        "backup_dir": paths.backup_dir,
        "flags": [{"name": name, "value": value} for name, value in change.flags],
        "owned_prefixes": list(change.owned_prefixes),
        "list_items": [{"name": name, "item": item} for name, item in change.list_items],
        "volumes": [
            {
                "name": v.name,
                "host_path": v.host_path,
                "mount_path": v.mount_path,
                "read_only": v.read_only,
                "type": v.type,
            }
            for v in change.volumes
        ],
        "owned_volume_prefix": VOLUME_PREFIX,
        "wait_timeout": int(resolved.platform.get("patch", {}).get("waitTimeout", 300)),
    }


def plan_artifacts(built: Build) -> list[Artifact]:
    resolved = built.resolved
    block = resolved.site.spec.platform
    assert block.type == "kubeadm"
    hosts = [
        {
            "host": cp.host,
            "port": cp.port,
            "user": cp.user,
            "target": f"{cp.user}@{cp.host}",
            # scp reads host:path, so an IPv6 address needs brackets there
            "copy_target": f"{cp.user}@[{cp.host}]" if ":" in cp.host else f"{cp.user}@{cp.host}",
            "sudo": "" if cp.user == "root" else "sudo -n",
        }
        for cp in block.kubeadm.control_planes
    ]
    files = [PATCH_SCRIPT, *sorted(built.node_files)]
    spec = {
        "platform": "kubeadm",
        "transport": "ssh",
        "rollout": {"order": "serial", "stopOnFailure": True},
        "files": [f"node/{name}" for name in files],
        "hosts": [{k: h[k] for k in ("host", "port", "user")} for h in hosts],
        "steps": [
            {"action": "stage", "does": "make a fresh temp dir on the host and copy the files there"},
            {
                "action": "patch",
                "does": f"run {PATCH_SCRIPT} as root: install the policy and webhook kubeconfig into "
                f"{resolved.paths.config_dir}, patch {resolved.paths.manifest}, wait until the apiserver "
                "is ready, restore the previous manifest if it is not",
            },
            {"action": "cleanup", "does": "remove the temp dir"},
            {"action": "gate", "does": "stop the rollout when the patch step failed"},
        ],
    }
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "files": files,
        "hosts": hosts,
        "staging_dir": resolved.paths.staging_dir,
        **common.cluster_context(resolved),
    }
    script = render_template("kubeadm/templates/apply.sh.j2", context)
    return common.plan_artifacts(built, spec, script)
