"""A plan and an apply, as text for people and JSON for machines."""

from __future__ import annotations

import json
from dataclasses import asdict

from compiler.artifacts.gitops import ENGINE_NAMES
from compiler.live.formats import change_line
from compiler.rollout.apply import Applied
from compiler.rollout.plan import Plan
from compiler.rollout.verify import Verified

_VERB = {"create": "create", "update": "update", "unchanged": "unchanged"}


def plan_text(plan: Plan) -> str:
    lines = [f"== {plan.site}: " + ("changes planned" if plan.changes else "nothing to do")]
    engine = ENGINE_NAMES.get(plan.engine)
    for item in plan.items:
        what = {"cloud": "cloud setting", "object": "object", "release": "chart release", "host": "host"}[
            item.kind
        ]
        note = f" ({item.detail})" if item.detail else ""
        if item.kind == "object" and engine and item.action != "unchanged":
            note += f" ({engine} applies it)"
        lines.append(f"  {_VERB[item.action]:<10} {what} {item.name}{note}")
        for change in item.changes:
            lines.append("    " + change_line(change).strip())
    hosts = plan.hosts_to_update
    if plan.changes:
        cloud = any(item.action != "unchanged" for item in plan.of("cloud"))
        steps = ["the cloud side"] if cloud else []
        if plan.cluster_changes or hosts:
            steps.append("the cluster layer")  # Falco first: it must be up before any apiserver
        if hosts:
            steps.append(f"{len(hosts)} host(s) one at a time: {', '.join(hosts)}")
        elif not cloud:
            steps.append("no host")
        lines.append(f"apply: {', then '.join(steps)}")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan) -> str:
    document = {"site": plan.site, "changes": plan.changes, **asdict(plan)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def applied_text(applied: Applied) -> str:
    lines = []
    for host in applied.hosts:
        lines.append(f"  {host.outcome:<12} {host.host}" + (f": {host.detail}" if host.detail else ""))
    untouched = [h for h in applied.plan.hosts_to_update if h not in {r.host for r in applied.hosts}]
    for name in untouched:
        lines.append(f"  {'untouched':<12} {name}")
    verdict = "applied" if applied.ok else f"stopped: {applied.reason}"
    if not applied.hosts and applied.ok and not applied.plan.changes:
        verdict = "nothing to do: the live state matches the rendered site"
    if applied.verified is not None:
        lines.append(verified_text(applied.verified).rstrip("\n"))
    lines.append(f"auditc: {applied.site}: {verdict}")
    if applied.record:
        lines.append(f"auditc: record written to {applied.record}")
    return "\n".join(lines) + "\n"


def verified_text(verified: Verified) -> str:
    if verified.ok:
        latency = f"{verified.latency:.2f}s" if verified.latency is not None else "?"
        lines = [
            f"verify: {verified.site}: Falco alerted on ConfigMap {verified.probe} "
            f"{latency} after the request",
            f"  alert: {verified.alert}",
        ]
    else:
        lines = [f"verify: {verified.site}: FAILED for ConfigMap {verified.probe}; likely causes:"]
        lines += [f"  - {cause}" for cause in verified.causes]
    return "\n".join(lines) + "\n"


def verified_json(verified: Verified) -> str:
    return json.dumps(asdict(verified), indent=2, sort_keys=True) + "\n"
