"""RKE2's artifacts: cluster/ and helm/, the node files (the policy, the webhook
kubeconfig, auditc's own RKE2 drop-in and the node script that installs them and restarts
rke2-server), and the plan: Falco first, then the servers one at a time over ssh."""

from __future__ import annotations

import posixpath

from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.nodepatch import PATCH_SCRIPT, dropin
from compiler.nodepatch.dropin import DropInHost
from compiler.platforms.rke2.data import data
from compiler.platforms.rke2.settings import settings
from compiler.resolve import Resolved


def lower(built: Build) -> list[Artifact]:
    return [*cluster_artifacts(built), *node_artifacts(built), *plan_artifacts(built)]


def host(resolved: Resolved) -> DropInHost:
    own = settings(resolved.site)
    return DropInHost(
        product="RKE2",
        service=own.service,
        service_field="spec.platform.rke2.service",
        config_file=own.config_file,
        config_env="RKE2_CONFIG_FILE",
        # RKE2's own kubectl with its admin kubeconfig (RKE2 docs, cluster access)
        ready_bin="/var/lib/rancher/rke2/bin/kubectl",
        ready_args=("--kubeconfig", "/etc/rancher/rke2/rke2.yaml", "get", "--raw=/readyz"),
        pod_manifest=data().pod_manifest,
        config_warnings=(
            (
                "^[\"']?profile[\"']?[[:space:]]*:",
                "sets a profile: its audit policy (which logs nothing) gives way to the drop-in's "
                "audit-policy-file, auditc's policy",
            ),
            (
                "^[\"']?audit-policy-file[\"']?[[:space:]]*:",
                "sets audit-policy-file: the drop-in's, read later, wins",
            ),
        ),
    )


def node_artifacts(built: Build) -> list[Artifact]:
    resolved = built.resolved
    paths = resolved.paths
    about = (
        "RKE2 reads this drop-in after the config file and the drop-ins that sort\n"
        "# before it: its own audit-policy-file (RKE2 then adds the policy flag and its log\n"
        "# defaults) and the other audit flags appended to kube-apiserver-arg (the + suffix)."
    )
    drop_in = dropin.body(built, about, {"audit-policy-file": paths.policy_file}, skip=("audit-policy-file",))
    script = dropin.script(built, host(resolved), drop_in)
    return [
        *(Artifact(f"node/{name}", content) for name, content in sorted(built.node_files.items())),
        Artifact(f"node/{posixpath.basename(paths.manifest)}", drop_in),
        Artifact(f"node/{PATCH_SCRIPT}", script, executable=True),
    ]


def plan_artifacts(built: Build) -> list[Artifact]:
    own = settings(built.resolved.site)
    hosts = [common.SshHost(s.host, s.port, s.user) for s in own.servers]
    template = "platforms/rke2/templates/apply.sh.j2"
    extra = {"patched_file": "drop-in"}  # a constant word, in the script's own message
    return common.ssh_plan_artifacts(
        built, hosts, PATCH_SCRIPT, dropin.patch_does(built, own.service), template, extra
    )
