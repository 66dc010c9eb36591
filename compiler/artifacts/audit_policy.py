"""node/audit-policy.yaml: preset + spec rules, checked the way kube-apiserver checks it.

kube-apiserver refuses to start on a policy its validation rejects, so every check it
applies at start-up (shared/reference/k8s-audit.md §1.4) runs here first and points at
the spec line (or policy-file line) of the offending rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from compiler import versions
from compiler.datafiles import load_data
from compiler.errors import Diagnostic, Location, UserError, format_path
from compiler.resolve import Resolved
from compiler.spec.model import PolicyDocument, PolicyRule
from compiler.spec.source import SourceDoc, parse_named
from compiler.spec.types import DNS_SUBDOMAIN, excerpt
from compiler.spec.validate import pydantic_diagnostic


@dataclass(frozen=True)
class Origin:
    """Where a rule came from, for messages."""

    doc: SourceDoc | None  # the document the rule is written in (None: a preset)
    path: tuple[str | int, ...]  # the rule's path in that document
    label: str  # e.g. "spec.audit.policy.rules[2]" or "preset falco, rule 4"
    spec_path: tuple[str | int, ...]  # the spec field that brought the rule in

    def locate(self, sub: tuple[str | int, ...] = ()) -> Location | None:
        return self.doc.location((*self.path, *sub)) if self.doc else None


Entry = tuple[PolicyRule, Origin]


@dataclass(frozen=True)
class CompiledPolicy:
    document: dict[str, Any]
    entries: list[Entry]  # the rules in order, with where each came from


def build_policy(resolved: Resolved) -> dict[str, Any]:
    return compile_policy(resolved).document


def compile_policy(resolved: Resolved) -> CompiledPolicy:
    policy = resolved.site.spec.audit.policy
    doc = resolved.doc
    base = ("spec", "audit", "policy")
    if policy.file:
        return _policy_from_file(resolved, policy.file)

    entries: list[Entry] = []
    for index, rule in enumerate(policy.rules):
        path = (*base, "rules", index)
        entries.append((rule, Origin(doc, path, format_path(path), path)))
    if policy.preset != "none":
        label = f"preset {policy.preset}, rule"
        for index, rule in enumerate(_preset(policy.preset)):
            origin = Origin(None, (), f"{label} {index + 1}", (*base, "preset"))
            entries.append((rule, origin))
    for index, rule in enumerate(policy.append_rules):
        path = (*base, "appendRules", index)
        entries.append((rule, Origin(doc, path, format_path(path), path)))

    if not entries:
        raise UserError(
            Diagnostic(
                "the policy has no rules (preset none and no rules): "
                "kube-apiserver refuses a policy with 0 rules",
                doc.location(base),
                format_path(base),
            )
        )
    _check(entries, resolved)
    document: dict[str, Any] = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy"}
    if policy.omit_stages:
        document["omitStages"] = list(policy.omit_stages)
    if versions.kube_feature("omitManagedFields").available(resolved.kube):
        document["omitManagedFields"] = policy.omit_managed_fields
    document["rules"] = [rule_dict(rule) for rule, _ in entries]
    return CompiledPolicy(document, entries)


@cache
def _preset(name: str) -> tuple[PolicyRule, ...]:
    """A preset's rules, validated once per process and shared by every site: frozen
    models, whose lists no caller changes (a test holds a fleet render to that)."""
    return tuple(PolicyRule.model_validate(raw) for raw in load_data(f"policies/{name}.yaml")["rules"])


def rule_dict(rule: PolicyRule) -> dict[str, Any]:
    """A PolicyRule as the apiserver reads it: empty lists left out, the core group spelt ''."""
    out: dict[str, Any] = {"level": rule.level}
    for name in ("users", "user_groups", "verbs", "namespaces", "non_resource_urls", "omit_stages"):
        value = getattr(rule, name)
        if value:
            out[PolicyRule.model_fields[name].alias or name] = list(value)
    if rule.resources:
        out["resources"] = [
            {"group": r.group}
            | ({"resources": list(r.resources)} if r.resources else {})
            | ({"resourceNames": list(r.resource_names)} if r.resource_names else {})
            for r in rule.resources
        ]
    if rule.omit_managed_fields is not None:
        out["omitManagedFields"] = rule.omit_managed_fields
    return out


def _check(entries: list[Entry], resolved: Resolved) -> None:
    """kube-apiserver's policy validation (pkg/apis/audit/validation) plus version gates."""
    kube = resolved.kube
    wildcard = versions.kube_feature("groupWildcard")
    managed = versions.kube_feature("omitManagedFields")
    problems: list[Diagnostic] = []

    def fail(origin: Origin, sub: tuple[str | int, ...], message: str) -> None:
        field = format_path((*origin.path, *sub)) if origin.doc else origin.label
        problems.append(Diagnostic(message, origin.locate(sub), field))

    for rule, origin in entries:
        for j, url in enumerate(rule.non_resource_urls):
            sub = ("nonResourceURLs", j)
            if url == "*":
                continue
            if not url.startswith("/"):
                fail(
                    origin,
                    sub,
                    f"non-resource URL rules must begin with a '/' character (got {excerpt(url)})",
                )
            elif "*" in url[:-1]:
                fail(
                    origin,
                    sub,
                    f"non-resource URL wildcards '*' must be the final character (got {excerpt(url)})",
                )
        if rule.non_resource_urls and (rule.resources or rule.namespaces):
            fail(
                origin,
                ("nonResourceURLs",),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        for k, group in enumerate(rule.resources):
            if group.group == "*":
                if not wildcard.available(kube):
                    fail(
                        origin,
                        ("resources", k, "group"),
                        f"group '*' is accepted from Kubernetes {wildcard.since}; this site runs {kube}",
                    )
            elif group.group and not (len(group.group) <= 253 and DNS_SUBDOMAIN.fullmatch(group.group)):
                fail(
                    origin,
                    ("resources", k, "group"),
                    "must be an API group name, a lowercase DNS subdomain without a version "
                    f"(got {excerpt(group.group)})",
                )
            if group.resource_names and not group.resources:
                fail(
                    origin,
                    ("resources", k, "resourceNames"),
                    "using resourceNames requires at least one resource",
                )
        if rule.omit_managed_fields is not None and not managed.available(kube):
            fail(
                origin,
                ("omitManagedFields",),
                f"omitManagedFields exists from Kubernetes {managed.since}; this site runs {kube}",
            )
    if problems:
        raise UserError(problems)


def _policy_from_file(resolved: Resolved, name: str) -> CompiledPolicy:
    doc = parse_named(resolved.files[name], resolved.named_display(name), "policy file")
    if not isinstance(doc.data, dict):
        raise UserError(Diagnostic("a policy file must be a mapping (kind: Policy)", doc.location(())))
    try:
        policy = PolicyDocument.model_validate(doc.data)
    except ValidationError as exc:
        problems = [pydantic_diagnostic(doc, error, model=PolicyDocument) for error in exc.errors()]
        raise UserError(problems) from None

    problems = []
    allowed = ["audit.k8s.io/v1"]
    if versions.kube_feature("policyV1beta1").available(resolved.kube):
        allowed += ["audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"]
    if policy.api_version not in allowed:
        problems.append(
            Diagnostic(
                f"must be {' or '.join(allowed)} for Kubernetes {resolved.kube} "
                f"(got {excerpt(policy.api_version)})",
                doc.location(("apiVersion",)),
                "apiVersion",
            )
        )
    if not policy.rules:
        problems.append(
            Diagnostic(
                "rules must be a non-empty list: kube-apiserver refuses a policy with 0 rules",
                doc.location(("rules",)),
                "rules",
            )
        )
    managed = versions.kube_feature("omitManagedFields")
    if policy.omit_managed_fields is not None and not managed.available(resolved.kube):
        problems.append(
            Diagnostic(
                f"exists from Kubernetes {managed.since}; this site runs {resolved.kube}",
                doc.location(("omitManagedFields",)),
                "omitManagedFields",
            )
        )
    if problems:
        raise UserError(problems)
    spec_path = ("spec", "audit", "policy", "file")
    entries = [
        (rule, Origin(doc, ("rules", index), f"{name} rules[{index}]", spec_path))
        for index, rule in enumerate(policy.rules)
    ]
    _check(entries, resolved)
    document: dict[str, Any] = {"apiVersion": policy.api_version, "kind": "Policy"}
    if policy.omit_stages:
        document["omitStages"] = list(policy.omit_stages)
    if policy.omit_managed_fields is not None:
        document["omitManagedFields"] = policy.omit_managed_fields
    document["rules"] = [rule_dict(rule) for rule, _ in entries]
    return CompiledPolicy(document, entries)
