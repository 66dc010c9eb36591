"""k3s: kube-apiserver inside the `k3s server` process on each server node, configured by
k3s's config file and drop-ins; auditc writes a drop-in of its own and restarts the unit
over ssh, one server at a time.

The folder: settings.py (the spec block), platform.yaml (paths, the oldest release with
drop-ins and the `+` key suffix), lower.py (every artifact), templates/node.sh.j2 (the
node script, node/apiserver-config.patch.sh: the same options and exit codes as the
static-pod patch script, so plan and apply run it the same way), templates/apply.sh.j2.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.platform import LintCheck, NodePaths, PlatformData, load_data
from compiler.platforms.k3s import lower
from compiler.platforms.k3s.settings import K3sPlatform, settings
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


class K3sData(PlatformData):
    since: str  # the oldest Kubernetes minor release k3s has drop-ins and `key+:` in


@cache
def data() -> K3sData:
    return load_data(Path(__file__).parent, K3sData)


class K3s:
    name = "k3s"
    block = K3sPlatform
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
            adds_volumes=False,  # one process on the host: it reads any path, nothing to mount
        )

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        return None  # the apiservers send to Falco's webhook receiver

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        since = Version.parse(data().since)
        if kube < since:
            checks.error(
                ("spec", "kubernetes", "version"),
                f"k3s before {since} has no config drop-ins or `kube-apiserver-arg+` (this site runs {kube})",
            )
        if site.spec.audit.dynamic:
            checks.error(
                ("spec", "audit", "dynamic"), "not on k3s: dynamic auditing ended in Kubernetes 1.19"
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


K3S = K3s()
