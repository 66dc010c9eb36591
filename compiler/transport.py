"""How node files are read from a control-plane host: the ``Transport`` interface, ssh,
and the helpers a platform's own transport is written with.

Each transport turns "read this absolute path on that host" into a command (ssh here; a
platform folder may add its own, such as a CLI's ssh), every path quoted. ``root`` takes
every node path under a directory, as the patch script's ``--root`` does: for chroots and
for tests.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, Protocol

from compiler.errors import UserError
from compiler.templates import shq

MISSING = "__auditc_missing__"


class Transport(Protocol):
    @property
    def name(self) -> str:
        """How the host is named in snapshots and diffs."""
        ...

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist on the host."""
        ...


@dataclass(frozen=True)
class NodeAccess:
    """How to reach the nodes: ssh options and a root prefix for chroots/tests (``{host}``
    in it stands for each host's name, so several hosts can share one machine)."""

    root: str = ""
    identity: str | None = None
    ssh_options: tuple[str, ...] = ()


def run(argv: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed; it is needed to read {what}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: no answer within 120 s") from None


def remote_cat(path: str, sudo: bool) -> str:
    """A POSIX sh command that prints the file, or a marker when it is missing."""
    quoted = shq(path)
    cat = f"sudo -n cat -- {quoted}" if sudo else f"cat -- {quoted}"
    return f"if [ -e {quoted} ]; then {cat}; else printf %s {shq(MISSING)}; fi"


@dataclass(frozen=True)
class Ssh:
    host: str
    port: int
    user: str
    root: str = ""
    identity: str | None = None
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.host

    def read(self, path: str) -> bytes | None:
        argv = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", *self.options]
        if self.identity:
            argv += ["-i", self.identity]
        command = remote_cat(self.root + path, sudo=self.user != "root")
        result = run([*argv, "--", f"{self.user}@{self.host}", command], f"{path} on {self.host}")
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError(f"ssh {self.user}@{self.host}: {detail[-1] if detail else 'failed'}")
        return None if result.stdout == MISSING.encode() else result.stdout


def run_json(argv: list[str], what: str) -> Any:
    result = run(argv, what)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{' '.join(argv[:4])}: {detail[-1] if detail else 'failed'}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise UserError(f"{' '.join(argv[:4])}: the output is not JSON") from None
