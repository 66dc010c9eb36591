"""minikube: node files synced from $MINIKUBE_HOME/files, apiserver flags through
`minikube start --extra-config`, the profile restarted to apply them.

The folder: settings.py (the spec block), platform.yaml (defaults), lint-rules.yaml
(AUD026), lower.py (every artifact), transport.py (`minikube ssh`),
restart.py (the node step of auditc apply), templates/apply.sh.j2 (the plan as a
script).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.platform import LintCheck, NodePaths, PlatformData, default_node_paths, load_data
from compiler.platforms.minikube import lower
from compiler.platforms.minikube.restart import restart_profile
from compiler.platforms.minikube.settings import MinikubePlatform, settings
from compiler.platforms.minikube.transport import MinikubeSsh

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.platform import CloudRead, CloudSetting, PullSource, Restart
    from compiler.resolve import Resolved
    from compiler.spec.model import Site
    from compiler.transport import NodeAccess, NodeShell, Transport
    from compiler.versions import Version


@cache
def _data() -> PlatformData:
    return load_data(Path(__file__).parent, PlatformData)


class Minikube:
    name = "minikube"
    block = MinikubePlatform
    has_sinks = False
    lint_checks: Mapping[str, LintCheck] = {}

    @property
    def data(self) -> PlatformData:
        return _data()

    def node_paths(self, site: Site, written_log: bool) -> NodePaths:
        # --extra-config adds no volumes: the files sit under /etc/ssl/certs, which the
        # apiserver mounts already, and the log goes to stdout
        paths = default_node_paths(self.data, site, manifest=None, config_dir=None)
        return replace(paths, adds_volumes=False)

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        return None  # the apiservers send to Falco's webhook receiver

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        version = site.spec.kubernetes.version
        if version.count(".") == 1:
            checks.warn(
                ("spec", "kubernetes", "version"),
                f"minikube starts its own default Kubernetes unless given a full version; write "
                f'"{version}.P" so it runs the version the flags were checked against',
                code="AUD026",
            )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        return []

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        return []

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)

    def hosts(self, resolved: Resolved) -> list[str] | None:
        return [MinikubeSsh(settings(resolved.site).profile).name]

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        return [MinikubeSsh(settings(resolved.site).profile)]

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell] | None:
        return None  # no patch script here: the node changes by a restart (restart_host)

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        return ()

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        profile = settings(resolved.site).profile
        done = restart_profile(profile, resolved.paths.config_dir, restart)
        return done.ok, done.touched, done.detail

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        return {}


MINIKUBE = Minikube()
