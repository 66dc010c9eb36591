"""Gather the live state of one site, save it as a directory, read it back.

Layout of a snapshot directory (plain files, to inspect or attach to a ticket):

    snapshot.json              site, and what was read: object keys and node paths,
                               each mapped to its file here, or null when absent
    cluster/<n>.json           one live object per file, as `kubectl get -o json` gave it
    nodes/<host>/<path>        node files, at their absolute path under the host's dir
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import UserError
from compiler.live.cluster import Kubectl, object_key
from compiler.platform import CloudSetting
from compiler.resolve import Resolved
from compiler.transport import NodeAccess, cloud_cli


@dataclass
class Snapshot:
    site: str
    objects: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    nodes: dict[str, dict[str, bytes | None]] = field(default_factory=dict)
    cloud: list[CloudSetting] = field(default_factory=list)  # a managed site's cloud side
    # what the cloud CLI answered to each read-only command (json of the argv -> stdout):
    # a saved snapshot keeps the answers, the settings are worked out against the spec of now
    cloud_reads: dict[str, str] = field(default_factory=dict)


def node_files(resolved: Resolved, config_files: list[str]) -> list[str]:
    """The node paths auditc writes: the apiserver config and the files it installs."""
    paths = resolved.paths
    return [paths.manifest, *(f"{paths.config_dir}/{name}" for name in config_files)]


MANAGEMENT_KEY = "management:"  # before the key of an object read in the management cluster


def gather(
    resolved: Resolved,
    objects: list[dict[str, Any]],
    config_files: list[str],
    kubectl: Kubectl,
    access: NodeAccess,
    management: tuple[Kubectl, list[dict[str, Any]]] | None = None,
) -> Snapshot:
    """The live objects (and, with ``management``, the objects of management/ read in the
    management cluster), the nodes' files or a managed site's cloud side."""
    snapshot = Snapshot(resolved.name)
    for obj in objects:
        snapshot.objects[object_key(obj)] = kubectl.get(obj)
    if management is not None:
        hub, held = management
        for obj in held:
            snapshot.objects[MANAGEMENT_KEY + object_key(obj)] = hub.get(obj)
    if resolved.managed:
        snapshot.cloud = read_cloud(resolved, snapshot.cloud_reads)
        return snapshot  # no node: the cloud runs the control plane
    paths = node_files(resolved, config_files)
    for transport in resolved.platform.transports(resolved, access):
        snapshot.nodes[transport.name] = transport.read_many(paths)
    return snapshot


def read_cloud(resolved: Resolved, answers: dict[str, str] | None = None) -> list[CloudSetting]:
    """A managed site's cloud-side settings read now with the cloud's CLI; each answer is
    kept in ``answers`` when given (a snapshot)."""

    def read(argv: list[str]) -> str:
        out = cloud_cli(argv, f"the cloud side of site {resolved.name}")
        if answers is not None:
            answers[json.dumps(argv)] = out
        return out

    return resolved.platform.cloud_state(resolved, read)


def replay_cloud(resolved: Resolved, snapshot: Snapshot, where: Path) -> list[CloudSetting]:
    """The cloud-side settings of the spec of now, from a saved snapshot's answers; a read
    the snapshot has no answer to (the spec names another cluster now) is a user error."""

    def read(argv: list[str]) -> str:
        try:
            return snapshot.cloud_reads[json.dumps(argv)]
        except KeyError:
            shown = " ".join(argv[:3])
            raise UserError(
                f"{where}: the snapshot holds no answer to {shown} as the spec reads it now "
                "(it was taken for other cloud settings): take a new one with auditc snapshot"
            ) from None

    return resolved.platform.cloud_state(resolved, read)


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".json"


def save(snapshot: Snapshot, directory: Path) -> None:
    index: dict[str, Any] = {"site": snapshot.site, "objects": {}, "nodes": {}}
    if snapshot.cloud_reads:
        index["cloud"] = [
            {"command": json.loads(argv), "output": out} for argv, out in sorted(snapshot.cloud_reads.items())
        ]
    for key in sorted(snapshot.objects):
        obj = snapshot.objects[key]
        if obj is None:
            index["objects"][key] = None
            continue
        name = f"cluster/{_file_name(key)}"
        (directory / "cluster").mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        index["objects"][key] = name
    for host in sorted(snapshot.nodes):
        index["nodes"][host] = {}
        for path, content in sorted(snapshot.nodes[host].items()):
            if content is None:
                index["nodes"][host][path] = None
                continue
            name = f"nodes/{host}{path}"
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(content)
            index["nodes"][host][path] = name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "snapshot.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def load(directory: Path) -> Snapshot:
    """Read a snapshot directory back; anything malformed is a user error, and every file it
    names must lie inside the directory."""
    base = directory.resolve()

    def inside(name: str) -> Path:
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise UserError(f"{directory}: snapshot.json names {name!r}, outside the snapshot")
        return path

    try:
        index = json.loads((directory / "snapshot.json").read_text())
        snapshot = Snapshot(str(index["site"]))
        for key, name in index["objects"].items():
            obj = json.loads(inside(name).read_text()) if name else None
            if obj is not None and not isinstance(obj, dict):
                raise ValueError(f"{name} is not a JSON object")
            snapshot.objects[str(key)] = obj
        for host, files in index["nodes"].items():
            snapshot.nodes[str(host)] = {
                str(path): inside(name).read_bytes() if name else None for path, name in files.items()
            }
        for read in index.get("cloud", []):
            if isinstance(read, dict) and "command" not in read and "wanted" in read:
                raise UserError(
                    f"{directory}: an older auditc took this snapshot (it kept verdicts, not the "
                    "cloud's answers): take a new one with auditc snapshot"
                )
            argv = [str(part) for part in read["command"]]
            snapshot.cloud_reads[json.dumps(argv)] = str(read["output"])
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{directory}: not a readable snapshot ({type(exc).__name__}: {exc})") from None
    return snapshot
