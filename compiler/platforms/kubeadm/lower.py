"""kubeadm's artifacts: cluster/ and helm/, the node files and patch script, the plan."""

from __future__ import annotations

from compiler.build import Build
from compiler.bundle import Artifact
from compiler.emit import yaml_bytes
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.nodepatch import PATCH_SCRIPT, patch_context, patch_script
from compiler.platforms.kubeadm.kubeadm_config import kubeadm_config
from compiler.platforms.kubeadm.settings import settings


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
    script = patch_script(patch_context(resolved, change, config))
    return [
        *(Artifact(f"node/{name}", content) for name, content in sorted(config.items())),
        Artifact(f"node/{PATCH_SCRIPT}", script, executable=True),
        Artifact("node/kubeadm-config.yaml", yaml_bytes(kubeadm_config(resolved, change))),
    ]


def plan_artifacts(built: Build) -> list[Artifact]:
    resolved = built.resolved
    paths = resolved.paths
    patch = (
        f"run {PATCH_SCRIPT} as root: install the policy and webhook kubeconfig into "
        f"{paths.config_dir}, patch {paths.manifest}, wait until the apiserver "
        "is ready, restore the previous manifest if it is not"
    )
    hosts = [common.SshHost(cp.host, cp.port, cp.user) for cp in settings(resolved.site).control_planes]
    extra = {"patched_file": "manifest"}  # a constant word, in the script's own message
    return common.ssh_plan_artifacts(
        built, hosts, PATCH_SCRIPT, patch, "platforms/kubeadm/templates/apply.sh.j2", extra
    )
