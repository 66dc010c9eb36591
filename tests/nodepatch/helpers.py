"""Shared by the patch script suites: running an awk program of compiler/nodepatch directly,
the awk shim the flow tests use (one default awk, since every awk runs the awk programs in
tests/nodepatch/test_awk.py), and shellcheck of the script rendered for a context.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compiler.nodepatch import patch_script
from compiler.nodepatch.programs import program
from tests.tools import AWKS, require_tool, shellcheck

# the awk the whole-script flow tests run under (the cross-check matrix adds the others)
DEFAULT_AWK = "mawk"


def awk_shim(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory with an ``awk`` that runs implementation ``name`` and notes that it ran."""
    command = AWKS[name]
    require_tool(command[0])
    shim_dir = tmp_path_factory.mktemp(name)
    shim = shim_dir / "awk"
    shim.write_text(f'#!/bin/sh\n: >"$(dirname "$0")/used"\nexec {shlex.join(command)} "$@"\n')
    shim.chmod(0o755)
    return shim_dir


# --- the awk programs on their own --------------------------------------------------------------


@dataclass(frozen=True)
class AwkResult:
    status: int
    output: bytes | None  # the patched file (None when refused)
    error: str  # why it refused
    info: str  # port= and bind=


def awk_environment(context: Mapping[str, Any], mode: str) -> dict[str, str]:
    """What the script hands the awk program for ``context`` (as run_patcher does)."""
    volumes = [] if mode == "bpm" else context["volumes"]
    return {
        "AUDITC_FLAGS": "".join(f"{f['name']}={f['value']}\n" for f in context["flags"]),
        "AUDITC_PREFIXES": "".join(f"{p}\n" for p in context["owned_prefixes"]),
        "AUDITC_LISTS": "".join(f"{i['name']}={i['item']}\n" for i in context["list_items"]),
        "AUDITC_VOLUMES": "".join(
            "\t".join(
                [v["name"], v["host_path"], v["mount_path"], "true" if v["read_only"] else "false", v["type"]]
            )
            + "\n"
            for v in volumes
        ),
        "AUDITC_VOLUME_PREFIX": context["owned_volume_prefix"],
        "AUDITC_DIGEST": context["config_digest"],
        "AUDITC_PROCESS": context.get("bpm_process", "kube-apiserver") if mode == "bpm" else "",
    }


def run_awk(awk: str, mode: str, content: bytes, context: Mapping[str, Any], work: Path) -> AwkResult:
    """Run the awk program of ``mode`` under implementation ``awk`` on ``content``."""
    command = AWKS[awk]
    require_tool(command[0])
    work.mkdir(parents=True, exist_ok=True)
    out, info, error = work / "out", work / "info", work / "error"
    for path in (out, info, error):
        path.unlink(missing_ok=True)
    error.write_text("")
    env = {
        **os.environ,
        **awk_environment(context, mode),
        "LC_ALL": "C",
        "AUDITC_OUT": str(out),
        "AUDITC_INFO": str(info),
        "AUDITC_ERROR": str(error),
        "AUDITC_NOEOL": "1" if content and not content.endswith(b"\n") else "0",
    }
    result = subprocess.run(
        [*command, program(mode)], input=content, env=env, capture_output=True, timeout=60, check=False
    )
    assert result.stderr == b"", result.stderr.decode()
    return AwkResult(
        result.returncode,
        out.read_bytes() if result.returncode == 0 else None,
        error.read_text(),
        info.read_text() if info.exists() else "",
    )


def shellcheck_context(tmp: Path, context: Mapping[str, Any]) -> None:
    """The script rendered for ``context`` passes shellcheck (tools.shellcheck: a body
    already checked in this process is not read again; its context lines always are)."""
    script = tmp / "apiserver-config.patch.sh"
    script.write_bytes(patch_script(dict(context)))
    shellcheck([script], "--shell=sh")
