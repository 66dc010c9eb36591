"""Helpers shared by the test modules: the example specs and compiling them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from compiler.api import CompiledSite, compile_site

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIRS = (ROOT / "specs", ROOT / "tests" / "specs")


def example_specs() -> list[Path]:
    """Every spec that has a golden tree: the user-facing examples and the test-only ones."""
    return sorted(p for d in SPEC_DIRS for p in d.glob("*.yaml"))


def spec_data(spec: Path) -> dict[str, Any]:
    """A spec's document as the compiler reads it: its bases merged in."""
    from compiler.spec.bases import with_bases
    from compiler.spec.source import read_yaml

    data: dict[str, Any] = with_bases(read_yaml(spec)).data
    return data


def platform_of(spec: Path) -> str:
    return str(spec_data(spec)["spec"]["platform"]["type"])


def kubeadm_specs() -> list[Path]:
    return [spec for spec in example_specs() if platform_of(spec) == "kubeadm"]


def compiled(spec: Path) -> CompiledSite:
    return compile_site(spec)


def write_tree(site: CompiledSite, target: Path) -> Path:
    for artifact in site.artifacts:
        path = target / artifact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact.content)
        path.chmod(0o755 if artifact.executable else 0o644)
    return target


MINIMAL: dict[str, Any] = {
    "apiVersion": "auditc.dev/v1alpha1",
    "kind": "Site",
    "metadata": {"name": "t"},
    "spec": {
        "kubernetes": {"version": "1.30"},
        "platform": {"type": "kubeadm", "kubeadm": {"controlPlanes": [{"host": "10.0.0.1"}]}},
        "falco": {"receiver": {"address": "10.0.0.1"}},
    },
}


def write_spec(
    tmp: Path,
    spec: dict[str, Any],
    files: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """A minimal kubeadm site with ``spec`` deep-merged into its spec, plus named files."""
    from compiler.artifacts.falco_values import deep_merge

    data = deep_merge(MINIMAL, {"spec": spec, "metadata": metadata or {}})
    path = tmp / "site.yaml"
    with path.open("w") as handle:
        YAML(typ="safe", pure=True).dump(data, handle)
    for name, text in (files or {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return path
