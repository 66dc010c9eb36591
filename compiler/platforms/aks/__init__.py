"""AKS: a managed control plane. No node auditc can change and no webhook: a diagnostic
setting sends the cluster's audit log category to an Event Hub, and one Falco pulls it
with the k8saudit-aks plugin, its place kept in a Blob container; the two connection
strings come from Secrets through Falco's environment.

The folder: settings.py (the spec block), platform.yaml (the plugin, its pinned artifacts,
the environment variable names), lint-rules.yaml (AUD034), lower.py (every artifact, the
az steps), templates/apply.sh.j2 (the plan as a script).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.errors import UserError
from compiler.platform import (
    CloudRead,
    CloudSetting,
    DataModel,
    LintCheck,
    NodePaths,
    NoNodes,
    PlatformData,
    PullPlugin,
    PullSource,
    load_data,
    pullers,
)
from compiler.platforms.aks import lower
from compiler.platforms.aks.settings import AksPlatform, settings
from compiler.versions import Version

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.lint.checks import Context
    from compiler.resolve import Resolved
    from compiler.spec.model import Site


# a diagnostic setting's other destinations (the Azure Monitor diagnostic settings API)
OTHER_DESTINATIONS = (
    ("workspaceId", "workspace"),
    ("storageAccountId", "storage account"),
    ("marketplacePartnerId", "partner"),
)


class AksEnv(DataModel):
    event_hub: str
    checkpoint: str


class AksPlugin(PullPlugin):
    env: AksEnv


class AksData(PlatformData):
    plugin: AksPlugin


@cache
def data() -> AksData:
    return load_data(Path(__file__).parent, AksData)


def _replicas(ctx: Context) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """AUD034: replicas share the partitions, but a partition that moves is read again."""
    pods = pullers(ctx.values)
    if pods is not None:
        effect = (
            "nothing reads the hub"
            if pods == "no pod"
            else "a partition moving between them is read again from its last checkpoint"
        )
        yield ("spec", "falco", "values", "controller"), f"{pods} reading one event hub: {effect}"


def _json(read: CloudRead, argv: list[str]) -> Any:
    text = read(argv)
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        raise UserError(f"{' '.join(argv[:4])}: not JSON: {text[:80]!r}") from None


def _setting_live(found: Any) -> str:
    """A diagnostic setting as `az monitor diagnostic-settings list` shows it, in the words
    the rendered one is named with; "absent" when there is none."""
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return "absent"
    entry = found[0]
    enabled = sorted(
        str(log.get("category"))
        for log in entry.get("logs") or []
        if isinstance(log, dict) and log.get("enabled") and log.get("category")
    )
    rule = str(entry.get("eventHubAuthorizationRuleId") or "none")
    shown = f"{'+'.join(enabled) or 'no category'} to {entry.get('eventHubName') or 'no hub'} via {rule}"
    # what else the setting does: create replaces the setting whole, so apply would drop it
    also = [f"{what} {entry[key]}" for key, what in OTHER_DESTINATIONS if entry.get(key)]
    metrics = sorted(
        str(m.get("category")) for m in entry.get("metrics") or [] if isinstance(m, dict) and m.get("enabled")
    )
    if metrics:
        also.append(f"metrics {'+'.join(metrics)}")
    return shown + (f", also {', '.join(also)}" if also else "")


class Aks(NoNodes):
    name = "aks"
    block = AksPlatform
    lint_checks: Mapping[str, LintCheck] = {"AUD034": _replicas}

    @property
    def data(self) -> PlatformData:
        return data()

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        own = settings(site)
        plugin = data().plugin
        row = plugin.required(target.version, "AKS", checks)
        if row is None:
            return None
        env = plugin.env
        hub, checkpoint = own.event_hub, own.checkpoint
        return PullSource(
            plugin=plugin.name,
            library=plugin.library,
            init_config={
                "event_hub_namespace_connection_string": f"${{{env.event_hub}}}",
                "event_hub_name": hub.name,
                "blob_storage_connection_string": f"${{{env.checkpoint}}}",
                "blob_storage_container_name": checkpoint.container,
            },
            open_params=own.cluster,  # the plugin reads none (its README); the cluster, for people
            artifact=f"{plugin.name}:{row.plugin}",
            rules=row.rules,
            json=row.json_,
            service_account_annotations={},
            identity=None,
            where=f"Event Hub {hub.namespace}/{hub.name}",
            secret_env={
                env.event_hub: (hub.connection_secret.name, hub.connection_secret.key),
                env.checkpoint: (checkpoint.connection_secret.name, checkpoint.connection_secret.key),
            },
        )

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        if site.spec.falco.syscalls:
            checks.error(
                ("spec", "falco", "syscalls"),
                "not on AKS here: the audit Falco is one pod reading an event hub, "
                "syscalls need one per node",
            )
        extra = site.spec.falco.values.get("extra")
        if isinstance(extra, dict) and "env" in extra:
            checks.error(
                ("spec", "falco", "values", "extra", "env"),
                "auditc writes extra.env from spec.platform.aks (the connection strings' Secrets): "
                "a list here would replace it",
            )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        own = settings(resolved.site)
        steps = {str(s["action"]): [str(a) for a in s["command"]] for s in lower.az_steps(resolved)}
        hub, container = own.event_hub, own.checkpoint.container
        where = f"aks {own.resource_group}/{own.cluster}"
        has_hub = hub.name.lower() in read(steps["check-event-hub"]).lower().split()  # names ignore case
        has_container = read(steps["check-checkpoint-container"]).strip() == "true"
        wanted = f"{own.category} to {hub.name} via {lower.rule_id(own)}"
        live = _setting_live(_json(read, steps["check-diagnostic-setting"]))
        # Azure resource ids compare without case (ARM returns resource groups lowercased)
        live = wanted if live.lower() == wanted.lower() else live
        return [
            CloudSetting(
                f"{where}: event hub {hub.namespace}/{hub.name}",
                "present",
                "present" if has_hub else "absent",
                ("create-event-hub",),
            ),
            CloudSetting(
                f"{where}: checkpoint container {own.checkpoint.storage_account}/{container}",
                "present",
                "present" if has_container else "absent",
                ("create-checkpoint-container",),
            ),
            CloudSetting(
                f"{where}: diagnostic setting {own.diagnostic_setting}", wanted, live, ("diagnostic-setting",)
            ),
        ]

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)


AKS = Aks()
