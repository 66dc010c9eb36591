"""Helpers shared by the test modules: the example specs and compiling them."""

from __future__ import annotations

from pathlib import Path

from compiler.api import CompiledSite, compile_site

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIRS = (ROOT / "specs", ROOT / "tests" / "specs")


def example_specs() -> list[Path]:
    """Every spec that has a golden tree: the user-facing examples and the test-only ones."""
    return sorted(p for d in SPEC_DIRS for p in d.glob("*.yaml"))


def compiled(spec: Path) -> CompiledSite:
    return compile_site(spec)


def write_tree(site: CompiledSite, target: Path) -> Path:
    for artifact in site.artifacts:
        path = target / artifact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact.content)
        path.chmod(0o755 if artifact.executable else 0o644)
    return target
