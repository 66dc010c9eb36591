"""The review in three formats: text (coloured on a terminal), markdown (a PR comment
under GitHub's 65,536-character limit) and json (stable keys)."""

from __future__ import annotations

import json
from dataclasses import asdict

from compiler.diff.review import Group, Review, SiteDiff

COMMENT_LIMIT = 65_536
_RESERVE = 2_000  # room for the closing note when something is cut

_RED, _GREEN, _CYAN, _BOLD, _RESET = "\033[31m", "\033[32m", "\033[36m", "\033[1m", "\033[0m"


def _names(sites: list[str], shown: int = 5, code: bool = False) -> str:
    """a, b, c, d, e and 407 more"""
    quote = (lambda n: f"`{n}`") if code else (lambda n: n)
    head = ", ".join(quote(n) for n in sites[:shown])
    return head + (f" and {len(sites) - shown} more" if len(sites) > shown else "")


def _title(group: Group, base: str) -> str:
    site = group.change
    if len(group.sites) == 1:
        return f"{site.site} ({site.status} since {base})"
    return (
        f"{len(group.sites)} sites: the same change ({site.status} since {base}; shown for "
        f"{site.site}; the others remove and add the same lines but for their names, the values their specs "
        "write and file digests): "
        f"{_names(group.sites)}"
    )


def risk_tally(review: Review) -> str:
    """Sites per risk across every group: `AUD005 introduced in 412 site(s)`, most first;
    empty when the change moves no risk."""
    counts: dict[tuple[str, str], set[str]] = {}
    for group in review.groups:
        for risk in group.change.risks:
            counts.setdefault((risk.id, risk.change), set()).update(group.sites)
    ranked = sorted(counts.items(), key=lambda item: (-len(item[1]), item[0]))
    return ", ".join(f"{rid} {change} in {len(sites)} site(s)" for (rid, change), sites in ranked)


def text(review: Review, *, color: bool = False) -> str:
    def paint(code: str, line: str) -> str:
        return f"{code}{line}{_RESET}" if color else line

    out: list[str] = []
    for group in review.groups:
        site = group.change
        out.append(paint(_BOLD, f"== {_title(group, review.base)}"))
        out += [f"  ! {error}" for error in site.errors]
        for risk in site.risks:
            sign = "+" if risk.change == "introduced" else "-"
            out.append(f"  {sign} {risk.change} {risk.severity}[{risk.id}] {risk.field}: {risk.message}")
        for file in site.files:
            for line in file.diff.splitlines():
                if line.startswith(("+++", "---")):
                    out.append(paint(_BOLD, line))
                elif line.startswith("+"):
                    out.append(paint(_GREEN, line))
                elif line.startswith("-"):
                    out.append(paint(_RED, line))
                elif line.startswith("@@"):
                    out.append(paint(_CYAN, line))
                else:
                    out.append(line)
    if not out:
        out.append(f"no differences since {review.base}")
    elif tally := risk_tally(review):
        out.append(paint(_BOLD, f"risks: {tally}"))
    return "\n".join(out) + "\n"


def markdown(review: Review, limit: int = COMMENT_LIMIT) -> str:
    groups = review.groups
    head = [f"### auditc: rendered changes since `{review.base}`", ""]
    if not groups:
        return "\n".join([*head, "No site renders differently."]) + "\n"
    budget = limit - _RESERVE
    sites = sum(len(g.sites) for g in groups)
    tally = risk_tally(review)
    lines = [
        f"{sites} site(s) changed, {len(groups)} distinct change(s)."
        + (f" Risks: {tally}." if tally else ""),
        "",
    ]
    lines += ["| sites | status | files | risks introduced | risks resolved |", "|---|---|---|---|---|"]
    for group in groups:
        site = group.change
        introduced = _risk_ids(site, "introduced")
        resolved = _risk_ids(site, "resolved")
        names = _names(group.sites, 3, code=True)
        lines.append(f"| {names} | {site.status} | {len(site.files)} | {introduced} | {resolved} |")
    risks = [
        f"- **{r.change}** `{r.id}` ({r.severity}) in {_count(g)}: `{r.field}`: {_escape(r.message)}"
        for g in groups
        for r in g.change.risks
    ]
    if risks:
        lines += ["", "#### Risks", *risks]
    errors = [f"- {_count(g)}: {_escape(e)}" for g in groups for e in g.change.errors]
    if errors:
        lines += ["", "#### Specs that do not compile", *errors]
    body = "\n".join(head) + "\n"
    omitted_lines = 0
    for line in lines:  # the summary counts against the limit too
        if len(body) + len(line) + 1 > budget:
            omitted_lines += 1
            continue
        body += line + "\n"
    body += "\n"
    cut: list[str] = []
    for group in groups:
        site = group.change
        also = f", and {len(group.sites) - 1} more site(s) alike" if len(group.sites) > 1 else ""
        for file in site.files:
            block = (
                f"<details><summary><code>{site.site}/{file.path}</code> ({file.status}{also})</summary>\n\n"
                f"```diff\n{_fence_safe(file.diff)}```\n\n</details>\n"
            )
            if len(body) + len(block) > budget:
                cut.append(f"{site.site}/{file.path}")
                continue
            body += block
    if omitted_lines or cut:
        note = f"\n> Cut to stay under GitHub's {limit:,}-character comment limit: "
        parts = []
        if omitted_lines:
            parts.append(f"{omitted_lines} summary or risk line(s)")
        if cut:
            parts.append(f"{len(cut)} file diff(s), first `{cut[0]}`")
        body += note + "; ".join(parts) + ". Run `auditc diff SPECS --base REF` locally for everything.\n"
    return body[:limit]


def _count(group: Group) -> str:
    if len(group.sites) == 1:
        return f"`{group.sites[0]}`"
    return f"{len(group.sites)} sites ({_names(group.sites, 3, code=True)})"


def as_json(review: Review) -> str:
    document = {
        "base": review.base,
        "differs": review.differs,
        "sites": [asdict(s) for s in review.sites],
        # the changed sites by change: the names of each group, the first one's diff in "sites"
        "groups": [{"sites": g.sites, "shown": g.change.site} for g in review.groups],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _risk_ids(site: SiteDiff, change: str) -> str:
    ids = sorted({r.id for r in site.risks if r.change == change})
    return ", ".join(f"`{i}`" for i in ids) or "none"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _fence_safe(diff: str) -> str:
    """A diff line starting with ``` would end the code block early."""
    return diff.replace("```", "`\u200b``")
