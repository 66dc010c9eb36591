"""Hostile input, as a careless user or an attacker writes it (tests/fuzz.py makes ~2,000
seeded cases from the example specs): every case exits 0 or 2, never 3, with no traceback
and no hang; a refusal writes nothing and points at a file, line and column where the input
has one; what renders gives scripts that pass `bash -n` and shellcheck, and a dry run of
each apply.sh runs nothing but what it needs to print the plan."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import multiprocessing
import os
import re
import resource
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import fuzz
from tests.tools import shellcheck

CASE_SECONDS = 20  # a case that takes longer is a hang
MEMORY = 3 * 1024**3  # an allocation beyond it is the runaway read the tests look for
# messages about a whole file, which has no line to point at
WHOLE_FILE = re.compile(
    r"is empty|is binary|is not UTF-8|bytes; the limit|larger than|cannot read|is a (FIFO|character"
    r" device|directory|socket|block device)|no such file|expected a regular file|alias bomb|nest \d+ levels"
)
# what a dry run of apply.sh may run: to find its own directory and to name a temp dir
DRY_RUN_COMMANDS = {"dirname", "od", "tr"}
RECORDED = sorted(
    DRY_RUN_COMMANDS
    | {"ssh", "scp", "kubectl", "helm", "bosh", "pks", "minikube", "touch", "rm", "sh", "bash", "curl"}
    | {"mkdir", "install", "cp", "mv", "sudo", "cat", "id", "mktemp", "sleep", "jq", "grep", "sed"}
)


# the size of every test here follows the corpus: a seeded quarter of it by default, all
# of it with --full-corpus (make test-full); `make test` runs pytest with --dist loadscope,
# so one worker renders it once
pytestmark = pytest.mark.corpus


class Hang(Exception):
    pass


@dataclass
class Outcome:
    id: str
    code: int | str
    stderr: str
    spec: str
    wrote: bool = False
    scripts: dict[str, bytes] = field(default_factory=dict)  # executable files by output path
    node: dict[str, bytes] = field(default_factory=dict)  # node/ files (the patch script's inputs)


def _alarm(*_: object) -> None:
    raise Hang()


def _worker_init() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    signal.signal(signal.SIGALRM, _alarm)


@functools.cache
def _command() -> Any:
    """The click command behind `auditc`, built once per worker (typer builds it from the
    function signatures: half the time of a refused case when built per case)."""
    from typer.main import get_command

    from compiler.cli import app

    return get_command(app)


def _run(job: tuple[fuzz.Case, str]) -> Outcome:
    case, workdir = job
    directory = Path(workdir) / case.id
    spec = fuzz.materialize(case, directory)
    out = directory / "out"
    stderr = io.StringIO()
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = _command().main(
                args=["render", str(spec), "-o", str(out)], prog_name="auditc", standalone_mode=False
            )
        code = int(code or 0)
    except Hang:
        code = "hang"
    except MemoryError:
        code = "memory"
    except BaseException as exc:  # anything escaping the CLI's own boundary
        code = f"escaped {type(exc).__name__}"
    finally:
        signal.alarm(0)
    outcome = Outcome(case.id, code, stderr.getvalue(), str(spec), wrote=out.exists())
    if code == 0:
        for path in sorted(out.rglob("*")):
            if path.is_file() and os.access(path, os.X_OK):
                outcome.scripts[str(path.relative_to(out))] = path.read_bytes()
            if path.is_file() and path.parent.name == "node":
                outcome.node[path.name] = path.read_bytes()
    fuzz.cleanup(directory)
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    workdir = tmp_path_factory.mktemp("fuzz")
    jobs = [(case, str(workdir)) for case in fuzz.corpus()]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 2, initializer=_worker_init) as pool:
        return pool.map(_run, jobs, chunksize=16)


def test_the_corpus_is_large(outcomes: list[Outcome]) -> None:
    assert len(outcomes) > (1500 if fuzz.FULL_CORPUS else 400)
    codes = {o.code for o in outcomes}
    assert codes >= {0, 2}, "the corpus must both render and refuse"


def test_every_case_exits_0_or_2(outcomes: list[Outcome]) -> None:
    bad = [(o.id, o.code, o.stderr.strip().splitlines()[-1:]) for o in outcomes if o.code not in (0, 2)]
    assert bad == []
    tracebacks = [o.id for o in outcomes if "Traceback" in o.stderr or "internal error" in o.stderr]
    assert tracebacks == []


def test_a_refusal_writes_nothing_and_points_at_the_input(outcomes: list[Outcome]) -> None:
    refused = [o for o in outcomes if o.code == 2]
    assert not [o.id for o in refused if o.wrote]
    unplaced = []
    for outcome in refused:
        for line in outcome.stderr.splitlines():
            if line.startswith("auditc: ") or not line.strip():
                continue  # the summary
            if re.match(r"^[^\s:]+:\d+:\d+: ", line):
                continue
            if line.startswith(outcome.spec) and WHOLE_FILE.search(line):
                continue
            unplaced.append((outcome.id, line[:160]))
    assert unplaced == []
    assert all(len(line) < 2000 for o in refused for line in o.stderr.splitlines()), "no file is echoed"
    assert not [o.id for o in refused if re.search("[\x00-\x08\x0b-\x1f\x7f]", o.stderr)], "raw control chars"


def _distinct_scripts(outcomes: list[Outcome], tmp: Path) -> dict[str, Path]:
    """Every distinct generated script, once, by content."""
    out: dict[str, Path] = {}
    for outcome in outcomes:
        for name, content in outcome.scripts.items():
            digest = hashlib.sha256(content).hexdigest()[:16]
            if digest not in out:
                path = tmp / f"{digest}-{Path(name).name}"
                path.write_bytes(content)
                path.chmod(0o755)
                out[digest] = path
    return out


def test_rendered_scripts_pass_bash_and_shellcheck(outcomes: list[Outcome], tmp_path: Path) -> None:
    """Every distinct script passes `sh -n`/`bash -n` and shellcheck (tools.shellcheck: each
    distinct body in full, the context lines of every variant on their own)."""
    scripts = list(_distinct_scripts(outcomes, tmp_path).values())
    assert len(scripts) > 20
    for script in scripts:
        shell = "bash" if script.read_bytes().startswith(b"#!/usr/bin/env bash") else "sh"
        result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, (script.name, result.stderr)
    shellcheck(scripts)


def test_dry_runs_run_nothing_unexpected(outcomes: list[Outcome], tmp_path: Path) -> None:
    """Every distinct apply.sh, without --execute, on a PATH where every command records its
    call: only what the dry run needs runs, and nothing a value smuggled in."""
    import shutil

    recorder = tmp_path / "bin"
    recorder.mkdir()
    log = tmp_path / "calls"
    for name in RECORDED:
        real = shutil.which(name) if name in DRY_RUN_COMMANDS else None
        tail = f'exec {real} "$@"' if real else "exit 0"
        (recorder / name).write_text(f'#!/bin/sh\nprintf "%s\\n" "{name}" >>"{log}"\n{tail}\n')
        (recorder / name).chmod(0o755)
    bash = shutil.which("bash")
    assert bash
    apply_scripts = {
        hashlib.sha256(c).hexdigest(): c
        for o in outcomes
        for n, c in o.scripts.items()
        if n.endswith("apply.sh")
    }
    assert len(apply_scripts) > (10 if fuzz.FULL_CORPUS else 8)  # the default: one seeded sample
    for digest, content in sorted(apply_scripts.items()):
        site = tmp_path / digest[:12]
        (site / "plan").mkdir(parents=True)
        script = site / "plan" / "apply.sh"
        script.write_bytes(content)
        env = {"PATH": str(recorder), "HOME": str(site), "MINIKUBE_HOME": str(site / "mk")}
        result = subprocess.run(
            [bash, str(script)], cwd=site, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (digest[:12], result.stderr[-2000:])
        assert "dry run: nothing was changed" in result.stdout
        assert not list(tmp_path.rglob("PWNED")), digest[:12]
    called = set(log.read_text().split()) if log.exists() else set()
    assert called <= DRY_RUN_COMMANDS, called - DRY_RUN_COMMANDS


MANIFESTS = {  # where each mode of the patch script finds the apiserver's config under --root
    "static-pod": (
        "etc/kubernetes/manifests/kube-apiserver.yaml",
        "kube-apiserver-manifests/1.30.14-kubeadm.yaml",
    ),
    "bpm": ("var/vcap/jobs/kube-apiserver/config/bpm.yml", "bpm/tkgi-master.yml"),
}


def test_patch_scripts_dry_run_against_real_manifests(outcomes: list[Outcome], tmp_path: Path) -> None:
    """Every distinct patch script, with the node files it was rendered with, in --dry-run
    against a real kube-apiserver manifest (or TKGI bpm.yml) under --root: it patches or
    refuses, and nothing a value smuggled in runs."""
    data = Path(__file__).parent / "data"
    seen: set[str] = set()
    for outcome in outcomes:
        script = outcome.node.get("apiserver-config.patch.sh")
        if script is None or hashlib.sha256(script).hexdigest() in seen:
            continue
        if b"kube-apiserver-arg+" in script:
            continue  # a drop-in node script (k3s, RKE2): no manifest, no --dry-run; tests/platforms
        seen.add(hashlib.sha256(script).hexdigest())
        work = tmp_path / str(len(seen))
        (work / "node").mkdir(parents=True)
        for name, content in outcome.node.items():
            (work / "node" / name).write_bytes(content)
        mode = "bpm" if b"ctx default-mode 'bpm'" in script else "static-pod"
        target, source = MANIFESTS[mode]
        (work / "root" / target).parent.mkdir(parents=True)
        (work / "root" / target).write_bytes((data / source).read_bytes())
        result = subprocess.run(
            [
                "sh",
                str(work / "node" / "apiserver-config.patch.sh"),
                "--root",
                str(work / "root"),
                "--dry-run",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode in (0, 2), (outcome.id, result.stderr[-2000:])
        assert not list(work.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*")), outcome.id
    assert len(seen) > (10 if fuzz.FULL_CORPUS else 6)
