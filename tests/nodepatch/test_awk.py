"""The patch script's awk programs run directly (compiler/nodepatch/*.awk), under every awk a
node may have: mawk, gawk --posix and busybox awk.

Each case is a directory of tests/data/nodepatch: ``input`` (the manifest, or bpm.yml for a
``bpm-`` case), ``context.json`` (optional: overrides of the test context), and either
``expected`` (the patched bytes; `pytest --update-goldens` rewrites them, review the diff)
or ``refused`` (a fragment of the reason). Every patched case is patched again to check
that a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from compiler.nodepatch.programs import HEREDOC_END, PARTS, part, program
from tests.nodepatch.helpers import run_awk
from tests.nodepatch.test_patch_script import make_context
from tests.nodepatch.test_patch_script_bpm import bpm_context
from tests.paths import DATA
from tests.tools import AWKS, require_tool, yaml12

CASES_DIR = DATA / "nodepatch"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def mode_of(case: str) -> str:
    return "bpm" if case.startswith("bpm-") else "static-pod"


def case_context(case: str) -> dict[str, Any]:
    overrides_file = CASES_DIR / case / "context.json"
    overrides = json.loads(overrides_file.read_text()) if overrides_file.exists() else {}
    if mode_of(case) == "bpm":
        return bpm_context(narrow=overrides.pop("narrow", True), **overrides)
    return make_context(**overrides)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("awk", sorted(AWKS))
def test_case(tmp_path: Path, awk: str, case: str, update_goldens: bool) -> None:
    folder = CASES_DIR / case
    context = case_context(case)
    result = run_awk(awk, mode_of(case), (folder / "input").read_bytes(), context, tmp_path)
    refused = folder / "refused"
    if refused.exists():
        assert result.status == 2, result
        assert result.output is None
        assert refused.read_text().strip() in result.error
        return
    assert result.status == 0, result.error
    assert result.output is not None
    expected = folder / "expected"
    if update_goldens:
        expected.write_bytes(result.output)
    assert result.output == expected.read_bytes(), f"{case} under {awk} (--update-goldens?)"
    again = run_awk(awk, mode_of(case), result.output, context, tmp_path)
    assert (again.status, again.output) == (0, result.output), "a second run changes the file"


def test_every_case_is_complete() -> None:
    for case in CASES:
        names = {p.name for p in (CASES_DIR / case).iterdir()}
        assert "input" in names, case
        assert len(names & {"expected", "refused"}) == 1, case


def test_parts_can_be_embedded() -> None:
    """No line of an awk file ends the script's heredoc, and every mode has one BEGIN."""
    for name in PARTS:
        assert HEREDOC_END not in part(name).splitlines()
    for mode in ("static-pod", "bpm"):
        assert program(mode).count("\nBEGIN {") == 1


# --- the helpers of yaml.awk, one at a time ------------------------------------------------------


def call(awk: str, expression: str, **env: str) -> str:
    """Print ``expression`` evaluated with yaml.awk's functions (inputs in ENVIRON)."""
    command = AWKS[awk]
    require_tool(command[0])
    text = part("yaml.awk") + f'\nBEGIN {{ printf "%s", {expression} }}\n'
    result = subprocess.run(
        [*command, text],
        env={**os.environ, "LC_ALL": "C", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


@pytest.mark.parametrize("awk", sorted(AWKS))
def test_normal_path(awk: str) -> None:
    for path, normal in (
        ("/var/log//kubernetes/audit/", "/var/log/kubernetes/audit"),
        ("/var/./log/", "/var/log"),
        ("/", "/"),
        ("//", "/"),
        ("/a/../b", "/a/../b"),
    ):
        assert call(awk, 'normal_path(ENVIRON["P"])', P=path) == normal, path


QUOTED = ["plain", "-", "--x=1", "true", "1.5", "a: b", "it's", "#x", "x #y", "", "~", "@a", "é", "a,b=c"]


@pytest.mark.parametrize("awk", sorted(AWKS))
def test_quoting_round_trips(awk: str) -> None:
    """yq (new scalars) and styled (replaced ones, all three styles) read back as written;
    decode reads what they wrote."""
    yaml = yaml12
    for value in [*QUOTED, 'say "hi" \\ back']:
        for style in ("p", "s", "d"):
            written = call(awk, 'styled(ENVIRON["S"], ENVIRON["V"])', S=style, V=value)
            assert yaml.load(f"k: {written}\n")["k"] == value, (style, value, written)
            assert call(awk, '(decode(ENVIRON["W"]) ? DEC : "(not a scalar)")', W=written) == value


@pytest.mark.parametrize("awk", sorted(AWKS))
def test_the_readiness_address_is_read_in_either_flag_form(tmp_path: Path, awk: str) -> None:
    """--secure-port and --bind-address with their value in the next item, as pflag reads
    them (and flags.py): the readiness check polls where the apiserver listens."""
    manifest = (DATA / "kube-apiserver-manifests" / "1.30.14-kubeadm.yaml").read_text()
    assert "    - --secure-port=6443\n" in manifest
    split = manifest.replace(
        "    - --secure-port=6443\n",
        '    - --secure-port\n    - "8443"\n    - --bind-address\n    - 10.0.1.171\n',
    )
    result = run_awk(awk, "static-pod", split.encode(), make_context(), tmp_path)
    assert result.status == 0, result.error
    assert "port=8443\n" in result.info and "bind=10.0.1.171\n" in result.info
