"""Rendered versus live: cluster objects on the fields auditc sets, apiserver flags as a
set restricted to the flags auditc owns, node files by meaning (YAML parsed).

Fields the API server sets or defaults are never a difference: live objects are first
stripped of the paths in compiler/data/live-ignore.yaml, then projected onto the rendered
object's shape (only what auditc writes is compared), then compared with deepdiff.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from compiler.artifacts.apiserver import ApiserverChange
from compiler.artifacts.gitops import MANAGEMENT
from compiler.datafiles import load_data, yaml_documents
from compiler.live.cluster import object_key
from compiler.live.snapshot import MANAGEMENT_KEY, Snapshot, node_files
from compiler.nodepatch.flags import (
    apiserver_flags,
    apiserver_mounts,
    manifest_format,
    mount_of,
    normal_path,
)

Kind = Literal["absent", "missing", "changed", "unexpected"]
_SECRETISH = re.compile(r"password|passwd|secret|token|private[-_]?key|api[-_]?key|credential|-data$", re.I)


@dataclass(frozen=True)
class Change:
    where: str  # an object key, or a host
    subject: str  # the file or flag, or "" for the object itself
    path: str  # inside the document ("" for the whole)
    kind: Kind
    wanted: str | None = None
    live: str | None = None
    diff: str = ""  # node files: a unified diff, live -> rendered, secret values hidden


@dataclass(frozen=True)
class LiveDiff:
    site: str
    changes: list[Change] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return bool(self.changes)


def strip_ignored(live: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(live)
    for entry in load_data("live-ignore.yaml"):
        *parents, last = entry["path"]
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def project(live: Any, wanted: Any) -> Any:
    """``live`` cut down to the keys ``wanted`` has: defaulted and server fields drop out."""
    if isinstance(wanted, dict) and isinstance(live, dict):
        return {k: project(live[k], v) for k, v in wanted.items() if k in live}
    if isinstance(wanted, list) and isinstance(live, list) and len(wanted) == len(live):
        return [project(lv, wv) for lv, wv in zip(live, wanted, strict=True)]
    return live


def _shown(path: str, value: Any) -> str | None:
    if value is None:
        return None
    if _SECRETISH.search(path):
        return "(hidden)"
    text = repr(value) if not isinstance(value, dict | list) else f"<{type(value).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."


def _document_changes(where: str, subject: str, wanted: Any, live: Any) -> list[Change]:
    projected = project(live, wanted)
    if projected == wanted:
        return []  # the common case, and deepdiff (a slow import) is not needed for it
    from deepdiff import DeepDiff

    diff = DeepDiff(projected, wanted, verbose_level=2, view="tree")
    changes: list[Change] = []
    for report, kind in (
        ("values_changed", "changed"),
        ("type_changes", "changed"),
        ("dictionary_item_added", "missing"),
        ("iterable_item_added", "missing"),
        ("iterable_item_removed", "unexpected"),
    ):
        for item in diff.get(report, []):
            path = _dotted(item.path(output_format="list"))
            changes.append(
                Change(where, subject, path, kind, _shown(path, item.t2), _shown(path, item.t1))  # type: ignore[arg-type]
            )
    return sorted(changes, key=lambda c: (c.path, c.kind))


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


def compare(
    site: str,
    artifacts: dict[str, bytes],
    snapshot: Snapshot,
    change: ApiserverChange | None,
    resolved: Any,
    config_files: list[str],
) -> LiveDiff:
    """``change``: the apiserver change the hosts should carry; None on a managed control
    plane, where the cloud-side settings are compared instead."""
    diff = LiveDiff(site)
    for path in sorted(artifacts):
        folder = path.partition("/")[0]
        if folder not in ("cluster", MANAGEMENT) or path.endswith("/kustomization.yaml"):
            continue
        for obj in yaml_documents(artifacts[path]):
            key = (MANAGEMENT_KEY if folder == MANAGEMENT else "") + object_key(obj)
            live = snapshot.objects.get(key)
            if live is None:
                diff.changes.append(Change(key, "", "", "absent"))
                continue
            diff.changes.extend(_document_changes(key, "", obj, strip_ignored(live)))
    for setting in snapshot.cloud:
        if setting.differs:
            diff.changes.append(Change(setting.name, "", "", "changed", setting.wanted, setting.live))
    if change is None:
        return diff
    paths = node_files(resolved, config_files)
    for host in expected_hosts(resolved, snapshot):
        if host not in snapshot.nodes:
            diff.changes.append(Change(host, "", "", "absent", "(the host's files)", None))
            continue
        files = snapshot.nodes[host]
        manifest_path, config_paths = paths[0], paths[1:]
        if resolved.paths.manifest_format == "drop-in":
            # a file of auditc's own that the platform merges into the flags: all of it
            diff.changes.extend(_document(host, manifest_path, files.get(manifest_path), artifacts))
        else:
            diff.changes.extend(_flags(host, manifest_path, files.get(manifest_path), change))
            diff.changes.extend(_volumes(host, manifest_path, files.get(manifest_path), change))
        for path in config_paths:
            diff.changes.extend(_document(host, path, files.get(path), artifacts))
    return diff


def _document(host: str, path: str, live_bytes: bytes | None, artifacts: dict[str, bytes]) -> list[Change]:
    """A node file auditc writes whole (node/<its name>), compared as a YAML document."""
    if live_bytes is None:
        return [Change(host, path, "", "absent")]
    (wanted,) = yaml_documents(artifacts[f"node/{path.rsplit('/', 1)[-1]}"])
    try:
        live_docs = yaml_documents(live_bytes)
    except Exception:
        return [Change(host, path, "", "changed", "(valid YAML)", "(not valid YAML)")]
    live_doc = live_docs[0] if len(live_docs) == 1 else live_docs
    if wanted == live_doc:
        return []
    # one change per file, shown as a unified diff of both documents written the same
    # canonical way: an inserted policy rule reads as one hunk, not as a cascade of
    # shifted list positions
    return [Change(host, path, "", "changed", diff=_document_diff(wanted, live_doc))]


def _document_diff(wanted: Any, live: Any) -> str:
    import difflib

    from compiler.emit import yaml_bytes
    from compiler.redaction import hide_pair

    live_text, wanted_text = hide_pair(yaml_bytes(live).decode(), yaml_bytes(wanted).decode())
    lines = difflib.unified_diff(
        live_text.splitlines(keepends=True), wanted_text.splitlines(keepends=True), "live", "rendered", n=2
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _flags(host: str, path: str, manifest: bytes | None, change: ApiserverChange) -> list[Change]:
    """The apiserver flags auditc owns, compared as a set: order and quoting do not matter."""
    if manifest is None:
        return [Change(host, path, "", "absent")]
    live = apiserver_flags(manifest)
    if live is None:
        return [Change(host, path, "", "changed", "(a kube-apiserver container)", "(none found)")]
    wanted = dict(change.flags)
    out: list[Change] = []
    for name in sorted(set(wanted) | {n for n in live if n.startswith(change.owned_prefixes)}):
        flag = f"--{name}"
        if name not in live:
            out.append(Change(host, path, flag, "missing", wanted[name], None))
        elif name not in wanted:
            out.append(Change(host, path, flag, "unexpected", None, live[name]))
        elif live[name] != wanted[name]:
            out.append(Change(host, path, flag, "changed", wanted[name], live[name]))
    for name, item in change.list_items:
        if item not in live.get(name, "").split(","):
            out.append(Change(host, path, f"--{name}", "missing", item, live.get(name)))
    return out


def expected_hosts(resolved: Any, snapshot: Snapshot) -> list[str]:
    """The hosts the spec names (a host missing from the snapshot is a difference); where
    the platform finds its hosts at run time, the ones the snapshot has."""
    hosts: list[str] | None = resolved.platform.hosts(resolved)
    return hosts if hosts is not None else sorted(snapshot.nodes)


def _volumes(host: str, path: str, manifest: bytes | None, change: ApiserverChange) -> list[Change]:
    """auditc's hostPath volumes and mounts in a static pod manifest (bpm mounts none); a
    hand-made mount the patcher adopted (same host and mount path) counts as auditc's."""
    if manifest is None or not change.volumes:
        return []
    if manifest_format(manifest) != "static-pod":
        return []
    mounts = apiserver_mounts(manifest)
    out: list[Change] = []
    for volume in change.volumes:
        mount = mount_of(mounts, volume.name, volume.host_path, volume.mount_path, volume.read_only)
        live_path = mount.host_path if mount is not None else None
        if live_path != normal_path(volume.host_path):
            out.append(
                Change(
                    host,
                    path,
                    f"volume {volume.name}",
                    "missing" if live_path is None else "changed",
                    volume.host_path,
                    live_path,
                )
            )
        wrong_path = mount is not None and mount.mount_path != normal_path(volume.mount_path)
        if mount is None or wrong_path or mount.read_only != volume.read_only:
            shown = f"{mount.mount_path} readOnly={mount.read_only}" if mount else None
            out.append(
                Change(
                    host,
                    path,
                    f"volumeMount {volume.name}",
                    "missing" if not mount else "changed",
                    f"{volume.mount_path} readOnly={volume.read_only}",
                    shown,
                )
            )
    return out
