"""One function per lint rule id. Each yields (spec path, what was found)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

from compiler import versions
from compiler.artifacts.audit_policy import CompiledPolicy, Entry, compile_policy
from compiler.artifacts.falco_values import falco_values
from compiler.lint.policy_match import Request, is_catch_all, reachable
from compiler.resolve import Resolved

Path = tuple[str | int, ...]
Found = Iterator[tuple[Path, str]]

# verbs whose request carries the object (what level Request records)
WRITE_VERBS = {"create", "update", "patch"}
EXEC_ATTACH_RULE = "Attach/Exec Pod"


class Context:
    """The resolved site plus what the checks derive from it, computed once."""

    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved
        self.spec = resolved.site.spec

    @cached_property
    def policy(self) -> CompiledPolicy:
        return compile_policy(self.resolved)

    @cached_property
    def values(self) -> dict[str, Any]:
        return falco_values(self.resolved)

    @property
    def audited(self) -> bool:
        audit = self.spec.audit
        return audit.log.enabled or audit.webhook.enabled or audit.dynamic


def _where(origin_entry: Entry) -> tuple[Path, str]:
    _, origin = origin_entry
    return origin.spec_path, origin.label


def _bodies_logged(ctx: Context, requests: list[Request]) -> Found:
    if not ctx.audited:
        return
    for request in requests:
        for rule, origin, _ in reachable(ctx.policy.entries, request):
            if _records_bodies(rule):
                path, label = _where((rule, origin))
                yield path, f"{label} logs {request.resource} at {rule.level}"


def _records_bodies(rule: Any) -> bool:
    """RequestResponse records every response; Request records the body of writes only."""
    if rule.level == "RequestResponse":
        return True
    return rule.level == "Request" and (not rule.verbs or bool(WRITE_VERBS & set(rule.verbs)))


def aud001(ctx: Context) -> Found:
    yield from _bodies_logged(ctx, [Request("", "secrets"), Request("authentication.k8s.io", "tokenreviews")])


def aud002(ctx: Context) -> Found:
    yield from _bodies_logged(ctx, [Request("", "configmaps")])


def _receiver(*parts: str) -> Path:
    return ("spec", "falco", "receiver", *parts)


def _webhook_on(ctx: Context) -> bool:
    return ctx.spec.audit.webhook.enabled or ctx.spec.audit.dynamic


def aud003(ctx: Context) -> Found:
    if _webhook_on(ctx) and not ctx.spec.falco.receiver.tls.enabled:
        yield _receiver("tls", "enabled"), f"the receiver is plain http ({ctx.resolved.receiver.url})"


def aud004(ctx: Context) -> Found:
    tls = ctx.spec.falco.receiver.tls
    if _webhook_on(ctx) and tls.enabled and tls.insecure_skip_verify:
        yield _receiver("tls", "insecureSkipVerify"), "the webhook does not verify the receiver's certificate"


def aud005(ctx: Context) -> Found:
    receiver = ctx.resolved.receiver
    if _webhook_on(ctx) and receiver.node_port is not None:
        yield _receiver("service", "type"), f"the receiver is a NodePort ({receiver.node_port}) on every node"


def _cis(ctx: Context, check: str) -> str:
    for entry in versions.kube_table()["cis"]:
        if versions.in_range(ctx.resolved.kube, entry):
            return f"CIS {entry[check]}, {entry['benchmark']}"
    return "CIS Kubernetes Benchmark"


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
    if EXEC_ATTACH_RULE in ctx.spec.falco.rules.disable or not _webhook_on(ctx):
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
            path, label = _where((rule, origin))
            reason = "does not log" if rule.level == "None" else "omits ResponseStarted for"
            yield path, f"{label} {reason} {request.resource}"


def aud009(ctx: Context) -> Found:
    for rule, origin in ctx.policy.entries:
        if rule.level == "RequestResponse" and is_catch_all(rule):
            path, label = _where((rule, origin))
            yield path, f"{label} logs every request at RequestResponse"


def aud010(ctx: Context) -> Found:
    falco = ctx.spec.falco
    controller = ctx.values.get("controller", {})
    if not ctx.resolved.plugin:
        yield ("spec", "falco", "version"), f"chart {ctx.resolved.chart_version} runs Falco as a DaemonSet"
    elif falco.syscalls:
        yield ("spec", "falco", "syscalls"), "syscalls: true runs Falco as a DaemonSet, one receiver per node"
    elif controller.get("kind") == "daemonset":
        yield ("spec", "falco", "values", "controller", "kind"), "controller.kind daemonset"
    elif int(controller.get("deployment", {}).get("replicas", 1)) > 1:
        replicas = controller["deployment"]["replicas"]
        yield ("spec", "falco", "values", "controller", "deployment", "replicas"), f"{replicas} replicas"


def aud011(ctx: Context) -> Found:
    hook = ctx.spec.audit.webhook
    if hook.enabled and hook.mode != "batch":
        yield ("spec", "audit", "webhook", "mode"), f"webhook mode {hook.mode}"


def _pks(ctx: Context) -> Any:
    platform = ctx.spec.platform
    return platform.pks if platform.type == "pks" else None


def aud012(ctx: Context) -> Found:
    pks = _pks(ctx)
    if pks is not None and pks.skip_ssl_validation:
        yield ("spec", "platform", "pks", "skipSslValidation"), "skipSslValidation is true"


def aud013(ctx: Context) -> Found:
    cidr = ctx.spec.kubernetes.service_cidr
    if _pks(ctx) is None or not cidr:
        return
    try:
        address = ipaddress.ip_address(ctx.resolved.receiver.address)
    except ValueError:
        return  # a host name: cannot tell
    network = ipaddress.ip_network(cidr)
    if address.version == network.version and address in network:
        yield _receiver("address"), f"{address} is inside the service CIDR {cidr}"


def aud014(ctx: Context) -> Found:
    pks = _pks(ctx)
    path = ctx.spec.audit.log.path
    if pks is None or pks.apiserver_config != "bpm" or not path or path == "-":
        return
    writable = ctx.resolved.platform.get("bpm", {}).get("writable", [])
    if not any(path.startswith(prefix.rstrip("/") + "/") for prefix in writable):
        yield ("spec", "audit", "log", "path"), f"{path} is not writable for the kube-apiserver job under bpm"


def aud015(ctx: Context) -> Found:
    log = ctx.spec.audit.log
    if not log.enabled or log.max_size != 0 or ctx.resolved.paths.log_path in (None, "-"):
        return
    for entry in versions.kube_table()["logRotationDefaults"]:
        if versions.in_range(ctx.resolved.kube, entry) and entry["zeroMaxSizeRotatesAt"] is None:
            yield ("spec", "audit", "log", "maxSize"), f"maxSize 0 on Kubernetes {ctx.resolved.kube}"


def aud016(ctx: Context) -> Found:
    import difflib

    from compiler.datafiles import load_data

    groups = load_data("resources.yaml")["groups"]
    for rule, origin in ctx.policy.entries:
        for index, entry in enumerate(rule.resources):
            known = groups.get(entry.group)
            if known is None:
                continue  # a custom or aggregated API group: cannot tell
            subresources = {sub for subs in known.values() for sub in subs}
            for text in entry.resources:
                problem = _resource_problem(text, known, subresources)
                if problem:
                    candidates = [*known, *(f"{r}/{s}" for r, subs in known.items() for s in subs)]
                    match = difflib.get_close_matches(text.lower(), candidates, n=1, cutoff=0.6)
                    hint = f" (did you mean {match[0]!r}?)" if match else ""
                    path, label = _where((rule, origin))
                    if origin.doc is not None and origin.spec_path == origin.path:
                        path = (*origin.path, "resources", index, "resources")
                    group = entry.group or "core"
                    yield path, f"{label}: {text!r} in group {group} {problem}{hint}"


def _resource_problem(text: str, known: dict[str, list[str]], subresources: set[str]) -> str:
    base, _, sub = text.partition("/")
    if base == "*":
        return "" if not sub or sub in subresources else f"names no known subresource {sub!r}"
    if base not in known:
        return "is not a resource of that group"
    if sub and sub != "*" and sub not in known[base]:
        return f"names no subresource {sub!r} of {base}"
    return ""


def run(resolved: Resolved) -> Iterator[tuple[str, Path, str]]:
    ctx = Context(resolved)
    for rule_id, check in CHECKS.items():
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
    "AUD012": aud012,
    "AUD013": aud013,
    "AUD014": aud014,
    "AUD015": aud015,
    "AUD016": aud016,
}
