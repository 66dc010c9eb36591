"""What apply would do, from the live state: per cluster object, for Falco's chart release
and per control-plane host, in the order apply takes them.

A plan also pins what it was made from: the spec's digest, the rendered output's digest
and a digest of each object's, the release's and each host's live state as read. Apply
with a plan file reads everything again and refuses when any of them moved (a stale plan,
as with ``terraform apply PLAN``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from compiler.errors import UserError
from compiler.live.cluster import Release
from compiler.live.compare import Change, project, strip_ignored

Action = Literal["create", "update", "unchanged"]
ItemKind = Literal["cloud", "object", "release", "host"]  # a managed site's cloud side first
FORMAT = 1


@dataclass(frozen=True)
class Item:
    kind: ItemKind
    name: str  # the object key, the release name, the host
    action: Action
    live_digest: str  # of what was read ("absent" when nothing was there)
    changes: tuple[Change, ...] = ()
    detail: str = ""  # the release: what differs


@dataclass(frozen=True)
class Plan:
    site: str
    spec: str  # the spec file as it was named
    spec_digest: str
    output_digest: str
    engine: str  # none, argocd, flux
    items: tuple[Item, ...] = field(default=())

    @property
    def changes(self) -> bool:
        return any(item.action != "unchanged" for item in self.items)

    def of(self, kind: ItemKind) -> list[Item]:
        return [item for item in self.items if item.kind == kind]

    @property
    def cluster_changes(self) -> bool:
        """Whether a cluster object or the chart release changes (not the cloud side, not a host)."""
        return any(item.action != "unchanged" for item in self.items if item.kind in ("object", "release"))

    @property
    def hosts_to_update(self) -> list[str]:
        return [item.name for item in self.of("host") if item.action != "unchanged"]

    @property
    def digest(self) -> str:
        return _sha(to_json(self).encode())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def output_digest(artifacts: dict[str, bytes]) -> str:
    """Every rendered file, path and bytes: what ``render`` would write for the site."""
    digest = hashlib.sha256()
    for path in sorted(artifacts):
        digest.update(path.encode() + b"\0" + _sha(artifacts[path]).encode() + b"\n")
    return digest.hexdigest()


def object_digest(live: dict[str, Any] | None, wanted: dict[str, Any]) -> str:
    """The live object on the fields auditc writes (what the live diff compares): a status
    or resourceVersion that moves does not make a plan stale, a changed label does."""
    if live is None:
        return "absent"
    return _sha(_canonical(project(strip_ignored(live), wanted)))


def text_digest(text: str) -> str:
    """What a cloud CLI reported (a managed site's cloud-side setting)."""
    return _sha(text.encode())


def host_digest(files: dict[str, bytes | None] | None) -> str:
    if files is None:
        return "absent"
    digest = hashlib.sha256()
    for path in sorted(files):
        content = files[path]
        digest.update(path.encode() + b"\0" + (b"-" if content is None else b"+" + _sha(content).encode()))
    return digest.hexdigest()


def release_digest(release: Release | None) -> str:
    if release is None:
        return "absent"
    return _sha(_canonical({"chart": release.chart_version, "values": release.values}))


def release_item(name: str, release: Release | None, chart_version: str, values: Any) -> Item:
    digest = release_digest(release)
    if release is None:
        return Item("release", name, "create", digest, detail=f"install chart version {chart_version}")
    differs = []
    if release.chart_version != chart_version:
        differs.append(f"chart {release.chart_version} -> {chart_version}")
    if _canonical(release.values) != _canonical(values):
        differs.append("values differ from helm/falco-values.yaml")
    return Item("release", name, "update" if differs else "unchanged", digest, detail=", ".join(differs))


# ---- the plan file -------------------------------------------------------------------------


def to_json(plan: Plan) -> str:
    document = {"format": FORMAT, "kind": "auditc-plan", **asdict(plan)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def read(path: Path) -> Plan:
    """A plan file written by ``auditc plan -o``; anything else is a user error."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("kind") != "auditc-plan" or document.get("format") != FORMAT:
            raise ValueError("not an auditc plan file (format 1)")
        items = tuple(
            Item(
                kind=item["kind"],
                name=str(item["name"]),
                action=item["action"],
                live_digest=str(item["live_digest"]),
                changes=tuple(Change(**change) for change in item["changes"]),
                detail=str(item["detail"]),
            )
            for item in document["items"]
        )
        return Plan(
            site=str(document["site"]),
            spec=str(document["spec"]),
            spec_digest=str(document["spec_digest"]),
            output_digest=str(document["output_digest"]),
            engine=str(document["engine"]),
            items=items,
        )
    except OSError as exc:
        raise UserError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a readable plan ({type(exc).__name__}: {exc})") from None


def stale(planned: Plan, now: Plan) -> list[str]:
    """Why a plan no longer describes the site and its live state (empty: it still does)."""
    if planned.site != now.site:
        return [f"the plan is for site {planned.site!r}, the spec is {now.site!r}"]
    reasons = []
    if planned.spec_digest != now.spec_digest:
        reasons.append("the spec (or a file it names) changed since the plan was made")
    if planned.output_digest != now.output_digest:
        reasons.append("the rendered output changed since the plan was made (another auditc version?)")
    before = {(item.kind, item.name): item.live_digest for item in planned.items}
    after = {(item.kind, item.name): item.live_digest for item in now.items}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            kind, name = key
            what = {"cloud": "cloud setting", "object": "object", "release": "chart release", "host": "host"}[
                kind
            ]
            reasons.append(f"{what} {name} changed since the plan was made")
    return reasons
