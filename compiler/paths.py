"""Where auditc's own data lives, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def package_dir() -> Path:
    """``compiler/``: the templates are found from here (platforms/, lower/, nodepatch/)."""
    return _PACKAGE


def platforms_dir() -> Path:
    """``compiler/platforms``: one folder per platform."""
    return _PACKAGE / "platforms"


def data_dir() -> Path:
    """``compiler/data``: version tables, policy presets, chart key lists."""
    return _PACKAGE / "data"
