"""Read auditc's own data files (YAML), once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from compiler.paths import data_dir, platforms_dir


def _safe_load(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@cache
def load_data(name: str) -> Any:
    """A file under compiler/data/."""
    return _safe_load(data_dir() / name)


@cache
def load_platform(name: str) -> dict[str, Any]:
    """platforms/<name>/platform.yaml"""
    data = _safe_load(platforms_dir() / name / "platform.yaml")
    assert isinstance(data, dict)
    return data


@cache
def read_text(name: str) -> str:
    """A text file under compiler/data/ (policy presets, chart key lists)."""
    return (data_dir() / name).read_text(encoding="utf-8")
