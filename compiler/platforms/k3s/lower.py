"""k3s's artifacts: cluster/ and helm/, the node files (the policy, the webhook
kubeconfig, auditc's own k3s drop-in and the node script that installs them and restarts
k3s), and the plan: Falco first, then the servers one at a time over ssh."""

from __future__ import annotations

import posixpath

from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.nodepatch import PATCH_SCRIPT, dropin
from compiler.nodepatch.dropin import DropInHost
from compiler.platforms.k3s.settings import settings
from compiler.resolve import Resolved


def lower(built: Build) -> list[Artifact]:
    return [*cluster_artifacts(built), *node_artifacts(built), *plan_artifacts(built)]


def host(resolved: Resolved) -> DropInHost:
    own = settings(resolved.site)
    return DropInHost(
        product="k3s",
        service=own.service,
        service_field="spec.platform.k3s.service",
        config_file=own.config_file,
        config_env="K3S_CONFIG_FILE",
        # k3s's own kubectl with its admin kubeconfig: k3s turns anonymous auth off, so a
        # bare /readyz is refused; the install script puts k3s in /usr/local/bin
        ready_bin="/usr/local/bin/k3s",
        ready_args=("kubectl", "get", "--raw=/readyz"),
        ready_on_path="k3s",
    )


def node_artifacts(built: Build) -> list[Artifact]:
    resolved = built.resolved
    about = (
        "k3s reads this drop-in after the config file and the drop-ins that sort\n"
        "# before it, and appends these kube-apiserver flags to theirs (the + suffix)."
    )
    drop_in = dropin.body(built, about)
    script = dropin.script(built, host(resolved), drop_in)
    return [
        *(Artifact(f"node/{name}", content) for name, content in sorted(built.node_files.items())),
        Artifact(f"node/{posixpath.basename(resolved.paths.manifest)}", drop_in),
        Artifact(f"node/{PATCH_SCRIPT}", script, executable=True),
    ]


def plan_artifacts(built: Build) -> list[Artifact]:
    own = settings(built.resolved.site)
    hosts = [common.SshHost(s.host, s.port, s.user) for s in own.servers]
    template = "platforms/k3s/templates/apply.sh.j2"
    extra = {"patched_file": "drop-in"}  # a constant word, in the script's own message
    return common.ssh_plan_artifacts(
        built, hosts, PATCH_SCRIPT, dropin.patch_does(built, own.service), template, extra
    )
