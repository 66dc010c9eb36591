"""Pull-request review: what a change to the specs does to every rendered artifact.

Both sides are compiled (the old one from git, see ``gitref``), matched by site name and
compared file by file as unified text, with values of credential-like keys hidden. Above
the file diffs, lint findings the change introduces or resolves, plus two structural
risks lint cannot see from one side alone (webhook turned off, RBAC widened).
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from compiler.api import find_specs
from compiler.diff.gitref import check_ref, export_tree, repo_root
from compiler.errors import Diagnostic, UserError

Status = Literal["added", "removed", "changed", "unchanged"]

# keys whose values never appear in a diff: only whether they changed
_SECRET_KEY = re.compile(
    r"^(?P<head>\s*-?\s*[\"']?(?P<key>[A-Za-z0-9_.-]*(?:password|passwd|secret|token|private[-_]?key|"
    r"client-key-data|apikey|api[-_]key|credential)[A-Za-z0-9_.-]*)[\"']?\s*:\s*)(?P<value>\S.*)$",
    re.IGNORECASE,
)
_RUN_KEY = os.urandom(16)  # per run: equal values hash alike, nothing is comparable across runs


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: Status
    diff: str  # unified diff, credential values hidden


@dataclass(frozen=True)
class Risk:
    change: Literal["introduced", "resolved"]
    id: str
    severity: str
    field: str
    message: str


@dataclass(frozen=True)
class SiteDiff:
    site: str
    status: Status
    files: list[FileDiff] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)


@dataclass(frozen=True)
class Review:
    base: str
    sites: list[SiteDiff]

    @property
    def differs(self) -> bool:
        return any(site.status != "unchanged" for site in self.sites)


@dataclass(frozen=True)
class _Side:
    files: dict[str, bytes]
    findings: list[Diagnostic]


def hide_secrets(text: str) -> str:
    """Replace values of credential-like keys with a keyed hash: changed or not, never what."""
    out = []
    for line in text.splitlines():
        match = _SECRET_KEY.match(line)
        if match:
            digest = hmac.new(_RUN_KEY, match["value"].encode(), hashlib.sha256).hexdigest()[:8]
            line = f"{match['head']}<hidden {digest}>"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _compile(path: Path) -> tuple[str, _Side]:
    """Compile one spec for review: lint errors are reported as risks, not refusals."""
    from compiler.api import lint_site, load
    from compiler.lower import lower

    resolved = load(path)
    findings = lint_site(resolved)
    artifacts = lower(resolved)
    return resolved.name, _Side({a.path: a.content for a in artifacts}, findings)


def _sides(specs: list[Path]) -> dict[str, _Side]:
    out: dict[str, _Side] = {}
    for spec in specs:
        name, side = _compile(spec)
        out[name] = side
    return out


def review(inputs: list[Path], base: str) -> Review:
    """Compare the specs as they are with the same specs at git revision ``base``."""
    now = _sides(find_specs(inputs))
    then: dict[str, _Side] = {}
    with tempfile.TemporaryDirectory(prefix="auditc-base-") as tmp:
        for index, item in enumerate(inputs):
            root = repo_root(item)
            commit = check_ref(root, base)
            relative = item.resolve().relative_to(root)
            directory = relative if item.is_dir() else relative.parent
            target = Path(tmp) / str(index)
            copied = export_tree(root, commit, directory, target)
            if item.is_dir():
                old_specs = sorted(
                    target / name for name in copied if "/" not in name and name.endswith((".yaml", ".yml"))
                )
            else:
                old_specs = [target / relative.name] if relative.name in copied else []
            try:
                then.update(_sides(old_specs))
            except UserError as exc:
                raise UserError(
                    [Diagnostic(f"the specs at {base} do not compile:"), *exc.diagnostics]
                ) from None
    sites = [_site_diff(name, then.get(name), now.get(name)) for name in sorted(set(then) | set(now))]
    return Review(base, sites)


def _site_diff(name: str, old: _Side | None, new: _Side | None) -> SiteDiff:
    old_files = old.files if old else {}
    new_files = new.files if new else {}
    files = []
    for path in sorted(set(old_files) | set(new_files)):
        before, after = old_files.get(path), new_files.get(path)
        if before == after:
            continue
        status: Status = "added" if before is None else "removed" if after is None else "changed"
        files.append(FileDiff(path, status, _unified(path, before, after)))
    risks = _risks(old, new)
    if old is None:
        site_status: Status = "added"
    elif new is None:
        site_status = "removed"
    else:
        site_status = "changed" if files else "unchanged"
    return SiteDiff(name, site_status, files, risks)


def _unified(path: str, before: bytes | None, after: bytes | None) -> str:
    old = hide_secrets(before.decode("utf-8", "replace")) if before is not None else ""
    new = hide_secrets(after.decode("utf-8", "replace")) if after is not None else ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}" if before is not None else "/dev/null",
        tofile=f"b/{path}" if after is not None else "/dev/null",
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _key(finding: Diagnostic) -> tuple[str, str]:
    return finding.code, finding.field


def _risks(old: _Side | None, new: _Side | None) -> list[Risk]:
    before = {_key(f): f for f in (old.findings if old else []) if f.code and not f.accepted}
    after = {_key(f): f for f in (new.findings if new else []) if f.code and not f.accepted}
    risks = [
        Risk("introduced", f.code, f.severity, f.field, f.message)
        for k, f in after.items()
        if k not in before
    ]
    risks += [
        Risk("resolved", f.code, f.severity, f.field, f.message) for k, f in before.items() if k not in after
    ]
    if old and new:
        hook = "node/audit-webhook.kubeconfig"
        if hook in old.files and hook not in new.files:
            risks.append(
                Risk(
                    "introduced",
                    "webhook-off",
                    "warning",
                    "spec.audit.webhook.enabled",
                    "the webhook backend is turned off: Falco receives no audit events",
                )
            )
        if _rbac_weight(new.files) > _rbac_weight(old.files):
            risks.append(
                Risk(
                    "introduced",
                    "rbac-widened",
                    "warning",
                    "cluster/rbac.yaml",
                    "the RBAC objects grant more than before",
                )
            )
    return sorted(risks, key=lambda r: (r.change != "introduced", r.id, r.field))


def _rbac_weight(files: dict[str, bytes]) -> int:
    """A rough size of what cluster/rbac.yaml grants: one per verb per resource per rule."""
    from compiler.datafiles import yaml_documents

    weight = 0
    for document in yaml_documents(files.get("cluster/rbac.yaml", b"")):
        for rule in (document or {}).get("rules", []) or []:
            names = len(rule.get("resources", []) or []) + len(rule.get("nonResourceURLs", []) or [])
            weight += max(names, 1) * len(rule.get("verbs", []) or [])
    return weight
