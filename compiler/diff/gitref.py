"""Read spec files as they were at a git revision, without touching the checkout.

The spec and everything below its directory (the files it names) are copied from git's
object store into a temporary directory with `git ls-tree` / `git cat-file`, so the old
site compiles exactly as it did then.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from compiler.errors import Diagnostic, Location, UserError


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise UserError("git is not installed; --base reads the old specs from git") from None
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
    return _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).decode().strip()


def export_tree(root: Path, commit: str, directory: Path, target: Path) -> list[str]:
    """Copy `directory` (relative to the repo root) as it was at `commit` into `target`.

    Returns the paths copied, relative to `directory`; none when it did not exist then.
    """
    prefix = directory.as_posix().strip("/")
    prefix = "" if prefix == "." else prefix
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix or "."], root)
    copied: list[str] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name_bytes = entry.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        if kind != "blob" or mode == "120000":
            continue  # submodules and symlinks are not spec material
        name = name_bytes.decode("utf-8", "replace")
        relative = name[len(prefix) + 1 :] if prefix else name
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(_git(["cat-file", "blob", sha], root))
        copied.append(relative)
    return copied
