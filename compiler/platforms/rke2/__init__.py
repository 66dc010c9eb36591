"""RKE2: kube-apiserver as a static pod RKE2 writes from its config file and drop-ins on
each server node; auditc writes a drop-in of its own (the policy through RKE2's own
`audit-policy-file`, the webhook flags appended to kube-apiserver-arg) and restarts
rke2-server over ssh, one server at a time.

The folder: settings.py (the spec block), platform.yaml and data.py (paths, the pod
manifest, the oldest release with drop-ins), lower.py (every artifact), templates/apply.sh.j2. The node
script is compiler/nodepatch/drop-in.sh.j2, shared with the other drop-in platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from compiler.platform import LintCheck, NodePaths, PlatformData
from compiler.platforms.rke2 import lower
from compiler.platforms.rke2.data import data
from compiler.platforms.rke2.settings import Rke2Platform, settings
from compiler.transport import NodeAccess, NodeShell, Transport, host_shells
from compiler.versions import Version

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.platform import CloudRead, CloudSetting, PullSource, Restart
    from compiler.resolve import Resolved
    from compiler.spec.model import Site


class Rke2:
    name = "rke2"
    block = Rke2Platform
    has_sinks = False
    lint_checks: Mapping[str, LintCheck] = {}

    @property
    def data(self) -> PlatformData:
        return data()

    def node_paths(self, site: Site, written_log: bool) -> NodePaths:
        own = settings(site)
        defaults = data().paths
        assert defaults is not None
        log = site.spec.audit.log
        drop_in = f"{own.config_file}.d/{defaults.manifest.rsplit('/', 1)[-1]}"
        return NodePaths(
            manifest=drop_in,
            config_dir=own.config_dir or defaults.config_dir,
            log_path=(log.path or defaults.log_path) if log.enabled else None,
            backup_dir=defaults.backup_dir,
            staging_dir=defaults.staging_dir,
            manifest_format="drop-in",
            adds_volumes=False,  # RKE2 mounts every file a flag names, and the log's directory
        )

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        return None  # the apiservers send to Falco's webhook receiver

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        since = Version.parse(data().since)
        if kube < since:
            checks.error(
                ("spec", "kubernetes", "version"),
                f"RKE2 before {since} has no config drop-ins or `kube-apiserver-arg+` "
                f"(this site runs {kube})",
            )
        if site.spec.audit.dynamic:
            checks.error(
                ("spec", "audit", "dynamic"), "not on RKE2: dynamic auditing ended in Kubernetes 1.19"
            )
        if paths is None:
            return
        # RKE2's kubelet runs every file in the pod manifests directory as a static pod
        manifests = data().pod_manifest.rsplit("/", 1)[0]
        inside = [
            (("spec", "platform", "rke2", "configDir"), paths.config_dir),
            (("spec", "audit", "log", "path"), paths.log_dir or ""),
        ]
        for field, path in inside:
            if path == manifests or path.startswith(manifests + "/"):
                checks.error(
                    field, f"must not be inside {manifests}: the kubelet runs every file there as a pod"
                )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        return []

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        return []

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)

    def hosts(self, resolved: Resolved) -> list[str] | None:
        return [server.host for server in settings(resolved.site).servers]

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        return list(self.shells(resolved, access))

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell]:
        return host_shells(settings(resolved.site).servers, access)

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        return ()

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        return None

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        return {}


RKE2 = Rke2()
