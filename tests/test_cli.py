"""The command line in-process (typer's runner) and, where start-up matters, as a process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiler.api import schema
from compiler.cli import app
from tests.sites import ROOT, example_specs

runner = CliRunner()


def test_schema_command_prints_the_committed_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema()
    committed = (ROOT / "specs" / "site.schema.json").read_text()
    assert committed == result.stdout, "specs/site.schema.json is stale: run `make schema`"


def test_example_specs_point_editors_at_the_schema() -> None:
    for spec in (ROOT / "specs").glob("*.yaml"):
        assert spec.read_text().startswith("# yaml-language-server: $schema=./site.schema.json\n"), spec
    for base in (ROOT / "specs" / "bases").glob("*.yaml"):
        assert base.read_text().startswith(
            "# yaml-language-server: $schema=../site-defaults.schema.json\n"
        ), base


def test_the_defaults_schema_takes_any_part_of_a_site_and_nothing_else() -> None:
    """What editors check bases against (jsonschema, as yaml-language-server does): the
    example base passes, a site or an unknown field does not; a list item stays whole."""
    import jsonschema
    import yaml

    result = runner.invoke(app, ["schema", "--defaults"])
    assert result.exit_code == 0
    committed = (ROOT / "specs" / "site-defaults.schema.json").read_text()
    assert committed == result.stdout, "specs/site-defaults.schema.json is stale: run `make schema`"
    validator = jsonschema.Draft202012Validator(json.loads(committed))
    base = yaml.safe_load((ROOT / "specs/bases/corp-kubeadm.yaml").read_text())
    assert list(validator.iter_errors(base)) == []
    assert list(validator.iter_errors({"apiVersion": "auditc.dev/v1alpha1", "kind": "SiteDefaults"})) == []
    site = yaml.safe_load((ROOT / "specs/prod-east.yaml").read_text())
    assert {e.message for e in validator.iter_errors(site)} >= {"'SiteDefaults' was expected"}
    base["spec"]["falko"] = {}
    assert [e.message for e in validator.iter_errors(base)] == [
        "Additional properties are not allowed ('falko' was unexpected)"
    ]
    del base["spec"]["falko"]
    base["spec"]["platform"]["kubeadm"] = {"controlPlanes": [{"user": "ops"}]}  # an item without its host
    errors = list(validator.iter_errors(base))
    assert errors and "'host' is a required property" in {c.message for e in errors for c in e.context}
    base["spec"]["platform"]["kubeadm"] = {"controlPlanes": [{"host": "10.0.0.1", "user": "ops"}]}
    assert list(validator.iter_errors(base)) == []


def test_validate_ok(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "specs")])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.count(": ok (") == len(list((ROOT / "specs").glob("*.yaml")))


def test_render_then_check_then_stale_then_clean(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(out)])
    assert first.exit_code == 0, first.stderr
    assert runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(out), "--check"]).exit_code == 0

    stray = out / "prod-east" / "cluster" / "old.yaml"
    stray.write_text("kind: Leftover\n")
    (out / "prod-east" / "helm" / "falco-values.yaml").write_text("changed: true\n")
    check = runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(out), "--check"])
    assert check.exit_code == 1
    assert "prod-east/cluster/old.yaml (delete)" in check.stderr
    assert "prod-east/helm/falco-values.yaml (update)" in check.stderr
    assert stray.exists(), "--check must not write"

    again = runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(out)])
    assert again.exit_code == 0
    assert not stray.exists(), "files the spec no longer produces disappear"
    assert runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(out), "--check"]).exit_code == 0


def test_render_single_file_and_modes(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "prod-east.yaml"
    result = runner.invoke(app, ["render", str(spec), "-o", str(tmp_path)])
    assert result.exit_code == 0
    assert os.access(tmp_path / "prod-east/node/apiserver-config.patch.sh", os.X_OK)
    assert os.access(tmp_path / "prod-east/plan/apply.sh", os.X_OK)
    assert not os.access(tmp_path / "prod-east/node/audit-policy.yaml", os.X_OK)


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr


def test_internal_errors_exit_3_with_one_line(monkeypatch: object, tmp_path: Path) -> None:
    import compiler.api

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(compiler.api, "render", boom)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["render", str(ROOT / "specs"), "-o", str(tmp_path)])
    assert result.exit_code == 3
    assert "internal error (RuntimeError: kaboom)" in result.stderr and "Traceback" not in result.stderr


def test_help_does_not_import_the_heavy_modules() -> None:
    code = (
        "import sys; from compiler.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('deepdiff', 'pydantic', 'jinja2', 'ruamel.yaml') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_console_script_is_installed() -> None:
    exe = shutil.which("auditc")
    assert exe, "auditc is not on PATH (pip install .)"
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("auditc ")


def test_every_example_validates_without_unexpected_warnings() -> None:
    """The examples' defaults render clean: only the security lint warnings a reviewer should
    weigh (plain http, a NodePort, configmap bodies, a DaemonSet receiver), none of the spec
    checks' warnings (versions, charts, artifacts, values keys: AUD018 and later)."""
    for spec in example_specs():
        result = runner.invoke(app, ["validate", "--format", "json", str(spec)])
        assert result.exit_code == 0, result.stdout
        (site,) = json.loads(result.stdout)["sites"]
        ids = {f["id"] for f in site["findings"]}
        assert ids <= {"AUD002", "AUD003", "AUD005", "AUD010"}, (spec.name, ids)


def test_explain_every_id_or_one(tmp_path: Path) -> None:
    from compiler.catalog import rules

    every = runner.invoke(app, ["explain"])
    assert every.exit_code == 0
    assert [line.split()[0] for line in every.stdout.splitlines() if not line.startswith(" ")] == list(
        rules()
    )
    one = runner.invoke(app, ["explain", "AUD003"])
    assert one.stdout.splitlines() == [
        "AUD003 receiver-without-tls (warning)",
        f"  why: {rules()['AUD003'].why}",
        f"  fix: {rules()['AUD003'].fix}",
    ]
    by_name = runner.invoke(app, ["explain", "configmap-bodies-logged", "--format", "json"])
    (entry,) = json.loads(by_name.stdout)["ids"]
    assert entry == {
        "id": "AUD002",
        "name": "configmap-bodies-logged",
        "severity": "warning",
        "why": rules()["AUD002"].why,
        "fix": rules()["AUD002"].fix,
    }
    unknown = runner.invoke(app, ["explain", "AUD999"])
    assert unknown.exit_code == 2 and "unknown finding id 'AUD999'" in unknown.stderr


def test_render_verbose_lists_every_file(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "edge-tls.yaml"
    result = runner.invoke(app, ["render", str(spec), "-o", str(tmp_path), "-v"])
    assert result.exit_code == 0
    created = [line for line in result.stderr.splitlines() if line.startswith("create: ")]
    assert len(created) == len(list((tmp_path / "edge-tls").rglob("*.*")))
    quiet = runner.invoke(app, ["render", str(spec), "-o", str(tmp_path)])
    assert "0 changed (0 file(s)), 1 up to date" in quiet.stderr.splitlines()[-1]


def test_render_of_a_spec_dir_removes_sites_no_spec_produces(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs)
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(specs), "-o", str(out)]).exit_code == 0
    (specs / "legacy-lab.yaml").unlink()
    (out / "not-auditc").mkdir()  # a directory auditc never rendered is left alone
    check = runner.invoke(app, ["render", str(specs), "-o", str(out), "--check"])
    assert check.exit_code == 1
    assert "legacy-lab/MANIFEST.json (delete)" in check.stderr
    assert runner.invoke(app, ["render", str(specs), "-o", str(out)]).exit_code == 0
    expected = sorted([*(p.stem for p in specs.glob("*.yaml")), "not-auditc"])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == expected
    assert "legacy-lab" not in expected
    # naming one spec file renders just that site and touches no other
    assert runner.invoke(app, ["render", str(specs / "edge-tls.yaml"), "-o", str(out)]).exit_code == 0
    assert (out / "prod-east").is_dir()


def test_an_unwritable_output_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = runner.invoke(app, ["render", str(ROOT / "specs" / "prod-east.yaml"), "-o", str(blocker)])
    assert result.exit_code == 2, result.stderr
    assert "cannot write output" in result.stderr


def test_timeouts_take_kubectl_durations() -> None:
    from compiler.cli import duration

    assert [duration(t) for t in ("300", "0.5", "90s", "5m", "1m30s", "500ms", "1h")] == [
        300,
        0.5,
        90,
        300,
        90,
        0.5,
        3600,
    ]
    assert duration(60) == 60  # an option's default
    for bad in ("5x", "m", "1m 30s", "-5", "0", "0s", "8d", ""):
        result = runner.invoke(app, ["verify", "site.yaml", "--timeout", bad])
        assert result.exit_code == 2, bad
        assert "--timeout" in result.output and "duration" in result.output, bad


def test_a_long_render_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """A progress line for long runs, rewritten in place and cleared at the end; none when
    stderr is not a terminal (CliRunner's is not)."""
    import io

    from compiler.cli import PROGRESS_FROM, _progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _progress(io.StringIO()) is None
    terminal = Terminal()
    show = _progress(terminal)
    assert show is not None
    for done in range(1, PROGRESS_FROM + 1):
        show(done, PROGRESS_FROM, Path(f"site-{done}.yaml"))
    show(PROGRESS_FROM, PROGRESS_FROM, Path())
    text = terminal.getvalue()
    assert "\r\033[K[1/20] site-1.yaml" in text and "\r\033[K[20/20] site-20.yaml" in text
    assert text.endswith("[20/20] site-20.yaml\r\033[K"), "cleared at the end"
    short = Terminal()
    small = _progress(short)
    assert small is not None
    small(0, 3, Path("a.yaml"))
    assert short.getvalue() == "", "a short run shows none"

    result = runner.invoke(
        app, ["render", str(ROOT / "specs" / "eks-prod.yaml"), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0 and "\r" not in result.stderr


def test_render_tells_progress_of_each_spec_then_the_end(tmp_path: Path) -> None:
    from compiler import api

    seen: list[tuple[int, int, str]] = []
    specs = [ROOT / "specs" / "eks-prod.yaml", ROOT / "specs" / "gke-prod.yaml"]
    api.render(
        specs, tmp_path / "out", progress=lambda done, total, spec: seen.append((done, total, spec.name))
    )
    assert seen == [(1, 2, "eks-prod.yaml"), (2, 2, "gke-prod.yaml"), (2, 2, "")]


def _auditc(*argv: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    """The real command, in a new process (CliRunner never reaches cli.main's exit)."""
    return subprocess.run(
        [sys.executable, "-m", "compiler", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        check=False,
        cwd=ROOT,
    )


def test_the_real_command_delivers_all_its_output_and_its_exit_code(tmp_path: Path) -> None:
    """cli.main leaves with os._exit once stdout and stderr are flushed: every byte arrives
    and each exit code is the command's."""
    listed = _auditc("explain", "--format", "json")
    assert listed.returncode == 0
    assert listed.stdout.decode() == CliRunner().invoke(app, ["explain", "--format", "json"]).stdout
    assert len(json.loads(listed.stdout)["ids"]) > 10
    out = str(tmp_path / "out")
    assert _auditc("render", "specs/prod-east.yaml", "-o", out, "-q").returncode == 0
    (tmp_path / "out" / "prod-east" / "plan" / "plan.yaml").unlink()
    stale = _auditc("render", "--check", "specs/prod-east.yaml", "-o", out)
    assert stale.returncode == 1
    assert stale.stderr.decode().splitlines()[-1].startswith("auditc: output is stale")
    missing = _auditc("validate", "specs/no-such.yaml")
    assert (missing.returncode, missing.stderr.decode().splitlines()[0]) == (
        2,
        "specs/no-such.yaml: no such file or directory",
    )


def test_a_full_disk_under_stdout_is_one_line_and_exit_2() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    for argv in (["explain"], ["explain", "AUD001"], ["--version"], ["schema"]):
        with Path("/dev/full").open("wb") as full:
            result = _auditc(*argv, stdout=full)
        assert result.returncode == 2, argv
        assert result.stderr.decode() == "auditc: cannot write standard output: No space left on device\n"


def test_a_reader_that_left_ends_the_command_quietly() -> None:
    """`auditc explain | head -1`: the pipe's reader is gone before auditc writes."""
    child = subprocess.Popen(
        [sys.executable, "-m", "compiler", "explain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    errors = child.stderr.read()
    assert child.wait(timeout=60) == 1
    assert errors == b""
