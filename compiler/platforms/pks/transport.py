"""Reading node files of PKS/TKGI masters with the BOSH CLI."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from compiler.errors import UserError
from compiler.templates import shq
from compiler.transport import MISSING, run_json


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

    @property
    def name(self) -> str:
        return self.instance

    def read(self, path: str) -> bytes | None:
        # base64 keeps the file intact through bosh's line-oriented result table
        command = (
            f"if [ -e {shq(path)} ]; then sudo base64 -w0 -- {shq(path)}; else printf %s {shq(MISSING)}; fi"
        )
        argv = ["bosh", "-d", self.deployment, "ssh", self.instance, "-c", command, "-r", "--json"]
        tables = run_json(argv, f"{path} on {self.instance}").get("Tables", [])
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

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        return {path: self.read(path) for path in paths}
