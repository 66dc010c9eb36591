"""A live diff as text, markdown or json."""

from __future__ import annotations

import json
from dataclasses import asdict

from compiler.live.compare import Change, LiveDiff


def change_line(change: Change) -> str:
    subject = f" {change.subject}" if change.subject else ""
    inner = f" {change.path}" if change.path else ""
    if change.kind == "absent":
        return f"  {'absent':<10} {change.where}{subject}"
    if change.diff:
        body = "".join(f"      {line}\n" for line in change.diff.splitlines())
        return f"  {change.kind:<10} {change.where}{subject}{inner}:\n{body}".rstrip("\n")
    values = f": rendered {change.wanted}, live {change.live}"
    if change.kind == "missing":
        values = f": rendered {change.wanted}, not live"
    elif change.kind == "unexpected":
        values = f": live {change.live}, not rendered"
    return f"  {change.kind:<10} {change.where}{subject}{inner}{values}"


def text(diff: LiveDiff) -> str:
    if not diff.differs:
        return f"{diff.site}: live state matches what is rendered\n"
    lines = [f"== {diff.site}: {len(diff.changes)} difference(s) from the live state"]
    lines += [change_line(c) for c in diff.changes]
    return "\n".join(lines) + "\n"


def markdown(diff: LiveDiff) -> str:
    if not diff.differs:
        return f"### auditc: `{diff.site}` matches the live state\n"
    rows = ["| where | what | path | difference | rendered | live |", "|---|---|---|---|---|---|"]
    for c in diff.changes:
        cells = [c.where, c.subject, c.path, c.kind, c.wanted or "", c.live or ""]
        rows.append("| " + " | ".join(f"`{x}`" if x else "" for x in cells).replace("|`", "| `") + " |")
    blocks = [
        f"<details><summary><code>{c.where} {c.subject}</code></summary>\n\n"
        f"```diff\n{c.diff}```\n\n</details>"
        for c in diff.changes
        if c.diff
    ]
    return (
        "\n".join([f"### auditc: `{diff.site}` differs from the live state", "", *rows, "", *blocks]) + "\n"
    )


def as_json(diff: LiveDiff) -> str:
    return (
        json.dumps(
            {"site": diff.site, "differs": diff.differs, "changes": [asdict(c) for c in diff.changes]},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
