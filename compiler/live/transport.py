"""How node files are read from a control-plane host, one small interface per platform.

Each transport turns "read these absolute paths on that host" into the platform's own
command (ssh, `minikube ssh`), every path quoted. ``root`` takes every node path under a
directory, as the patch script's ``--root`` does: for chroots and for tests.
"""

from __future__ import annotations

import base64
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


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed; it is needed to read {what}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: no answer within 120 s") from None


def _remote_cat(path: str, sudo: bool) -> str:
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
        command = _remote_cat(self.root + path, sudo=self.user != "root")
        result = _run([*argv, "--", f"{self.user}@{self.host}", command], f"{path} on {self.host}")
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError(f"ssh {self.user}@{self.host}: {detail[-1] if detail else 'failed'}")
        return None if result.stdout == MISSING.encode() else result.stdout


@dataclass(frozen=True)
class Minikube:
    profile: str

    @property
    def name(self) -> str:
        return f"minikube/{self.profile}"

    def read(self, path: str) -> bytes | None:
        result = _run(["minikube", "ssh", "-p", self.profile, "--", _remote_cat(path, sudo=True)], path)
        if result.returncode != 0:
            raise UserError(f"minikube ssh -p {self.profile}: failed to read {path}")
        out = result.stdout.replace(b"\r\n", b"\n")  # minikube ssh allocates a terminal
        return None if out == MISSING.encode() else out


def _json(argv: list[str], what: str) -> Any:
    result = _run(argv, what)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{' '.join(argv[:4])}: {detail[-1] if detail else 'failed'}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise UserError(f"{' '.join(argv[:4])}: the output is not JSON") from None


def bosh_masters(cluster: str, prefix: str, group: str) -> tuple[str, list[str]]:
    """The cluster's deployment and its master instances (the pks CLI must be logged in)."""
    info = _json(["pks", "cluster", cluster, "--json"], f"PKS cluster {cluster}")
    uuid = str(info.get("uuid", "")) if isinstance(info, dict) else ""
    if not uuid:
        raise UserError(f"pks cluster {cluster} --json has no uuid (is the pks CLI logged in?)")
    deployment = prefix + uuid
    tables = _json(["bosh", "-d", deployment, "vms", "--json"], f"the VMs of {deployment}").get("Tables", [])
    masters = [
        str(row["instance"])
        for table in tables
        for row in table.get("Rows", [])
        if str(row.get("instance", "")).startswith(f"{group}/")
    ]
    return deployment, masters


@dataclass(frozen=True)
class Bosh:
    deployment: str
    instance: str

    @property
    def name(self) -> str:
        return self.instance

    def read(self, path: str) -> bytes | None:
        # base64 keeps the file intact through bosh's line-oriented result table
        command = (
            f"if [ -e {shq(path)} ]; then sudo base64 -w0 -- {shq(path)}; else printf %s {shq(MISSING)}; fi"
        )
        argv = ["bosh", "-d", self.deployment, "ssh", self.instance, "-c", command, "-r", "--json"]
        tables = _json(argv, f"{path} on {self.instance}").get("Tables", [])
        rows = [row for table in tables for row in table.get("Rows", [])]
        if len(rows) != 1:
            raise UserError(f"bosh ssh {self.instance}: expected one result row, got {len(rows)}")
        out = str(rows[0].get("stdout", "")).strip()
        if out == MISSING:
            return None
        try:
            return base64.b64decode(out, validate=True)
        except ValueError:
            raise UserError(f"bosh ssh {self.instance}: could not read {path}") from None
