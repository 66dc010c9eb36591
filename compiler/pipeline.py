"""One spec through the compiler, top to bottom: read -> validate -> resolve -> build ->
lint -> lower (by the site's platform, from the registry).

Every command that compiles a spec (render, validate, diff, snapshot, live diff) goes
through here, so each stage runs once per spec and in the same order everywhere. Nothing
here prints or writes; problems are raised as ``UserError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.build import Build, build
from compiler.bundle import Artifact
from compiler.errors import Diagnostic, UserError
from compiler.resolve import Resolved


@dataclass(frozen=True)
class Checked:
    """A spec built and linted; nothing lowered yet."""

    built: Build
    findings: list[Diagnostic]  # every finding, accepted ones marked

    @property
    def name(self) -> str:
        return self.built.name


@dataclass(frozen=True)
class Compiled(Checked):
    artifacts: list[Artifact]  # without the manifest: see compiler.write.with_manifest


def load(path: Path, roots: tuple[Path, ...] = ()) -> Resolved:
    """Read (its bases merged in), validate and resolve one spec; ``roots`` are directories
    besides the spec's own that the files it names may be in (--files-root)."""
    from compiler.platforms import PLATFORMS, site_schema
    from compiler.resolve import resolve
    from compiler.spec.bases import with_bases
    from compiler.spec.source import read_yaml
    from compiler.spec.validate import parse_site

    doc = with_bases(read_yaml(path, str(path), what="spec"), roots)
    return resolve(parse_site(doc, site_schema(), list(PLATFORMS)), doc, PLATFORMS, roots)


def check(path: Path, roots: tuple[Path, ...] = ()) -> Checked:
    """Load, build and lint: everything ``validate`` reports."""
    from compiler.lint import lint

    built = build(load(path, roots))
    return Checked(built, lint(built))


def compile_spec(path: Path, roots: tuple[Path, ...] = (), *, refuse_lint_errors: bool = True) -> Compiled:
    """Every stage. With ``refuse_lint_errors`` (render) an unaccepted lint error stops
    the spec before lowering; without it (review) the artifacts are produced anyway and
    the findings travel with them."""
    from compiler.lint import blocking

    checked = check(path, roots)
    if refuse_lint_errors and (errors := blocking(checked.findings)):
        raise UserError(errors)
    built = checked.built
    return Compiled(built, checked.findings, built.resolved.platform.lower(built))
