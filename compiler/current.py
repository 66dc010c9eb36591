"""Which sites are current: what lets ``render`` skip compiling a site that nothing touched.

After a render, ``OUTPUT/.auditc-cache/sites.json`` records for each spec what its output
was made from and what it is: the compiler (a digest of the package's own files and the
versions of the libraries that shape its bytes), every file read (the spec, its bases and
the files it names: path, resolved path and sha256) and every file written (size, mtime,
ctime, inode, mode). A later run takes a site as current only when all of it still holds:
the same compiler, each input re-read and hashed to the same digest, the same
``--files-root`` directories, and the output directory holding exactly the recorded files
with the recorded stat (a hand edit, a checkout or a deleted file changes ctime or the
listing). A file whose timestamps could not show an edit made in the same clock tick is
read and hashed instead, as git does: one written by the render no earlier than the file
system's own clock read just before the render put its sites in place (``stamp``; as git
compares with the index file's mtime), any other one written within ``RACY_NS`` of the
render's start.
Anything else, or any doubt, compiles the site as before: the cache can make a render
slower, never wrong.

The cache is local: its directory holds a ``.gitignore`` of ``*`` (git never sees it) and
a ``CACHEDIR.TAG``. ``render --check`` reads it and writes nothing. This module imports
neither pydantic nor jinja2, so a render with nothing changed never loads them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compiler.errors import Diagnostic, Location

DIRECTORY = ".auditc-cache"
FILE = "sites.json"
STAMP = "stamp"  # written to read the file system's clock (Cache.stamp)
FORMAT = 2  # 2: ``recorded`` is the time before which a file's stat is trusted
_TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# auditc's render cache: safe to delete\n"
# the libraries whose versions shape auditc's output bytes: module -> distribution name
_LIBRARIES = {
    "yaml": "pyyaml",
    "ruamel": "ruamel_yaml",
    "jinja2": "jinja2",
    "markupsafe": "markupsafe",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic_core",
}


@dataclass(frozen=True)
class Input:
    """A file a site was compiled from: as opened, as it resolved, and its digest."""

    path: str
    real: str
    sha256: str

    @staticmethod
    def of(path: Path, data: bytes) -> Input:
        return Input(absolute(path), realpath(path), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class Entry:
    """What one spec's output was made from and what it is."""

    site: str
    display: str  # the spec as it was named: the warnings' file names follow it
    roots: tuple[str, ...]
    inputs: tuple[Input, ...]
    outputs: dict[
        str, list[int]
    ]  # file: size, mtime, ctime, inode, mode, device ("dir/": mode, inode, device)
    digests: dict[str, str]  # file: sha256, of the files too new for their stat to prove anything
    recorded: int  # files whose mtime and ctime are older are trusted by their stat (ns)
    warnings: tuple[Diagnostic, ...]  # as render prints them: no reason or fix (auditc explain)


@dataclass(frozen=True)
class Prepared:
    """A site's entry as whoever compiled and staged it prepares it (a fleet's entries are
    made by the workers, not in the render's one process), all but which of its files are
    trusted by their stat: that is known once every site is staged (``Cache.record``).
    What the render needs to tell is in two numbers; the rest is JSON text, read only
    when some file turns out too new to be trusted (each field an object fewer to send)."""

    key: str  # the spec's absolute path
    site: str
    text: str  # the entry's JSON but its outputs, digests and recorded time and closing brace
    outputs: str  # JSON: ``Entry.outputs`` of the site as staged
    digests: str  # JSON: every file's sha256
    newest: int  # the latest mtime or ctime of its files (ns; -1 for none)
    device: int | None  # the device of every file and folder listed (None: not one)


def prepare(
    spec: Path,
    site: str,
    roots: tuple[Path, ...],
    inputs: tuple[Input, ...],
    digests: dict[str, str],
    warnings: tuple[Diagnostic, ...],
    listing: dict[str, list[int]] | None,
) -> Prepared | None:
    """The entry of ``site``, compiled from ``inputs`` and staged: ``digests``, the sha256
    of each file written; ``listing``, ``outputs`` of the site as it was staged (renaming
    its folder into place changes no file's stat). None when the listing is not exactly
    the files written: the site is compiled again next time."""
    if listing is None or {n for n in listing if not n.endswith("/")} != set(digests):
        return None
    head = {
        "site": site,
        "display": str(spec),
        "roots": list(_places(spec, roots)),
        "inputs": [[i.path, i.real, i.sha256] for i in inputs],
        "warnings": [_diagnostic(d) for d in warnings],
    }
    text = json.dumps(head, separators=(",", ":"), check_circular=False)[:-1]
    devices = {stats[-1] for stats in listing.values()}
    return Prepared(
        absolute(spec),
        site,
        text,
        json.dumps(dict(sorted(listing.items())), separators=(",", ":")),
        json.dumps(digests, separators=(",", ":")),
        max((max(stats[1], stats[2]) for name, stats in listing.items() if name in digests), default=-1),
        devices.pop() if len(devices) == 1 else None,
    )


@functools.cache
def compiler_id() -> str:
    """A digest of everything that decides the output's bytes besides the inputs: the
    package's files (code and data), Python's version and the installed versions of the
    libraries that read specs and write YAML."""
    sha = hashlib.sha256(sys.version.encode())
    package = Path(__file__).resolve().parent
    for directory, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(directory) / name
            sha.update(b"\0" + path.relative_to(package).as_posix().encode() + b"\0")
            sha.update(path.read_bytes())
    for found in sorted(_distributions()):
        sha.update(b"\0dist\0" + found.encode())
    return sha.hexdigest()


def _distributions() -> set[str]:
    """The dist-info names (name and version) of the libraries, where they are installed."""
    from importlib.util import find_spec

    folders: set[Path] = set()
    for module in _LIBRARIES:
        spec = find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            folders.update(Path(p).parent for p in spec.submodule_search_locations)
    return {
        entry.name.lower()
        for folder in folders
        for entry in folder.iterdir()
        if entry.name.endswith((".dist-info", ".egg-info"))
        and entry.name.split("-")[0].lower().replace(".", "_") in _LIBRARIES.values()
    }


class Cache:
    """The entries of one output root, keyed by the spec's absolute path."""

    def __init__(self, output: Path) -> None:
        _real_folder.cache_clear()  # folders resolved once per render, not once per process
        self.output = output
        self.entries: dict[str, Entry] = {}
        self.loaded: dict[str, Any] = {}  # each entry as read: written back as it is when unchanged
        self.fresh: dict[str, tuple[str, str]] = {}  # each entry recorded now: its site, its JSON
        self.dirty = False
        try:
            document = json.loads((output / DIRECTORY / FILE).read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return
        if document.get("compiler") != compiler_id():
            return
        try:
            self.entries = {key: _entry(value) for key, value in document["sites"].items()}
            self.loaded = dict(document["sites"])
        except (KeyError, TypeError, ValueError):
            self.entries = {}

    def current(self, spec: Path, roots: tuple[Path, ...]) -> Entry | None:
        """The entry of ``spec`` when its output is exactly what compiling it would write."""
        key = absolute(spec)
        entry = self.entries.get(key)
        if entry is None or entry.display != str(spec) or entry.roots != _places(spec, roots):
            return None
        for recorded in entry.inputs:
            if realpath(recorded.path) != recorded.real or _digest(recorded.path) != recorded.sha256:
                return None
        site = self.output / entry.site
        if outputs(site) != entry.outputs:
            return None
        racy = _racy(entry.outputs, entry.recorded)
        if racy:  # written too recently for their stat to show a later edit: read them
            if any(_digest(str(site / name)) != entry.digests.get(name) for name in racy):
                return None
            now = time.time_ns() - RACY_NS
            if not _racy(entry.outputs, now):  # proven now: later runs need not read them again
                self.entries[key] = replace(entry, recorded=now, digests={})
                self.loaded.pop(key, None)
                self.dirty = True
        return entry

    def record(self, prepared: Prepared, started: int, stamped: tuple[int, int] | None = None) -> None:
        """After ``prepared``'s site was written (or found up to date): ``started``, when
        the render began (``time_ns``): without ``stamped``, a file touched less than
        ``RACY_NS`` before it or since is read, not trusted, next time; ``stamped``: what
        ``stamp`` read before the site, written by this render, was put in place."""
        recorded = started - RACY_NS
        if stamped is not None and prepared.device == stamped[1]:
            recorded = stamped[0]  # the same file system's clock: no lag, skew or granularity
        # the digests of the files too new to be trusted by their stat: the rest are never read
        racy = "{}"
        if prepared.newest >= recorded:
            digests = json.loads(prepared.digests)
            names = sorted(_racy(json.loads(prepared.outputs), recorded))
            racy = json.dumps({name: digests[name] for name in names}, separators=(",", ":"))
        tail = f'"outputs":{prepared.outputs},"digests":{racy},"recorded":{recorded}}}'
        self.fresh[prepared.key] = (prepared.site, f"{prepared.text},{tail}")
        self.entries.pop(prepared.key, None)
        self.loaded.pop(prepared.key, None)
        self.dirty = True

    def stamp(self) -> tuple[int, int] | None:
        """The output file system's own clock now and its device: the mtime of a file
        written in the cache folder as the sites' files are (created, written, closed: so
        whoever sets their timestamps, the kernel or a file server, sets this one); None
        if it cannot be. Taken once the workers have staged every site and before any is
        put in place, it proves the files staged before it: an edit where they then are,
        made later, gets a later timestamp, whatever the file system's granularity and
        however its clock lags or leads this one's."""
        probe = self.output / DIRECTORY / STAMP
        try:
            probe.parent.mkdir(exist_ok=True)
            with open(probe, "wb") as handle:  # noqa: PTH123 (closed before the stat)
                handle.write(b"\n")
            info = probe.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_dev

    def unstamp(self) -> None:
        """Remove what ``stamp`` made, the cache folder too when nothing else is in it (a
        render that made the output and put nothing in place leaves none of it)."""
        with contextlib.suppress(OSError):
            (self.output / DIRECTORY / STAMP).unlink()
            (self.output / DIRECTORY).rmdir()

    def forget_sites(self, removed: set[str]) -> None:
        for key in [k for k, e in self.entries.items() if e.site in removed]:
            del self.entries[key]
            self.dirty = True
        for key in [k for k, (site, _) in self.fresh.items() if site in removed]:
            del self.fresh[key]

    def save(self) -> None:
        """Write the entries (atomically; a cache that cannot be written is no error): those
        read and left as they were, then those recorded now (the order means nothing)."""
        if not self.dirty:
            return
        folder = self.output / DIRECTORY
        for entries in (self.entries, self.fresh):
            for key in [k for k in entries if not os.path.exists(k)]:  # noqa: PTH110 (str keys, a thousand)
                del entries[key]  # a spec renamed or removed: its entry can never match again
        kept = {key: self.loaded.get(key) or _document(self.entries[key]) for key in sorted(self.entries)}
        pieces = [json.dumps(kept, separators=(",", ":"), check_circular=False)[1:-1]] if kept else []
        pieces += [f"{json.dumps(key)}:{self.fresh[key][1]}" for key in sorted(self.fresh)]
        head = json.dumps({"format": FORMAT, "compiler": compiler_id()}, separators=(",", ":"))
        document = f'{head[:-1]},"sites":{{{",".join(pieces)}}}}}'
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in ((".gitignore", b"*\n"), ("CACHEDIR.TAG", _TAG)):
                if not (folder / name).exists():
                    (folder / name).write_bytes(data)
            fd, temp = tempfile.mkstemp(prefix=".sites-", dir=folder)
            with os.fdopen(fd, "wb") as handle:
                handle.write(document.encode())
            Path(temp).replace(folder / FILE)
        except OSError:
            pass


# how far a file's timestamps may lag the clock: the file system's granularity (a kernel
# tick on ext4 and tmpfs, up to 2 s elsewhere)
RACY_NS = 2_000_000_000


def _racy(outputs: dict[str, list[int]], recorded: int) -> list[str]:
    """Files whose mtime or ctime is not older than ``recorded``: an edit made later could
    carry the same timestamps, so their content is checked instead."""
    return [
        name
        for name, stats in outputs.items()
        if not name.endswith("/") and max(stats[1], stats[2]) >= recorded
    ]


def absolute(path: Path) -> str:
    """``str(path.absolute())`` without making a Path of the working directory (a fleet asks
    for it several times a site)."""
    text = str(path)
    if path.is_absolute():
        return text
    cwd = os.getcwd()  # noqa: PTH109 (text, above)
    return cwd if text == "." else f"{cwd.rstrip('/')}/{text}"


def realpath(path: str | Path) -> str:
    """``os.path.realpath``, each folder resolved once per run (a fleet's files share a few)."""
    folder, name = os.path.split(path)
    if name in ("", ".", "..") or os.path.islink(path):  # noqa: PTH114 (no Path made for one lstat)
        return os.path.realpath(path)
    return f"{_real_folder(folder).rstrip('/')}/{name}"


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _places(spec: Path, roots: tuple[Path, ...]) -> tuple[str, ...]:
    """The folders named files may be in (the spec's and each --files-root), as named and
    as they resolve: a retargeted folder link changes what a name reads and what is allowed."""
    return tuple(f"{a}\0{_real_folder(a)}" for a in map(absolute, (spec.parent, *roots)))


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 (a str path, as recorded)
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def outputs(site: Path) -> dict[str, list[int]] | None:
    """Every file under ``site`` with what a change to it would change; None when ``site``
    is not a plain directory."""
    if site.is_symlink() or not site.is_dir():
        return None
    found: dict[str, list[int]] = {}
    pending = [("", str(site))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = prefix + entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append((name + "/", entry.path))
                    found[name + "/"] = _folder(info)
                else:
                    found[name] = _file(info)
    return found


def listed(written: dict[str, os.stat_result]) -> dict[str, list[int]]:
    """``outputs`` of a folder holding exactly what was ``written`` there: each folder
    (``name/``) and file with its stat as it was made."""
    return {name: _folder(info) if name.endswith("/") else _file(info) for name, info in written.items()}


def _folder(info: os.stat_result) -> list[int]:
    return [info.st_mode, info.st_ino, info.st_dev]


def _file(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode, info.st_dev]


def _document(entry: Entry) -> dict[str, Any]:
    return {
        "site": entry.site,
        "display": entry.display,
        "roots": list(entry.roots),
        "inputs": [[i.path, i.real, i.sha256] for i in entry.inputs],
        "outputs": dict(sorted(entry.outputs.items())),
        "digests": dict(sorted(entry.digests.items())),
        "recorded": entry.recorded,
        "warnings": [_diagnostic(d) for d in entry.warnings],
    }


def _entry(value: dict[str, Any]) -> Entry:
    return Entry(
        str(value["site"]),
        str(value["display"]),
        tuple(str(r) for r in value["roots"]),
        tuple(Input(str(p), str(r), str(s)) for p, r, s in value["inputs"]),
        dict(value["outputs"]),  # compared with a new listing as it is: nothing to convert
        {str(name): str(digest) for name, digest in value["digests"].items()},
        int(value["recorded"]),
        tuple(_undiagnostic(d) for d in value["warnings"]),
    )


def _diagnostic(d: Diagnostic) -> dict[str, Any]:
    """A warning as render prints it (``Diagnostic.short``): its reason and fix are
    ``auditc explain``'s, and most of a fleet's cache if kept here."""
    where = d.location
    return {
        "message": d.message,
        "location": [where.file, where.line, where.col] if where else None,
        "field": d.field,
        "severity": d.severity,
        "code": d.code,
        "accepted": d.accepted,
    }


def _undiagnostic(value: dict[str, Any]) -> Diagnostic:
    where = value["location"]
    severity = value["severity"]
    if severity not in ("error", "warning"):
        raise ValueError(severity)
    return Diagnostic(
        str(value["message"]),
        Location(str(where[0]), where[1], where[2]) if where else None,
        str(value["field"]),
        severity,
        str(value["code"]),
        bool(value["accepted"]),
    )
