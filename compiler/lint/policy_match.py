"""Which audit policy rules a given request can reach, first match first.

A coarse model of kube-apiserver's policy checker (pkg/audit/policy/checker.go) for the
lint rules: it answers "which rules could decide the level for a request on this
resource", stopping at the first rule that matches every such request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compiler.artifacts.audit_policy import Origin
from compiler.spec.model import GroupResources, PolicyRule


@dataclass(frozen=True)
class Request:
    group: str
    resource: str  # "pods" or "pods/exec"
    # which levels record the secret: RequestResponse records every response; Request
    # records the body of writes (create/update/patch), where only some resources carry one
    request_body_leaks: bool = True


def never_matches(rule: PolicyRule) -> bool:
    """kube-apiserver compares verbs literally: a rule whose only verb is "*" matches nothing."""
    return bool(rule.verbs) and all(verb == "*" for verb in rule.verbs)


def _resource_matches(entry: GroupResources, request: Request) -> bool:
    if entry.group not in (request.group, "*"):
        return False
    if not entry.resources:
        return True
    base, _, sub = request.resource.partition("/")
    for pattern in entry.resources:
        if pattern in ("*", request.resource):
            return True
        if sub and pattern == f"*/{sub}":
            return True
        if pattern.endswith("/*") and pattern[:-2] == base:  # "pods/*" covers pods and its subresources
            return True
    return False


def reachable(
    entries: list[tuple[PolicyRule, Origin]], request: Request
) -> Iterator[tuple[PolicyRule, Origin, bool]]:
    """Rules that may decide the level of ``request``, up to the first one that decides it
    for every such request. Each comes with ``conditional``: whether it matches only some."""
    for rule, origin in entries:
        if rule.non_resource_urls or never_matches(rule):
            continue
        matching = [e for e in rule.resources if _resource_matches(e, request)]
        if rule.resources and not matching:
            continue
        conditional = bool(
            rule.users
            or rule.user_groups
            or rule.verbs
            or rule.namespaces
            or any(e.resource_names for e in matching)
        )
        yield rule, origin, conditional
        if not conditional:
            return


def is_catch_all(rule: PolicyRule) -> bool:
    """A rule that matches every request (nothing narrows it)."""
    everything = not rule.resources or all(
        e.group == "*" and (not e.resources or "*" in e.resources) and not e.resource_names
        for e in rule.resources
    )
    narrowing = rule.users or rule.user_groups or rule.verbs or rule.namespaces or rule.non_resource_urls
    return everything and not narrowing
