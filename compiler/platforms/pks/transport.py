"""Reading node files of PKS/TKGI masters with the BOSH CLI."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.errors import UserError
from compiler.templates import shq
from compiler.transport import Ran, parse_cat_many, remote_cat_many, run, run_interruptible, run_json


def bosh_masters(cluster: str, prefix: str, group: str) -> tuple[str, list[str]]:
    """The cluster's deployment and its master instances (the pks CLI must be logged in)."""
    info = run_json(["pks", "cluster", cluster, "--json"], f"PKS cluster {cluster}")
    uuid = str(info.get("uuid", "")) if isinstance(info, dict) else ""
    if not uuid:
        raise UserError(f"pks cluster {cluster} --json has no uuid (is the pks CLI logged in?)")
    deployment = prefix + uuid
    tables = run_json(["bosh", "-d", deployment, "vms", "--json"], f"the VMs of {deployment}").get(
        "Tables", []
    )
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
    root: str = ""  # every node path under this directory (--node-root: chroots, tests)

    @property
    def name(self) -> str:
        return self.instance

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        # one session; base64 keeps the files intact through bosh's result table
        script = f"sudo sh -c {shq(remote_cat_many([self.root + path for path in paths]))}"
        argv = ["bosh", "-d", self.deployment, "ssh", self.instance, "-c", script, "-r", "--json"]
        tables = run_json(argv, f"the node files on {self.instance}").get("Tables", [])
        rows = [row for table in tables for row in table.get("Rows", [])]
        if len(rows) != 1:
            raise UserError(f"bosh ssh {self.instance}: expected one result row, got {len(rows)}")
        found = parse_cat_many(paths, str(rows[0].get("stdout", "")).encode())
        if found is None:
            raise UserError(f"bosh ssh {self.instance}: could not read the node files")
        return found


@dataclass(frozen=True)
class BoshShell(Bosh):
    """A master apply changes: files copied with `bosh scp -r` into a fresh directory (scp
    creates it), commands run as root with `bosh ssh -c 'sudo sh -c ...' -r --json`: bosh
    itself exits 1 for any failure and prefixes every line, so the command's exit code
    and output are read from the result row."""

    def stage(self, staging_dir: str, files: Mapping[str, bytes]) -> str:
        target = f"{staging_dir.rstrip('/')}/auditc.{secrets.token_hex(8)}"
        with tempfile.TemporaryDirectory(prefix="auditc-stage.") as local:
            for name, content in files.items():
                Path(local, name).write_bytes(content)
            argv = ["bosh", "-d", self.deployment, "scp", "-r", local, f"{self.instance}:{target}"]
            result = run(argv, f"copying the node files to {self.instance}")
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
            raise UserError(f"bosh scp to {self.instance}: {detail[-1] if detail else 'failed'}")
        return target

    def run(self, command: str, timeout: float) -> Ran:
        argv = [
            *("bosh", "-d", self.deployment, "ssh", self.instance),
            *("-c", f"sudo sh -c {shq(command)}", "-r", "--json"),
        ]
        code, out = run_interruptible(argv, timeout)
        text = out.decode("utf-8", "replace")
        row = _result_row(text)
        if row is None:  # no result: bosh did not reach the master (or was cut off)
            return Ran(code or 1, text, unreachable=True)
        try:
            status = int(str(row.get("exit_code", "")).strip())
        except ValueError:
            return Ran(code or 1, text, unreachable=True)
        return Ran(status, f"{row.get('stdout', '')}{row.get('stderr', '')}")


def _result_row(text: str) -> dict[str, Any] | None:
    """The one result row of `bosh ssh -r --json` output (its JSON document may follow
    lines bosh writes to stderr)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        document, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    rows = [row for table in document.get("Tables") or [] for row in table.get("Rows") or []]
    return rows[0] if len(rows) == 1 and isinstance(rows[0], dict) else None
