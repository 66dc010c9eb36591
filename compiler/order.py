"""The order sites are listed in, wherever auditc lists them for people."""

from __future__ import annotations

import re

_RUNS = re.compile(r"[0-9]+|[^0-9]+")


def site_order(name: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sites in the order people number them: site-2 before site-10 (a name's runs of
    digits compared as numbers, the rest as text; site-01 and site-1 by their text)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _RUNS.findall(name)), name
