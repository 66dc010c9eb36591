"""Lint: findings with stable ids, a severity, a one-line reason and a fix.

Rule metadata lives in compiler/data/lint-rules.yaml; each rule's check is one function
in ``compiler.lint.checks``. The spec checks' warnings (ids from AUD018 on) are findings
too. Errors block ``render`` unless the spec lists the id under ``spec.lint.accept``;
warnings are printed and rendering goes on; an accepted warning is no longer printed by
``render`` (``validate`` still lists it, marked accepted).
"""

from __future__ import annotations

from dataclasses import replace

from compiler.build import Build
from compiler.catalog import Rule, lookup, rules
from compiler.errors import Diagnostic, UserError, format_path
from compiler.spec.types import excerpt

__all__ = ["Rule", "blocking", "lint", "lookup", "rules"]


def lint(built: Build) -> list[Diagnostic]:
    """Every finding for the site, accepted ones marked, in a stable order."""
    from compiler.lint.checks import run

    resolved = built.resolved
    accepted: set[str] = set()
    unknown: list[Diagnostic] = []
    for index, name in enumerate(resolved.site.spec.lint.accept):
        rule = lookup(name)
        path = ("spec", "lint", "accept", index)
        if rule is None:
            known = ", ".join(sorted(rules()))
            message = f"unknown lint id {excerpt(name)} (known: {known})"
            unknown.append(Diagnostic(message, resolved.doc.location(path), format_path(path)))
        else:
            accepted.add(rule.id)
    if unknown:
        raise UserError(unknown)
    # the spec checks' warnings first (they carry ids too), then the lint rules' findings
    findings = [replace(w, accepted=w.code in accepted) for w in resolved.warnings]
    for rule_id, where, detail in run(built):
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
    unused = rules()["AUD027"]
    for index, name in enumerate(resolved.site.spec.lint.accept):
        rule = lookup(name)
        if rule and rule.id not in used:
            path = ("spec", "lint", "accept", index)
            findings.append(
                Diagnostic(
                    f"{rule.id} is accepted but nothing in this site triggers it",
                    resolved.doc.location(path),
                    format_path(path),
                    unused.severity,
                    code=unused.id,
                    why=unused.why,
                    fix=unused.fix,
                )
            )
    return _once(findings)


def _once(findings: list[Diagnostic]) -> list[Diagnostic]:
    """A finding is reported once per site, however many checks reach it."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for finding in findings:
        key = (finding.code, finding.field, finding.message)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out


def blocking(findings: list[Diagnostic], *, strict: bool = False) -> list[Diagnostic]:
    """Findings that fail the site: unaccepted errors (and, with --strict, warnings)."""
    return [f for f in findings if not f.accepted and (f.severity == "error" or strict)]
