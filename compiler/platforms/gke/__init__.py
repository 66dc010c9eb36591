"""GKE: a managed control plane. No node auditc can change and no webhook: Google writes the
audit log to Cloud Logging, a sink routes it to Pub/Sub and one Falco pulls it with the
k8saudit-gke plugin, as a Google service account (Workload Identity).

The folder: settings.py (the spec block), platform.yaml (the plugin, its pinned artifacts
and the sink filter), lint-rules.yaml (AUD033), lower.py (every artifact, the gcloud steps),
templates/apply.sh.j2 (the plan as a script).
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
    LintCheck,
    NodePaths,
    NoNodes,
    PlatformData,
    PullPlugin,
    PullSource,
    load_data,
    pullers,
)
from compiler.platforms.gke import lower
from compiler.platforms.gke.settings import GkePlatform, names, settings
from compiler.versions import Version

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.lint.checks import Context
    from compiler.resolve import Resolved
    from compiler.spec.model import Site

WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"  # GKE docs, Workload Identity


class GkePlugin(PullPlugin):
    filter: str


class GkeData(PlatformData):
    plugin: GkePlugin


@cache
def data() -> GkeData:
    return load_data(Path(__file__).parent, GkeData)


def _json(read: CloudRead, argv: list[str]) -> Any:
    text = read(argv)
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        raise UserError(f"{' '.join(argv[:4])}: not JSON: {text[:80]!r}") from None


def _has_binding(policy: Any, role: str, member: str) -> bool:
    bindings = (policy or {}).get("bindings") or [] if isinstance(policy, dict) else []
    return any(b.get("role") == role and member in (b.get("members") or []) for b in bindings)


def _replicas(ctx: Context) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """AUD033: one subscription, one puller; more replicas split or repeat the stream."""
    pods = pullers(ctx.values)
    if pods is not None:
        effect = (
            "nothing pulls it"
            if pods == "no pod"
            else "each message goes to one of them, and with redelivery some to two"
        )
        yield ("spec", "falco", "values", "controller"), f"{pods} pulling one Pub/Sub subscription: {effect}"


class Gke(NoNodes):
    name = "gke"
    block = GkePlatform
    lint_checks: Mapping[str, LintCheck] = {"AUD033": _replicas}

    @property
    def data(self) -> PlatformData:
        return data()

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        own = settings(site)
        plugin = data().plugin
        row = plugin.required(target.version, "GKE", checks)
        if row is None:
            return None
        _, subscription, _ = names(own)
        return PullSource(
            plugin=plugin.name,
            library=plugin.library,
            init_config={"project_id": own.project},
            open_params=subscription,
            artifact=f"{plugin.name}:{row.plugin}",
            rules=row.rules,
            json=row.json_,
            service_account_annotations={WORKLOAD_IDENTITY_ANNOTATION: own.service_account},
            identity=own.service_account,
            where=f"Pub/Sub subscription projects/{own.project}/subscriptions/{subscription}",
        )

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        if site.spec.falco.syscalls:
            checks.error(
                ("spec", "falco", "syscalls"),
                "not on GKE here: the audit Falco is one pod pulling a subscription, "
                "syscalls need one per node",
            )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        own = settings(resolved.site)
        topic, subscription, sink = names(own)
        steps = {
            str(s["action"]): [str(a) for a in s["command"]]
            for s in lower.gcloud_steps(resolved, data().plugin.filter)
        }
        where = f"gke {own.project}/{own.cluster}"
        topic_name = f"projects/{own.project}/topics/{topic}"
        out: list[CloudSetting] = []
        has_topic = bool(read(steps["check-topic"]))
        out.append(
            CloudSetting(
                f"{where}: Pub/Sub topic {topic}",
                "present",
                "present" if has_topic else "absent",
                ("create-topic",),
            )
        )
        on = read(steps["check-subscription"])
        live = f"on {on}" if on else "absent"
        out.append(
            CloudSetting(
                f"{where}: subscription {subscription}",
                f"on {topic_name}",
                live,
                ("create-subscription",) if not on else (),
            )
        )
        found = _json(read, steps["check-sink"]) or []
        wanted = f"to {lower.destination(own)} with {lower.sink_filter(own, data().plugin.filter)}"
        writer = ""
        if found:
            (entry,) = found[:1]
            writer = str(entry.get("writerIdentity") or "")
            live = f"to {entry.get('destination')} with {entry.get('filter')}"
            out.append(CloudSetting(f"{where}: log sink {sink}", wanted, live, ("update-sink",)))
        else:
            out.append(CloudSetting(f"{where}: log sink {sink}", wanted, "absent", ("create-sink",)))
        publisher = "the sink's writer identity may publish"
        if not has_topic or not writer:
            live = "no topic yet" if not has_topic else "no sink yet"
        else:
            policy = _json(read, steps["check-topic-iam"])
            live = publisher if _has_binding(policy, lower.PUBLISHER, writer) else "not granted"
        out.append(
            CloudSetting(
                f"{where}: {lower.PUBLISHER} on {topic}",
                publisher,
                live,
                ("publisher-binding",),
                {lower.WRITER: writer} if writer else {},
            )
        )
        subscriber = f"{own.service_account} may pull"
        if not on:
            live = "no subscription yet"
        else:
            policy = _json(read, steps["check-subscription-iam"])
            granted = _has_binding(policy, lower.SUBSCRIBER, f"serviceAccount:{own.service_account}")
            live = subscriber if granted else "not granted"
        out.append(
            CloudSetting(
                f"{where}: {lower.SUBSCRIBER} on {subscription}", subscriber, live, ("subscriber-binding",)
            )
        )
        member = lower.workload_member(resolved)
        policy = _json(read, steps["check-workload-identity"])
        acts = f"{member} may act as {own.service_account}"
        live = acts if _has_binding(policy, lower.WORKLOAD_IDENTITY, member) else "not granted"
        out.append(
            CloudSetting(
                f"{where}: Workload Identity of Falco's ServiceAccount", acts, live, ("workload-identity",)
            )
        )
        return out

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built, data().plugin.filter)


GKE = Gke()
