"""One function per lint rule id. Each yields (spec path, what was found)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

from compiler import versions
from compiler.artifacts.audit_policy import CompiledPolicy, Origin
from compiler.artifacts.gitops import in_cluster
from compiler.build import Build
from compiler.datafiles import load_data
from compiler.lint.policy_match import Request, is_catch_all, never_matches, probe_decision, reachable
from compiler.probe import PRIORITY, shown_at

Path = tuple[str | int, ...]
Found = Iterator[tuple[Path, str]]

# verbs whose request carries the object (what level Request records)
WRITE_VERBS = {"create", "update", "patch"}
EXEC_ATTACH_RULE = "Attach/Exec Pod"


class Context:
    """The built site, as the checks read it."""

    def __init__(self, built: Build) -> None:
        self.resolved = built.resolved
        self.spec = built.resolved.site.spec
        self.policy: CompiledPolicy = built.policy
        self.values: dict[str, Any] = built.values

    @property
    def audited(self) -> bool:
        audit = self.spec.audit
        return audit.log.enabled or audit.webhook.enabled or audit.dynamic


def _where(origin: Origin) -> tuple[Path, str]:
    """Where a policy rule's finding points, and how to name the rule in the message."""
    if origin.doc is not None and origin.path == origin.spec_path:
        return origin.spec_path, "this rule"  # a rule written in the spec: the field says which
    return origin.spec_path, origin.label


def _bodies_logged(ctx: Context, requests: list[Request]) -> Found:
    if not ctx.audited:
        return
    for request in requests:
        for rule, origin, _ in reachable(ctx.policy.entries, request):
            if _records_bodies(rule, request):
                path, label = _where(origin)
                yield path, f"{label} logs {request.resource} at {rule.level}"


def _records_bodies(rule: Any, request: Request) -> bool:
    """RequestResponse records every response; Request records the body of writes only."""
    if rule.level == "RequestResponse":
        return True
    writes = not rule.verbs or bool(WRITE_VERBS & set(rule.verbs))
    return rule.level == "Request" and request.request_body_leaks and writes


def aud001(ctx: Context) -> Found:
    yield from _bodies_logged(
        ctx,
        [
            Request("", "secrets"),
            Request("authentication.k8s.io", "tokenreviews"),  # the request carries the token
            Request("", "serviceaccounts/token", request_body_leaks=False),  # the response does
        ],
    )


def aud002(ctx: Context) -> Found:
    yield from _bodies_logged(ctx, [Request("", "configmaps")])


def receiver_field(*parts: str) -> Path:
    return ("spec", "falco", "receiver", *parts)


def webhook_on(ctx: Context) -> bool:
    return ctx.spec.audit.webhook.enabled or ctx.spec.audit.dynamic


def aud003(ctx: Context) -> Found:
    if webhook_on(ctx) and not ctx.spec.falco.receiver.tls.enabled:
        yield receiver_field("tls", "enabled"), f"the receiver is plain http ({ctx.resolved.receiver.url})"


def aud004(ctx: Context) -> Found:
    tls = ctx.spec.falco.receiver.tls
    if webhook_on(ctx) and tls.enabled and tls.insecure_skip_verify:
        yield (
            receiver_field("tls", "insecureSkipVerify"),
            "the webhook does not verify the receiver's certificate",
        )


def aud005(ctx: Context) -> Found:
    receiver = ctx.resolved.receiver
    if webhook_on(ctx) and receiver.node_port is not None:
        yield (
            receiver_field("service", "type"),
            f"the receiver is a NodePort ({receiver.node_port}) on every node",
        )


def _cis(ctx: Context, check: str) -> str:
    for entry in versions.kube_table()["cis"]:
        if versions.in_range(ctx.resolved.kube, entry):
            return f"CIS {entry[check]}, {entry['benchmark']}"
    return f"CIS Kubernetes Benchmark; kube-bench maps no benchmark to {ctx.resolved.kube.minor}"


def aud006(ctx: Context) -> Found:
    log = ctx.spec.audit.log
    if not log.enabled or ctx.resolved.paths.log_path in (None, "-"):
        return
    for field, value, minimum in (
        ("maxAge", log.max_age, 30),
        ("maxBackup", log.max_backup, 10),
        ("maxSize", log.max_size, 100),
    ):
        if value < minimum:
            yield ("spec", "audit", "log", field), f"{field} {value} is below {minimum} ({_cis(ctx, field)})"


def aud007(ctx: Context) -> Found:
    if not ctx.spec.audit.log.enabled:
        yield ("spec", "audit", "log", "enabled"), f"the audit log backend is off ({_cis(ctx, 'logPath')})"


def aud008(ctx: Context) -> Found:
    if EXEC_ATTACH_RULE in ctx.spec.falco.rules.disable or not webhook_on(ctx):
        return
    stages = ctx.policy.document.get("omitStages", [])
    if "ResponseStarted" in stages:
        yield ("spec", "audit", "policy", "omitStages"), "the policy omits ResponseStarted for every request"
        return
    for request in (Request("", "pods/exec"), Request("", "pods/attach")):
        deciding = [(r, o) for r, o, conditional in reachable(ctx.policy.entries, request) if not conditional]
        if not deciding:
            yield ("spec", "audit", "policy"), f"no rule logs every {request.resource} request"
            continue
        rule, origin = deciding[0]
        if rule.level == "None" or "ResponseStarted" in rule.omit_stages:
            path, label = _where(origin)
            reason = "does not log" if rule.level == "None" else "omits ResponseStarted for"
            yield path, f"{label} {reason} {request.resource}"


def aud009(ctx: Context) -> Found:
    for rule, origin in ctx.policy.entries:
        if rule.level == "RequestResponse" and is_catch_all(rule):
            path, label = _where(origin)
            yield path, f"{label} logs every request at RequestResponse"


def aud010(ctx: Context) -> Found:
    if not webhook_on(ctx):
        return
    controller = ctx.values.get("controller")
    deployment = controller.get("deployment") if isinstance(controller, dict) else None
    replicas = deployment.get("replicas", 1) if isinstance(deployment, dict) else 1
    if not ctx.resolved.plugin:
        yield (
            ("spec", "falco", "version"),
            f"chart {ctx.resolved.target.chart.version} runs Falco as a DaemonSet",
        )
    elif ctx.spec.falco.syscalls:
        yield ("spec", "falco", "syscalls"), "syscalls: true runs Falco as a DaemonSet, one receiver per node"
    elif isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > 1:
        yield ("spec", "falco", "values", "controller", "deployment", "replicas"), f"{replicas} replicas"


def aud011(ctx: Context) -> Found:
    hook = ctx.spec.audit.webhook
    if hook.enabled and hook.mode != "batch":
        yield ("spec", "audit", "webhook", "mode"), f"webhook mode {hook.mode}"


def aud015(ctx: Context) -> Found:
    log = ctx.spec.audit.log
    if not log.enabled or log.max_size != 0 or ctx.resolved.paths.log_path in (None, "-"):
        return
    for entry in versions.kube_table()["logRotationDefaults"]:
        if versions.in_range(ctx.resolved.kube, entry) and entry["zeroMaxSizeRotatesAt"] is None:
            yield ("spec", "audit", "log", "maxSize"), f"maxSize 0 on Kubernetes {ctx.resolved.kube}"


def aud017(ctx: Context) -> Found:
    hook = ctx.spec.audit.webhook
    if not hook.enabled or not ctx.resolved.plugin:
        return
    limit = int(versions.falco_table()["plugin"]["maxEventSize"]["value"])
    if not hook.truncate.enabled:
        yield ("spec", "audit", "webhook", "truncate", "enabled"), "webhook truncation is off"
    elif hook.truncate.max_event_size > limit:
        path = ("spec", "audit", "webhook", "truncate", "maxEventSize")
        yield path, f"maxEventSize {hook.truncate.max_event_size} is above the plugin's {limit}"


def aud016(ctx: Context) -> Found:
    groups = load_data("resources.yaml")["groups"]
    all_subresources = {sub for known in groups.values() for subs in known.values() for sub in subs}
    for rule, origin in ctx.policy.entries:
        path, label = _where(origin)
        written = origin.doc is not None and origin.path == origin.spec_path
        if never_matches(rule):
            yield (
                ((*path, "verbs") if written else path),
                f'{label}: verbs ["*"] matches no request (verbs are compared literally)',
            )
        for index, entry in enumerate(rule.resources):
            known = groups.get(entry.group)
            for position, text in enumerate(entry.resources):
                if entry.group == "*":
                    problem = _subresource_problem(text, all_subresources)
                elif known is None:
                    continue  # a custom or aggregated API group: cannot tell
                else:
                    problem = _resource_problem(text, known)
                if not problem:
                    continue
                candidates = [
                    *(known or {}),
                    *(f"{r}/{s}" for r, subs in (known or {}).items() for s in subs),
                ]
                match = difflib.get_close_matches(text.lower(), candidates, n=1, cutoff=0.6)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                where = (*path, "resources", index, "resources", position) if written else path
                group = entry.group or "core"
                yield where, f"{label}: {text!r} in group {group} {problem}{hint}"


def _resource_problem(text: str, known: dict[str, list[str]]) -> str:
    base, _, sub = text.partition("/")
    if base == "*":
        subresources = {s for subs in known.values() for s in subs}
        return "" if not sub or sub == "*" or sub in subresources else f"names no known subresource {sub!r}"
    if base not in known:
        return "is not a resource of that group"
    if sub and sub != "*" and sub not in known[base]:
        return f"names no subresource {sub!r} of {base}"
    return ""


def _subresource_problem(text: str, subresources: set[str]) -> str:
    """Under group "*" any resource may exist (custom resources), but subresources are few."""
    _, _, sub = text.partition("/")
    if sub and sub != "*" and sub not in subresources:
        return f"names no known subresource {sub!r}"
    return ""


def aud029(ctx: Context) -> Found:
    # the probe reaches Falco through the webhook, or the log file Falco reads (logfile)
    reaches = webhook_on(ctx) or ctx.spec.falco.receiver.mode == "logfile"
    if not ctx.spec.falco.probe or not reaches:
        return
    decision = probe_decision(ctx.policy, ctx.spec.falco.namespace)
    path: Path = ("spec", "falco", "probe")
    if not decision.logged:
        what = (
            f"{_where(decision.origin)[1]} decides it: level {decision.level}"
            if decision.origin
            else ("no rule matches it")
        )
        if decision.level != "None":
            what += f", stages {', '.join(sorted(decision.omitted))} omitted"
        yield path, f"the policy does not send a create of a ConfigMap in {ctx.spec.falco.namespace} ({what})"
    elif decision.per_user:
        rules = ", ".join(_where(origin)[1] for origin in decision.per_user)
        yield path, f"whether the probe is logged depends on who runs auditc verify ({rules})"


def aud030(ctx: Context) -> Found:
    if not ctx.spec.falco.probe:
        return
    falco = ctx.values.get("falco")
    minimum = falco.get("priority") if isinstance(falco, dict) else None
    if isinstance(minimum, str) and not shown_at(minimum):
        yield (
            ("spec", "falco", "values", "falco", "priority"),
            (f"Falco outputs only {minimum} and above; the probe's alert is {PRIORITY}"),
        )


# what a managed control plane (the cloud's own policy and log, no receiver) leaves unused
IGNORED_WHEN_MANAGED: tuple[tuple[str, ...], ...] = (
    ("spec", "audit", "policy"),
    ("spec", "audit", "webhook"),
    ("spec", "audit", "log"),
    ("spec", "audit", "dynamic"),
    ("spec", "falco", "receiver"),
    ("spec", "falco", "rules", "artifactsVersion"),
)


def aud032(ctx: Context) -> Found:
    platform = ctx.resolved.platform.name
    for path in IGNORED_WHEN_MANAGED:
        if ctx.resolved.doc.node(path) is None:
            continue
        if path[1] == "audit":
            why = f"{platform} runs kube-apiserver with the cloud's own audit policy and log"
        elif path[2] == "receiver":
            why = "Falco pulls the cloud's audit log: there is no webhook receiver"
        else:
            why = f"the {platform} plugin's row pins the k8saudit rules that accept it"
        yield path, f"{why}: this setting has no effect on a {platform} site"


def aud035(ctx: Context) -> Found:
    gitops = ctx.spec.gitops
    server = gitops.argocd.destination_server
    if gitops.engine == "argocd" and gitops.engine_cluster == "site" and not in_cluster(server):
        yield ("spec", "gitops", "argocd", "destinationServer"), f"cluster/ is synced to {server}"


def run(built: Build) -> Iterator[tuple[str, Path, str]]:
    """Every rule, the platform's own among them, in id order. Most common rules are about
    the audit policy, webhook and log auditc gives an apiserver: a managed control plane
    (the cloud's own policy and log) gets the few that are not, and the platform's own."""
    ctx = Context(built)
    common = MANAGED_CHECKS if built.resolved.managed else CHECKS
    rules = {**common, **built.resolved.platform.lint_checks}
    for rule_id, check in sorted(rules.items()):
        for path, detail in check(ctx):
            yield rule_id, path, detail


CHECKS: dict[str, Callable[[Context], Found]] = {
    "AUD001": aud001,
    "AUD002": aud002,
    "AUD003": aud003,
    "AUD004": aud004,
    "AUD005": aud005,
    "AUD006": aud006,
    "AUD007": aud007,
    "AUD008": aud008,
    "AUD009": aud009,
    "AUD010": aud010,
    "AUD011": aud011,
    "AUD015": aud015,
    "AUD016": aud016,
    "AUD017": aud017,
    "AUD029": aud029,
    "AUD030": aud030,
    "AUD035": aud035,
}

MANAGED_CHECKS: dict[str, Callable[[Context], Found]] = {"AUD030": aud030, "AUD032": aud032, "AUD035": aud035}
