"""Lint: findings with stable ids, a severity, a one-line reason and a fix.

Rule metadata lives in compiler/data/lint-rules.yaml; each rule's check is one function
in ``compiler.lint.checks``. Errors block ``render`` unless the spec lists the id under
``spec.lint.accept``; warnings are printed and rendering goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from compiler.datafiles import load_data
from compiler.errors import Diagnostic, Severity, UserError, format_path
from compiler.resolve import Resolved


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    why: str
    fix: str


@cache
def rules() -> dict[str, Rule]:
    data = load_data("lint-rules.yaml")
    return {
        rule_id: Rule(rule_id, entry["name"], entry["severity"], entry["why"], entry["fix"])
        for rule_id, entry in data.items()
    }


def lookup(name_or_id: str) -> Rule | None:
    """A rule by id (AUD002) or by name (configmap-bodies-logged)."""
    table = rules()
    if name_or_id in table:
        return table[name_or_id]
    return next((r for r in table.values() if r.name == name_or_id), None)


def lint(resolved: Resolved) -> list[Diagnostic]:
    """Every finding for the site, accepted ones marked, in a stable order."""
    from compiler.lint.checks import run

    accepted: set[str] = set()
    unknown: list[Diagnostic] = []
    for index, name in enumerate(resolved.site.spec.lint.accept):
        rule = lookup(name)
        path = ("spec", "lint", "accept", index)
        if rule is None:
            known = ", ".join(sorted(rules()))
            message = f"unknown lint id {name!r} (known: {known})"
            unknown.append(Diagnostic(message, resolved.doc.location(path), format_path(path)))
        else:
            accepted.add(rule.id)
    if unknown:
        raise UserError(unknown)
    findings: list[Diagnostic] = []
    for rule_id, where, detail in run(resolved):
        rule = rules()[rule_id]
        diagnostic = Diagnostic(
            detail,
            resolved.doc.location(where),
            format_path(where),
            rule.severity,
            code=rule.id,
            accepted=rule.id in accepted,
            why=rule.why,
            fix=rule.fix,
        )
        findings.append(diagnostic)
    used = {f.code for f in findings}
    for index, name in enumerate(resolved.site.spec.lint.accept):
        rule = lookup(name)
        if rule and rule.id not in used:
            path = ("spec", "lint", "accept", index)
            findings.append(
                Diagnostic(
                    f"{rule.id} is accepted but nothing in this site triggers it; remove it",
                    resolved.doc.location(path),
                    format_path(path),
                    "warning",
                )
            )
    return findings


def blocking(findings: list[Diagnostic], *, strict: bool = False) -> list[Diagnostic]:
    """Findings that fail the site: unaccepted errors (and, with --strict, warnings)."""
    return [f for f in findings if not f.accepted and (f.severity == "error" or strict)]
