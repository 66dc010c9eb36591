"""kubeadm: a static-pod kube-apiserver on each control-plane host, changed over ssh.

The folder: settings.py (the spec block), platform.yaml and data.py (defaults, the
kubeadm config API by Kubernetes version), lower.py (every artifact), kubeadm_config.py
(node/kubeadm-config.yaml), templates/apply.sh.j2 (the plan as a script).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from compiler.platform import LintCheck, NodePaths, default_node_paths
from compiler.platforms.kubeadm import lower
from compiler.platforms.kubeadm.data import KubeadmData, data
from compiler.platforms.kubeadm.settings import KubeadmPlatform, settings
from compiler.transport import NodeAccess, NodeShell, Transport, host_shells

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.platform import CloudRead, CloudSetting, PullSource, Restart
    from compiler.resolve import Resolved
    from compiler.spec.model import Site
    from compiler.versions import Version


class Kubeadm:
    name = "kubeadm"
    block = KubeadmPlatform
    has_sinks = False
    lint_checks: Mapping[str, LintCheck] = {}

    @property
    def data(self) -> KubeadmData:
        return data()

    def node_paths(self, site: Site, written_log: bool) -> NodePaths:
        own = settings(site)
        return default_node_paths(self.data, site, manifest=own.manifest_path, config_dir=own.config_dir)

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        return None  # the apiservers send to Falco's webhook receiver

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        pass  # the generic node path checks cover a static pod

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        return []

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        return []

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)

    def hosts(self, resolved: Resolved) -> list[str] | None:
        return [cp.host for cp in settings(resolved.site).control_planes]

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        return list(self.shells(resolved, access))

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell]:
        return host_shells(settings(resolved.site).control_planes, access)

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        return ()

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        return None

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        return {}


KUBEADM = Kubeadm()
