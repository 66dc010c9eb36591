"""VMware PKS / TKGI: BOSH-managed masters, changed with `bosh scp` / `bosh ssh`, one at a
time; kube-apiserver configured by the job's bpm.yml (the TKGI layout) or a static pod.

The folder: settings.py (the spec block), platform.yaml and data.py (defaults, BOSH
names, what bpm lets the job see and write), lint.py and lint-rules.yaml (AUD012 ..
AUD014), sinks.py (cluster/sinks.yaml from spec.sinks), lower.py (every artifact),
transport.py (`bosh ssh`, `bosh scp`), templates/ (apply.sh, the BOSH pre-start hook).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from compiler.errors import UserError
from compiler.platform import LintCheck, NodePaths, default_node_paths
from compiler.platforms.pks import lint, lower
from compiler.platforms.pks.data import PksData, data
from compiler.platforms.pks.settings import PksPlatform, settings
from compiler.platforms.pks.sinks import sink_objects
from compiler.platforms.pks.transport import BoshShell, bosh_masters

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


def under_bpm(site: Site) -> bool:
    """kube-apiserver runs under bpm (TKGI's layout): configured by bpm.yml, not a manifest."""
    return settings(site).apiserver_config == "bpm"


class Pks:
    name = "pks"
    block = PksPlatform
    has_sinks = True
    lint_checks: Mapping[str, LintCheck] = lint.CHECKS

    @property
    def data(self) -> PksData:
        return data()

    def node_paths(self, site: Site, written_log: bool) -> NodePaths:
        paths = default_node_paths(self.data, site, manifest=None, config_dir=settings(site).config_dir)
        if not under_bpm(site):
            return paths
        log = site.spec.audit.log
        log_path = paths.log_path
        if not written_log:
            log_path = None  # TKGI writes its own audit log; its flags are left alone
        elif log.enabled and not log.path:
            log_path = self.data.paths.bpm_log_path
        return replace(
            paths,
            manifest=self.data.paths.bpm_config,  # the file the patch script edits
            log_path=log_path,
            manifest_format="bpm",
            platform_log=not written_log,
        )

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        return None  # the apiservers send to Falco's webhook receiver

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        if paths is None or paths.manifest_format != "bpm":
            return
        visible = self.data.bpm.visible
        if not any(
            paths.config_dir == v or paths.config_dir.startswith(v.rstrip("/") + "/") for v in visible
        ):
            checks.error(
                ("spec", "platform", "pks", "configDir"),
                f"kube-apiserver cannot see {paths.config_dir} inside its bpm sandbox; "
                f"use a directory under {' or '.join(visible)}",
            )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        return []

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        if not resolved.site.spec.sinks:
            return []
        return [("sinks.yaml", sink_objects(resolved))]

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)

    def hosts(self, resolved: Resolved) -> list[str] | None:
        return None  # the masters are found at run time, through the PKS and BOSH CLIs

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        return list(self.shells(resolved, access))

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell]:
        bosh = self.data.bosh
        deployment, masters = bosh_masters(
            settings(resolved.site).cluster, bosh.deployment_prefix, bosh.instance_group
        )
        if not masters:
            raise UserError(f"no {bosh.instance_group} instances in deployment {deployment}")
        return [BoshShell(deployment, master, access.root_of(master)) for master in masters]

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        return ("--mode", "bpm" if settings(resolved.site).apiserver_config == "bpm" else "static-pod")

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        return None

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        deployments = {shell.deployment for shell in shells if isinstance(shell, BoshShell)}
        return {"<deployment>": deployments.pop()} if len(deployments) == 1 else {}


PKS = Pks()
