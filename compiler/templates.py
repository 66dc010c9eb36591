"""Jinja2 environment for the scripts auditc emits.

Templates are for scripts and prose only, never for YAML structure. Autoescape is off
(it is HTML escaping, meaningless in shell); instead every value that reaches a script
goes through ``shq``, which makes it one single-quoted POSIX shell word. StrictUndefined
turns a misspelt variable into an error instead of an empty string.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.bccache import Bucket, FileSystemBytecodeCache

from compiler.paths import package_dir


def shq(value: object) -> str:
    """Quote ``value`` as one POSIX shell word: nothing inside it is ever interpreted."""
    text = str(value)
    if "\0" in text:
        raise ValueError("a NUL byte cannot be passed to a shell script")
    return "'" + text.replace("'", "'\"'\"'") + "'"


class _Compiled(FileSystemBytecodeCache):
    """Templates compiled once per user and auditc build, not once per process (about 40
    ms of every render): Jinja2's own cache, which checks each template's source checksum
    and its own and Python's versions, in a folder named for this module's bytes (the
    environment's settings and filters). A cache that cannot be read or written is no
    cache: the template is compiled as before."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a damaged file: compile again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> _Compiled | None:
    """``$XDG_CACHE_HOME/auditc`` (``~/.cache/auditc``), as pip and helm keep theirs;
    ``AUDITC_CACHE_DIR`` moves it, ``AUDITC_CACHE_DIR=`` (empty) turns it off."""
    root = os.environ.get("AUDITC_CACHE_DIR")
    if root is None:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "auditc")
    if not root:
        return None
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    folder = Path(root) / f"templates-{key}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return _Compiled(str(folder))


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        bytecode_cache=_bytecode_cache(),
        loader=jinja2.FileSystemLoader(str(package_dir())),
        auto_reload=False,  # the package's own files: not stat'ed again at every render
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        # shell has `${#var}`: move jinja's comment markers out of its way
        comment_start_string="{#{",
        comment_end_string="}#}",
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shq"] = shq
    return env


def render_template(name: str, context: Mapping[str, Any]) -> str:
    """Render the template ``name``, relative to the package (for example
    ``platforms/<type>/templates/apply.sh.j2``)."""
    text = _environment().get_template(name).render(**context)
    return text if text.endswith("\n") else text + "\n"
