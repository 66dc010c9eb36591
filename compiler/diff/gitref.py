"""Read spec files as they were at a git revision, without touching the checkout.

The spec and everything below its directory (the files it names) are copied from git's
object store into a temporary directory with `git ls-tree` / `git cat-file --batch`, so
the old site compiles exactly as it did then.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from compiler.errors import Diagnostic, Location, UserError
from compiler.spec.source import MAX_BYTES


def _git(args: list[str], cwd: Path, failed: Diagnostic | None = None) -> bytes:
    """git's output; ``failed``: what to report when git refuses (its own message else)."""
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise UserError("git is not installed; --base reads the old specs from git") from None
    if result.returncode != 0 and failed is not None:
        raise UserError(failed)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(
            Diagnostic(
                f"git {' '.join(args[:2])}: {message[-1] if message else 'failed'}", Location(str(cwd))
            )
        )
    return result.stdout


def repo_root(path: Path) -> Path:
    start = path if path.is_dir() else path.parent
    return Path(_git(["rev-parse", "--show-toplevel"], start.resolve()).decode().strip())


def check_ref(root: Path, ref: str) -> str:
    """The commit a ref names (refuses anything that is not a commit)."""
    if ref.startswith("-"):
        raise UserError(Diagnostic(f"not a git revision: {ref!r}", Location("--base")))
    hint = " (fetch it first: a shallow clone, such as actions/checkout's default, has no other branch)"
    # --quiet: git says nothing of why
    message = f"no commit {ref!r} in this repository{hint if '/' in ref else ''}"
    missing = Diagnostic(message, Location("--base"))
    return _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root, missing).decode().strip()


def _safe_relative(name: str) -> str | None:
    """A tree entry's path as a relative path that stays below the export directory; None
    for anything else (git can store `..`, absolute or empty components)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        return None
    return name


def export_tree(root: Path, commit: str, directory: Path, target: Path) -> list[str]:
    """Copy `directory` (relative to the repo root) as it was at `commit` into `target`.

    Only regular files of at most 1 MiB are copied (a larger one can be neither a spec nor a
    file a spec names), each through one `git cat-file --batch` process, and only to paths
    below `target`: a tree entry named `..` or `/x` is skipped, never written.
    Returns the paths copied, relative to `directory`; none when it did not exist then.
    """
    prefix = directory.as_posix().strip("/")
    prefix = "" if prefix == "." else prefix
    listing = _git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit, "--", prefix or "."], root)
    wanted: list[tuple[str, str]] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name_bytes = entry.partition(b"\t")
        mode, kind, sha, size = meta.decode().split()
        if kind != "blob" or mode == "120000" or not size.isdigit() or int(size) > MAX_BYTES:
            continue  # submodules, symlinks and big files are not spec material
        name = name_bytes.decode("utf-8", "replace")
        relative = _safe_relative(name[len(prefix) + 1 :] if prefix else name)
        if relative is not None:
            wanted.append((relative, sha))
    if not wanted:
        return []
    base = target.resolve()
    copied: list[str] = []
    with subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as batch:
        assert batch.stdin is not None and batch.stdout is not None
        for relative, sha in wanted:
            batch.stdin.write(sha.encode() + b"\n")
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                continue
            content = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after each object
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.parent.resolve().is_relative_to(base):
                continue
            destination.write_bytes(content)
            copied.append(relative)
        batch.stdin.close()
    return copied
