"""Write a site's artifacts into output/<site>/ atomically, or check that they are current.

Rendering goes to a temp dir next to the target and is swapped in with two renames, so
a failed render leaves the previous output byte-identical, and files the spec no longer
produces disappear. MANIFEST.json records every file's sha256.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from compiler import __version__
from compiler.bundle import Artifact
from compiler.emit import json_bytes

MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class Changes:
    site: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def with_manifest(
    site: str, spec_digest: str, artifacts: list[Artifact], falco: dict[str, object] | None = None
) -> list[Artifact]:
    """The artifacts plus MANIFEST.json: every file's digest, the spec's, the compiler's
    version and (``falco``) the Falco release and the exact chart its values were written for."""
    files = {a.path: hashlib.sha256(a.content).hexdigest() for a in artifacts}
    manifest: dict[str, object] = {
        "compiler": {"name": "auditc", "version": __version__},
        "site": site,
        "specDigest": f"sha256:{spec_digest}",
        "files": {path: f"sha256:{files[path]}" for path in sorted(files)},
    }
    if falco is not None:
        manifest["falco"] = falco
    return sorted([*artifacts, Artifact(MANIFEST, json_bytes(manifest))], key=lambda a: a.path)


def _existing(target: Path) -> dict[str, bytes]:
    if not target.is_dir():
        return {}
    return {
        p.relative_to(target).as_posix(): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()
    }


def compare(target: Path, artifacts: list[Artifact], site: str) -> Changes:
    """What writing ``artifacts`` into ``target`` would change (also used by --check)."""
    old = _existing(target)
    new = {a.path: a.content for a in artifacts}
    old_modes = {path: os.access(target / path, os.X_OK) for path in old}
    return Changes(
        site,
        created=sorted(set(new) - set(old)),
        updated=sorted(
            p
            for p in set(new) & set(old)
            if new[p] != old[p] or old_modes[p] != next(a.executable for a in artifacts if a.path == p)
        ),
        deleted=sorted(set(old) - set(new)),
    )


def orphans(output: Path, keep: set[str]) -> list[str]:
    """Site directories under ``output`` that auditc rendered but no spec produces any more."""
    if not output.is_dir():
        return []
    found = []
    for child in sorted(output.iterdir()):
        if child.name not in keep and not child.name.startswith(".") and child.is_dir():
            manifest = child / MANIFEST
            if manifest.is_file() and b'"name": "auditc"' in manifest.read_bytes():
                found.append(child.name)
    return found


def not_ours(target: Path) -> str | None:
    """Why ``target`` must not be replaced: it exists and auditc did not write it (a file, a
    symlink, or a directory with content but no auditc MANIFEST.json). None when it is
    absent, empty or auditc's."""
    if target.is_symlink():
        return "is a symlink"
    if not target.exists():
        return None
    if not target.is_dir():
        return "is not a directory"
    manifest = target / MANIFEST
    if manifest.is_file() and b'"name": "auditc"' in manifest.read_bytes()[:4096]:
        return None
    return None if not any(target.iterdir()) else "holds files auditc did not write (no auditc MANIFEST.json)"


def remove_site(target: Path) -> None:
    shutil.rmtree(target)


@dataclass(frozen=True)
class Staged:
    """A site's new output written beside its target, not yet in place (``staging`` is
    None when nothing changes)."""

    target: Path
    staging: Path | None
    changes: Changes


def stage_site(
    target: Path,
    artifacts: list[Artifact],
    site: str,
    render: str = "",
    written: dict[str, os.stat_result] | None = None,
) -> Staged:
    """Write ``artifacts`` into a hidden directory next to ``target`` when they differ from
    what is there; ``commit`` swaps it in, ``discard`` removes it. ``render`` names the
    render staging it (``sweep`` removes what it staged). ``written`` is given the stat of
    each folder (``name/``) and file staged, as each is made: renaming the staging folder
    into place changes none of them."""
    changes = compare(target, artifacts, site)
    if not changes.any:
        return Staged(target, None, changes)
    prefix = f".{site}.new-{render}-"
    try:
        try:
            staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        except FileNotFoundError:  # the output's first site
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    except OSError as exc:
        raise _at(exc, target.parent) from None
    try:
        _write_tree(staging, artifacts, {} if written is None else written)
        staging.chmod(0o755)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _at(exc, target.parent) from None
        raise
    return Staged(target, staging, changes)


def _at(exc: OSError, where: Path) -> OSError:
    """``exc`` as failing at ``where``: a staging folder's own name (random, and removed)
    would tell the user nothing, and would differ from site to site."""
    return OSError(exc.errno, exc.strerror, str(where))


def commit(staged: Staged) -> None:
    """Put a staged site in place with two renames (the previous output back on failure)."""
    if staged.staging is None:
        return
    target = staged.target
    try:
        old = None  # a fleet's first render has none: nothing more to name, move or remove
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            target.rename(old)
        try:
            staged.staging.rename(target)
        except BaseException:
            if old is not None and old.exists():
                old.rename(target)  # put the previous output back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        discard(staged)
        raise


def discard(staged: Staged) -> None:
    if staged.staging is not None:
        shutil.rmtree(staged.staging, ignore_errors=True)


def sweep(output: Path, render: str) -> None:
    """Remove whatever the render ``render`` staged in ``output`` and did not put in place:
    sites its workers staged that it never took (Ctrl-C, a bug, a duplicate name)."""
    marker = f".new-{render}-"
    try:
        with os.scandir(output) as listing:
            entries = [entry.path for entry in listing if entry.name.startswith(".") and marker in entry.name]
    except OSError:
        return
    for path in entries:
        shutil.rmtree(path, ignore_errors=True)


def write_site(target: Path, artifacts: list[Artifact], site: str) -> Changes:
    staged = stage_site(target, artifacts, site)
    commit(staged)
    return staged.changes


def _write_tree(root: Path, artifacts: list[Artifact], written: dict[str, os.stat_result]) -> None:
    """Each artifact under the new directory ``root``, each folder made once, and the stat
    of each into ``written`` (on a fleet, creating files is most of a render's system
    time: no call more than needed, and none to list them again)."""
    base = str(root)  # joined as text: a Path per file cost a third of writing a site
    for artifact in artifacts:
        folder = artifact.path.rpartition("/")[0]
        if folder and f"{folder}/" not in written:
            _make_folders(base, folder, written)
        mode = 0o755 if artifact.executable else 0o644
        written[artifact.path] = _write_file(f"{base}/{artifact.path}", artifact.content, mode)


def _make_folders(base: str, folder: str, written: dict[str, os.stat_result]) -> None:
    """``folder`` and those above it that are not made yet, under ``base``."""
    above = folder.rpartition("/")[0]
    if above and f"{above}/" not in written:
        _make_folders(base, above, written)
    path = f"{base}/{folder}"
    os.mkdir(path)  # noqa: PTH102 (text paths, above)
    written[f"{folder}/"] = os.stat(path, follow_symlinks=False)  # noqa: PTH116


def replace_file(target: Path, content: bytes) -> None:
    """``target`` holding ``content`` (mode 0644), whole or not at all: written beside it
    under a name of its own, then renamed over it."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    try:
        _write_file(temporary, content, 0o644)
        temporary.replace(target)
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise


def _write_file(path: str | Path, content: bytes, mode: int) -> os.stat_result:
    """A new file of ``content`` and exactly ``mode``, whatever the umask; its stat once
    written (closing it changes none of it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != mode:  # the umask took bits away
            os.fchmod(fd, mode)
            info = os.fstat(fd)
        return info
    finally:
        os.close(fd)
