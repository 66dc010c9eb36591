"""Pull-request review: what a change to the specs does to every rendered artifact.

Both sides are compiled (the old one from git, see ``gitref``), matched by site name and
compared file by file as unified text, with values of credential-like keys hidden. Above
the file diffs, lint findings the change introduces or resolves, plus two structural
risks lint cannot see from one side alone (webhook turned off, RBAC widened).
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from compiler.diff.gitref import check_ref, export_tree, repo_root
from compiler.errors import Diagnostic, Location, UserError
from compiler.order import site_order
from compiler.redaction import hide_pair

Status = Literal["added", "removed", "changed", "unchanged", "invalid"]


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
    errors: list[str] = field(default_factory=list)  # why the spec does not compile (now or at base)


@dataclass(frozen=True)
class Group:
    """Sites whose change is the same but for their names: one change to review."""

    sites: list[str]  # sorted; the first is the one shown
    change: SiteDiff  # the first site's diff


@dataclass(frozen=True)
class Review:
    base: str
    sites: list[SiteDiff]
    # each site's own values, at base and now: for grouping only (``masker``), never shown
    own: dict[str, tuple[Places, Places]] = field(default_factory=dict)

    @property
    def groups(self) -> list[Group]:
        """The sites that changed (or carry risks), grouped by their change with each
        site's own name taken out (a base that many sites share changes them all alike:
        one group, however large the fleet), in the order of their first site."""
        by_change: dict[tuple[object, ...], list[SiteDiff]] = {}
        for site in self.sites:
            if site.status == "unchanged" and not site.risks:
                continue
            by_change.setdefault(_signature(site, self.masker(site)), []).append(site)
        groups = [
            Group(
                sorted((s.site for s in members), key=site_order),
                min(members, key=lambda s: site_order(s.site)),
            )
            for members in by_change.values()
        ]
        return sorted(groups, key=lambda g: site_order(g.sites[0]))

    def masker(self, site: SiteDiff) -> _Masker:
        """How ``site``'s own values are put for their paths when changes are compared."""
        then, now = self.own.get(site.site, ({}, {}))
        return _Masker.for_change(site.status, then, now)

    @property
    def differs(self) -> bool:
        return any(site.status != "unchanged" for site in self.sites)

    @property
    def invalid_now(self) -> bool:
        """A spec as it is now does not compile: the change breaks it (exit 2)."""
        return any(error.startswith("now: ") for site in self.sites for error in site.errors)


# the values a site's spec writes (its bases merged in), each with the paths that write it
Places = dict[str, tuple[str, ...]]


def _own_values(data: object) -> Places:
    found: dict[str, list[str]] = {}
    for path, value in sorted(_leaves(data, ())):
        found.setdefault(value, []).append(path)
    return {value: tuple(paths) for value, paths in found.items()}


@dataclass(frozen=True)
class _Masker:
    """Each value a site's spec writes, put for the (first) path that writes it: a line
    that differs from another site's only where each holds its own value at the same path
    (an address, a host, a region) is the same line."""

    pattern: re.Pattern[str] | None
    paths: dict[str, str]

    @classmethod
    def of(cls, places: Places) -> _Masker:
        if not places:
            return cls(None, {})
        alternatives = "|".join(re.escape(v) for v in sorted(places, key=lambda v: (-len(v), v)))
        # a whole token: 10.0.1.17 is not in 10.0.1.171, prod is not in production
        pattern = re.compile(rf"(?<![A-Za-z0-9._-])(?:{alternatives})(?![A-Za-z0-9_-]|\.[A-Za-z0-9])")
        return cls(pattern, {value: paths[0] for value, paths in places.items()})

    @classmethod
    def for_change(cls, status: Status, then: Places, now: Places) -> _Masker:
        """A changed site: only the values the change leaves where they were (a value it
        edits, or moves, or writes somewhere more, stays as written, so two sites that set
        different values, or one that takes another's, never look alike); an added or a
        removed site: all of its values."""
        if status == "added":
            return cls.of(now)
        if status == "removed":
            return cls.of(then)
        return cls.of({v: paths for v, paths in now.items() if then.get(v) == paths})

    def mask(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: f"<{self.paths[m.group(0)]}>", text)


_SHORTEST_VALUE = 3  # shorter values (a port 22, a count) are too common in any line to stand for a path


def _leaves(data: object, path: tuple[str, ...]) -> list[tuple[str, str]]:
    """(dotted path, text) of each string and number of a spec but its apiVersion, kind and bases."""
    if isinstance(data, dict):
        return [
            leaf
            for key, value in data.items()
            if path or key not in ("apiVersion", "kind", "bases")
            for leaf in _leaves(value, (*path, str(key)))
        ]
    if isinstance(data, list):
        return [leaf for index, value in enumerate(data) for leaf in _leaves(value, (*path, str(index)))]
    if isinstance(data, bool) or not isinstance(data, (str, int, float)):
        return []
    text = str(data)
    return [(".".join(path), text)] if len(text) >= _SHORTEST_VALUE and "\n" not in text else []


@dataclass(frozen=True)
class _Side:
    files: dict[str, bytes]
    findings: list[Diagnostic]
    errors: list[str] = field(default_factory=list)
    own: Places = field(default_factory=dict)


def _compile(path: Path, roots: tuple[Path, ...]) -> tuple[str, _Side]:
    """Compile one spec for review: lint errors are reported as risks, not refusals."""
    from compiler.pipeline import compile_spec

    compiled = compile_spec(path, roots, refuse_lint_errors=False)
    files = {a.path: a.content for a in compiled.artifacts}
    own = _own_values(compiled.built.resolved.doc.data)
    return compiled.name, _Side(files, compiled.findings, own=own)


def _sides(specs: list[Path], shown: dict[Path, str], roots: tuple[Path, ...] = ()) -> dict[str, _Side]:
    """Compile each spec; one that does not compile is kept with its errors, not fatal."""
    out: dict[str, _Side] = {}
    for spec in specs:
        label = shown.get(spec, str(spec))
        try:
            name, side = _compile(spec, roots)
        except UserError as exc:
            name = _site_name(spec) or f"({label})"
            errors = [str(d).replace(str(spec), label) for d in exc.diagnostics]
            side = _Side({}, [], errors)
        if name in out:
            raise UserError(f"site name {name!r} is used by two specs ({label} and another)")
        out[name] = side
    return out


def _site_name(spec: Path) -> str | None:
    """metadata.name of a spec that does not compile, if it can be read at all."""
    try:
        from compiler.spec.source import read_yaml

        data = read_yaml(spec).data
        name = data.get("metadata", {}).get("name") if isinstance(data, dict) else None
        return str(name) if isinstance(name, str) else None
    except UserError:
        return None


def _spec_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
    )


def review(inputs: list[Path], base: str, roots: tuple[Path, ...] = ()) -> Review:
    """Compare the specs as they are with the same specs at git revision ``base``.

    The whole repository is read at ``base`` (from git's objects, into a temp dir), so a
    spec that names files elsewhere in the repository compiles as it did then; ``roots``
    inside the repository (--files-root) are allowed at the same place in that copy.
    """
    current = [item for item in inputs if item.exists()]
    now_specs = [p for item in current for p in (_spec_files(item) if item.is_dir() else [item])]
    now = _sides(now_specs, {p: str(p) for p in now_specs}, roots)
    then: dict[str, _Side] = {}
    with tempfile.TemporaryDirectory(prefix="auditc-base-") as tmp:
        exported: dict[tuple[Path, str], Path] = {}
        for item in inputs:
            root = repo_root(item if item.exists() else item.parent)
            commit = check_ref(root, base)
            target = exported.get((root, commit))
            if target is None:
                target = Path(tmp) / str(len(exported))
                export_tree(root, commit, Path(), target)
                exported[(root, commit)] = target
            relative = (item if item.exists() else item.parent).resolve().relative_to(root)
            if not item.exists():
                relative = relative / item.name
            old = target / relative
            old_specs = (
                _spec_files(old) if item.is_dir() or old.is_dir() else ([old] if old.is_file() else [])
            )
            if not item.exists() and not old.exists():
                raise UserError(
                    Diagnostic(f"no such file or directory, now or at {base}", Location(str(item)))
                )
            shown = {p: f"{base}:{(relative / p.name) if old.is_dir() else relative}" for p in old_specs}
            old_roots = tuple(
                target / root_dir.resolve().relative_to(root)
                for root_dir in roots
                if root_dir.resolve().is_relative_to(root)
            )
            for name, side in _sides(old_specs, shown, old_roots).items():
                then[name] = side
        names = sorted(set(then) | set(now), key=site_order)
        sites = [_site_diff(name, then.get(name), now.get(name)) for name in names]
    own = {
        name: (then[name].own if name in then else {}, now[name].own if name in now else {}) for name in names
    }
    return Review(base, sites, own)


def _signature(site: SiteDiff, own: _Masker) -> tuple[object, ...]:
    """What a site's change is: the lines each file loses and gains, in order, with the
    site's own name replaced by a placeholder wherever it stands as a word (site names are
    DNS labels: a name inside another word is left alone) or inside a name auditc makes of
    it (``_BEFORE_NAME``, ``_AFTER_NAME``), each value of its spec that the change leaves
    in place by the path that writes it (``_Masker``), and every sha256 by another (the
    digests of its own files, which the patch script and plan carry, differ wherever those
    files do). The context lines and hunk positions are left out: a base's edit reads the
    same in sites whose unchanged lines around it differ (a region label, an address)."""
    name = re.compile(rf"{_BEFORE_NAME}{re.escape(site.site)}{_AFTER_NAME}")

    def plain(text: str) -> str:
        return _SHA256.sub("<sha256>", own.mask(name.sub("<site>", text)))

    return (
        site.status,
        tuple((f.path, f.status, tuple(plain(line) for line in _changed_lines(f.diff))) for f in site.files),
        tuple((r.change, r.id, r.severity, r.field, plain(r.message)) for r in site.risks),
        tuple(plain(e) for e in site.errors),
    )


_SHA256 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
# a site's name as a word, or inside the names auditc makes of it: auditc-<site>,
# auditc-<site>-kubeconfig, auditc-<site>-management, <site>-falco (the release object)
_BEFORE_NAME = r"(?:(?<![A-Za-z0-9-])|(?<=(?<![A-Za-z0-9-])auditc-))"
_AFTER_NAME = r"(?:(?![A-Za-z0-9-])|(?=-(?:kubeconfig|management|falco)(?![A-Za-z0-9-])))"


def _changed_lines(diff: str) -> list[str]:
    """The removed and added lines of one file's unified diff (``_unified``): its two
    header lines and the hunk headers left out, and the context lines."""
    lines = diff.splitlines()
    if lines[:1] and lines[0].startswith("--- ") and lines[1:2] and lines[1].startswith("+++ "):
        lines = lines[2:]
    return [line for line in lines if line[:1] in ("-", "+")]


def _site_diff(name: str, old: _Side | None, new: _Side | None) -> SiteDiff:
    if (old and old.errors) or (new and new.errors):
        errors = [f"now: {e}" for e in (new.errors if new else [])]
        errors += [f"at base: {e}" for e in (old.errors if old else [])]
        return SiteDiff(name, "invalid", errors=errors)
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
    old, new = hide_pair(
        before.decode("utf-8", "replace") if before is not None else "",
        after.decode("utf-8", "replace") if after is not None else "",
    )
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
        nodes = any(path.startswith("node/") for path in new.files)  # none: Falco pulls a cloud's log
        if hook in old.files and hook not in new.files and nodes:
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
