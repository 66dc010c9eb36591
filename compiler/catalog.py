"""The finding ids (compiler/data/lint-rules.yaml, and each platform's own in
compiler/platforms/<type>/lint-rules.yaml): name, severity, the one-line reason, the fix.

Every warning auditc prints has an id here, whether lint or an earlier check found it, so
`auditc explain ID` can say why it matters and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from compiler.datafiles import load_data, platform_rule_files
from compiler.errors import Severity


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    why: str
    fix: str


@cache
def rules() -> dict[str, Rule]:
    """Every id, in id order."""
    data = dict(load_data("lint-rules.yaml"))
    for name, entries in platform_rule_files():
        clash = sorted(data.keys() & entries.keys())
        if clash:
            raise AssertionError(f"platform {name} redefines finding ids {clash}")
        data |= entries
    return {
        rule_id: Rule(rule_id, entry["name"], entry["severity"], entry["why"], entry["fix"])
        for rule_id, entry in sorted(data.items())
    }


def lookup(name_or_id: str) -> Rule | None:
    """A rule by id (AUD002) or by name (configmap-bodies-logged)."""
    table = rules()
    if name_or_id.upper() in table:
        return table[name_or_id.upper()]
    return next((r for r in table.values() if r.name == name_or_id.lower()), None)
