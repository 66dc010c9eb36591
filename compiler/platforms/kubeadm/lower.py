"""kubeadm's artifacts: cluster/ and helm/, the node files and patch script, the plan."""

from __future__ import annotations

from compiler import __version__
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.emit import yaml_bytes
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.nodepatch import PATCH_SCRIPT, patch_context, patch_script
from compiler.platforms.kubeadm.data import data
from compiler.platforms.kubeadm.kubeadm_config import kubeadm_config
from compiler.platforms.kubeadm.settings import settings
from compiler.templates import render_template


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
        for cp in settings(resolved.site).control_planes
    ]
    files = [PATCH_SCRIPT, *sorted(built.node_files)]
    spec = {
        "platform": resolved.platform.name,
        "transport": data().transport,
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
        "patched_file": "manifest",  # a constant word, in the script's own message
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/kubeadm/templates/apply.sh.j2", context)
    return common.plan_artifacts(built, spec, script)
