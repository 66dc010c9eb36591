"""Golden output trees: every example spec renders exactly what tests/golden/ holds.

Regenerate only on purpose: `pytest tests/test_golden.py --update-goldens`, then review
the diff like any other change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sites import ROOT, compiled, example_specs, write_tree

GOLDEN = ROOT / "tests" / "golden"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_golden_tree(spec: Path, update_goldens: bool) -> None:
    site = compiled(spec)
    target = GOLDEN / site.name
    if update_goldens:
        shutil.rmtree(target, ignore_errors=True)
        write_tree(site, target)
    expected = _tree(target)
    actual = {a.path: a.content for a in site.artifacts}
    assert sorted(actual) == sorted(expected), "file list differs from the golden tree"
    for path, content in actual.items():
        assert content == expected[path], f"{site.name}/{path} differs from tests/golden (--update-goldens?)"


def test_every_golden_tree_has_a_spec() -> None:
    names = {compiled(spec).name for spec in example_specs()}
    assert {p.name for p in GOLDEN.iterdir() if p.is_dir()} == names


def test_committed_output_is_current() -> None:
    """output/ holds exactly what specs/ renders to (the CI freshness check, in-process)."""
    from compiler.api import render

    result = render([ROOT / "specs"], ROOT / "output", check=True)
    stale = [(c.site, c.created, c.updated, c.deleted) for c in result.changes if c.any]
    assert not stale, f"output/ is stale; run `make render`: {stale}"
