"""Reading kube-apiserver's flags and volumes back from a static pod manifest or a bpm.yml.

The patch script's awk (args.awk, static-pod.awk) decides what a manifest means on the
node; the live diff reads the same files in Python. Both follow the rules written here, and
tests/nodepatch/test_flags.py runs the awk patcher and this reader on the same manifests to
check that they agree:

- the arguments are the kube-apiserver container's ``command[1:]`` followed by its
  ``args``, or the ``args`` of the bpm process named kube-apiserver;
- ``--name=value``, or ``--name`` with its value in the next item when that item does not
  start with ``-``, or is ``-`` or a negative number (``-1``): anything else starting with
  ``-`` is the next flag, and ``--name`` alone has the value ``""``;
- the last occurrence of a flag wins;
- mount and host paths are compared normalized: ``//`` collapsed, ``.`` segments and a
  trailing ``/`` dropped, as the kubelet sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from compiler.datafiles import yaml_documents

APISERVER = "kube-apiserver"


@dataclass(frozen=True)
class Mount:
    """One volumeMount of the kube-apiserver container, its volume's hostPath resolved."""

    name: str
    mount_path: str
    read_only: bool
    host_path: str | None  # None: the volume is missing or not a hostPath


def normal_path(path: str) -> str:
    """``path`` as the kubelet compares it (``..`` is kept: resolving it needs the disk)."""
    if not path.startswith("/"):
        return path
    return "/" + "/".join(part for part in path.split("/") if part not in ("", "."))


def is_value_item(item: str) -> bool:
    """Is ``item``, after a ``--name`` without ``=``, that flag's value?"""
    return not item.startswith("-") or item == "-" or item[1] in "0123456789."


def parse_flags(args: list[str]) -> dict[str, str]:
    """Every ``--name`` in ``args`` and its effective value (the last occurrence's)."""
    flags: dict[str, str] = {}
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if not arg.startswith("--"):
            continue
        name, equals, value = arg[2:].partition("=")
        if not equals and index + 1 < len(args) and is_value_item(args[index + 1]):
            value = args[index + 1]
            skip = True
        flags[name] = value
    return flags


@lru_cache(maxsize=16)
def _document(manifest: bytes) -> dict[str, Any] | None:
    """The manifest's one mapping, parsed once: the live diff asks for its format, flags and
    mounts in turn (callers only read it)."""
    try:
        docs = yaml_documents(manifest)
    except Exception:
        return None
    return docs[0] if len(docs) == 1 and isinstance(docs[0], dict) else None


def manifest_format(manifest: bytes) -> str | None:
    """static-pod or bpm, by the document's shape; None when it is not one YAML mapping."""
    doc = _document(manifest)
    if doc is None:
        return None
    return "bpm" if "processes" in doc else "static-pod"


def _container(pod: dict[str, Any]) -> dict[str, Any] | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if not isinstance(container, dict):
            continue
        command = [str(c) for c in container.get("command") or []]
        if command and command[0].rsplit("/", 1)[-1] == APISERVER:
            return container
    return None


def apiserver_args(manifest: bytes, process: str = APISERVER) -> list[str] | None:
    """The argument list of kube-apiserver (static pod or bpm.yml); None when none is found."""
    doc = _document(manifest)
    if doc is None:
        return None
    if "processes" in doc:  # a bpm config: a list of processes
        for entry in doc.get("processes") or []:
            if isinstance(entry, dict) and entry.get("name") == process:
                return [str(a) for a in entry.get("args") or []]
        return None
    container = _container(doc)
    if container is None:
        return None
    return [str(c) for c in container["command"][1:]] + [str(a) for a in container.get("args") or []]


def apiserver_flags(manifest: bytes, process: str = APISERVER) -> dict[str, str] | None:
    """The effective flags of kube-apiserver in ``manifest``; None when none is found."""
    args = apiserver_args(manifest, process)
    return None if args is None else parse_flags(args)


def apiserver_mounts(manifest: bytes) -> list[Mount]:
    """The kube-apiserver container's mounts in a static pod manifest (a bpm.yml has none)."""
    doc = _document(manifest)
    if doc is None or "processes" in doc:
        return []
    container = _container(doc)
    if container is None:
        return []
    hosts: dict[str, str | None] = {}
    for volume in (doc.get("spec") or {}).get("volumes") or []:
        if isinstance(volume, dict):
            host = volume.get("hostPath")
            path = host.get("path") if isinstance(host, dict) else None
            hosts[str(volume.get("name"))] = normal_path(str(path)) if path is not None else None
    mounts = []
    for mount in container.get("volumeMounts") or []:
        if isinstance(mount, dict) and mount.get("mountPath") is not None:
            name = str(mount.get("name"))
            path = normal_path(str(mount["mountPath"]))
            mounts.append(Mount(name, path, bool(mount.get("readOnly")), hosts.get(name)))
    return mounts


def mount_of(
    mounts: list[Mount], name: str, host_path: str, mount_path: str, read_only: bool
) -> Mount | None:
    """The mount serving auditc's volume ``name``: its own, else a hand-made one at the same
    host and mount path that is writable where auditc's is (the patcher adopts such a mount
    instead of adding a second, and refuses a read-only one where auditc writes)."""
    for mount in mounts:
        if mount.name == name:
            return mount
    for mount in mounts:
        same = mount.mount_path == normal_path(mount_path) and mount.host_path == normal_path(host_path)
        if same and (read_only or not mount.read_only):
            return mount
    return None
