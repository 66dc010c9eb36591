"""Which audit policy rules a given request can reach, first match first.

A coarse model of kube-apiserver's policy checker (pkg/audit/policy/checker.go) for the
lint rules: it answers "which rules could decide the level for a request on this
resource", stopping at the first rule that matches every such request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compiler.artifacts.audit_policy import CompiledPolicy, Origin
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


# ---- one request, decided exactly as the apiserver's checker decides it --------------------


@dataclass(frozen=True)
class Attributes:
    """A resource request as the policy checker sees it (authorizer attributes). A create
    carries no name: the name is in the body, not the URL."""

    verb: str
    namespace: str
    group: str
    resource: str  # "configmaps"; a subresource as "pods/exec"


@dataclass(frozen=True)
class Decision:
    level: str
    omitted: frozenset[str]  # the stages not sent (the policy's and the rule's omitStages)
    origin: Origin | None  # the rule that decided; None: no rule matched (level None)
    # earlier rules that match this request for some users only: who sends it decides
    per_user: tuple[Origin, ...] = ()

    @property
    def logged(self) -> bool:
        """An event reaches the backends: a level above None and a stage left to send it
        (a short request has RequestReceived and ResponseComplete)."""
        return self.level != "None" and not {"RequestReceived", "ResponseComplete"} <= self.omitted


def _matches_resource(rule: PolicyRule, request: Attributes) -> bool:
    """pkg/audit/policy/checker.go ruleMatchesResource: namespaces, then each group and
    resource exactly, "*", "*/sub" or "res/*"; resourceNames never match a create."""
    if rule.namespaces and request.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    base, _, sub = request.resource.partition("/")
    for entry in rule.resources:
        if entry.group != request.group:
            continue
        if not entry.resources:
            return True
        if entry.resource_names:
            continue
        for pattern in entry.resources:
            if pattern in ("*", request.resource):
                return True
            if sub and pattern.startswith("*/") and pattern[2:] == sub:
                return True
            if pattern.endswith("/*") and pattern[:-2] == base:
                return True
    return False


def decide(entries: list[tuple[PolicyRule, Origin]], omit_stages: list[str], request: Attributes) -> Decision:
    """The first rule that matches decides (checker.go LevelAndStages). Rules naming users
    or groups are passed over, but noted: the request's user is not known here, except that
    every authenticated user is in system:authenticated."""
    per_user: list[Origin] = []
    for rule, origin in entries:
        if rule.verbs and request.verb not in rule.verbs:
            continue
        if rule.namespaces or rule.resources:
            if not _matches_resource(rule, request):
                continue
        elif rule.non_resource_urls:
            continue  # a resource request never matches a nonResourceURLs rule
        everyone = not rule.users and (not rule.user_groups or "system:authenticated" in rule.user_groups)
        if not everyone:
            per_user.append(origin)
            continue
        omitted = frozenset(omit_stages) | frozenset(rule.omit_stages)
        return Decision(rule.level, omitted, origin, tuple(per_user))
    return Decision("None", frozenset(omit_stages), None, tuple(per_user))


def probe_decision(policy: CompiledPolicy, namespace: str) -> Decision:
    """How the policy logs auditc verify's probe: a create of a ConfigMap in ``namespace``."""
    omit = list(policy.document.get("omitStages") or [])
    return decide(policy.entries, omit, Attributes("create", namespace, "", "configmaps"))
