"""Where auditc's own data lives, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def platforms_dir() -> Path:
    """``platforms/``: shipped inside the wheel as ``compiler/platforms``; the repo root in a checkout."""
    inside = _PACKAGE / "platforms"
    return inside if inside.is_dir() else _PACKAGE.parent / "platforms"


def data_dir() -> Path:
    """``compiler/data``: version tables, policy presets, chart key lists."""
    return _PACKAGE / "data"
