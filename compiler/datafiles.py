"""Read auditc's own data files (YAML), once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from compiler.paths import data_dir, platforms_dir


def _safe_load(path: Path) -> Any:
    """auditc's own data files, parsed with libyaml (PyYAML's C loader) when it is there:
    ruamel.yaml's pure-Python parser would add ~90 ms to every command. A test checks that
    both parsers read every data file the same way (no YAML 1.1 surprises)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


@cache
def load_data(name: str) -> Any:
    """A file under compiler/data/."""
    return _safe_load(data_dir() / name)


def platform_rule_files() -> list[tuple[str, dict[str, Any]]]:
    """(platform folder, its finding ids) for every platform folder that has its own."""
    return [
        (path.parent.name, _safe_load(path)) for path in sorted(platforms_dir().glob("*/lint-rules.yaml"))
    ]


@cache
def read_text(name: str) -> str:
    """A text file under compiler/data/ (policy presets, chart key lists)."""
    return (data_dir() / name).read_text(encoding="utf-8")


def yaml_documents(data: bytes) -> list[Any]:
    """Every document of an artifact auditc wrote (trusted YAML), for comparisons."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(data.decode("utf-8"), Loader=loader))
