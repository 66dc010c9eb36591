"""auditc plan / apply / verify on PKS: the masters found with `pks cluster --json` and
`bosh vms --json`, changed one at a time with `bosh scp -r` and `bosh ssh -c` (the Python
stand-in of tests/platforms/pks/fakes.py, each master a directory holding a real TKGI
bpm.yml, reached with --node-root), the cluster layer against the stand-in kubectl and
helm of tests/standins.py."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.cli import app
from tests import standins
from tests.platforms.pks.fakes import BOSH_ROOTED, BPM, HEALTH, MASTERS, MONIT, PKS, SUDO, UUID, tkgi_master
from tests.sites import write_spec

PLATFORM = {"type": "pks", "kubeadm": None, "pks": {"api": "api.pks.example.com", "cluster": "c1"}}
# an apiserver that does not come back with the audit webhook configured
BREAKS = '#!/bin/sh\n! grep -q -- --audit-webhook-config-file "$(dirname "$0")/../config/bpm.yml"\n'


@dataclass
class Fleet:
    tmp: Path
    spec: Path
    fake: Path
    state: Path

    def root(self, master: str) -> Path:
        return self.fake / "vms" / master

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    def node_args(self) -> list[str]:
        return ["--node-root", f"{self.fake}/vms/{{host}}"]

    def apply(self, *args: str) -> Any:
        return self.cli("apply", str(self.spec), "--yes", *self.node_args(), *args)

    def log(self) -> list[str]:
        path = self.fake / "log"
        return path.read_text().splitlines() if path.exists() else []

    def changes(self) -> list[str]:
        """The bosh calls that copy to or run on a master, reads (`if [ -e ...`) left out."""
        return [
            line
            for line in self.log()
            if line.startswith("bosh scp") or (line.startswith("bosh ssh") and "if [ -e " not in line)
        ]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.state / "t").glob("apply-*.json"))]


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    fake = tmp_path / "fake"
    bin_dir = fake / "bin"
    standins.install_cluster(bin_dir)
    for name, text in (("pks", PKS), ("monit", MONIT), ("sudo", SUDO)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    standins.python_program(bin_dir / "bosh", BOSH_ROOTED)
    for master in MASTERS:
        tkgi_master(fake / "vms" / master)
    spec = write_spec(tmp_path, {"platform": PLATFORM})
    (tmp_path / "cluster").mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE", str(fake))
    monkeypatch.setenv("FAKE_LOG", str(fake / "log"))
    monkeypatch.setenv("FAKE_UUID", UUID)
    monkeypatch.setenv(
        "FAKE_APISERVER_CONFIGS", os.pathsep.join(str(fake / "vms" / m / BPM) for m in MASTERS)
    )
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    monkeypatch.setenv("FAKE_REAL_KUBECTL", real_kubectl)
    monkeypatch.setenv("AUDITC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUDITC_POLL_INTERVAL", "0.05")
    yield Fleet(tmp_path, spec, fake, tmp_path / "state")


def _bpm(fleet: Fleet, master: str) -> str:
    return (fleet.root(master) / BPM).read_text()


def test_apply_goes_master_by_master_then_plan_is_empty(fleet: Fleet) -> None:
    planned = fleet.cli("plan", str(fleet.spec), *fleet.node_args())
    assert planned.exit_code == 1, planned.output
    assert [line.split()[:3] for line in planned.stdout.splitlines() if " host " in line] == [
        ["update", "host", master] for master in MASTERS
    ]
    result = fleet.apply()
    assert result.exit_code == 0, result.output
    assert [(h["host"], h["outcome"]) for h in fleet.records()[-1]["hosts"]] == [
        (m, "patched") for m in MASTERS
    ]
    for master in MASTERS:
        assert "--audit-webhook-config-file=" in _bpm(fleet, master)
        assert (fleet.root(master) / "var/vcap/jobs/kube-apiserver/config/audit-policy.yaml").is_file()
    # one master at a time: copied, checked, patched, before the next is touched
    touched = [line.split()[2] for line in fleet.changes()]
    assert touched == sorted(touched, key=MASTERS.index)
    patches = [line for line in fleet.log() if line.startswith("bosh ssh") and "patch.sh" in line]
    assert len(patches) == 6 and all("--mode" in line and "bpm" in line for line in patches)
    assert next(line for line in fleet.log() if "--check-health" in line).startswith(f"bosh ssh {MASTERS[0]}")
    assert "verify: t: Falco alerted on ConfigMap auditc-probe-" in result.stdout
    again = fleet.cli("plan", str(fleet.spec), *fleet.node_args())
    assert again.exit_code == 0, again.output


def test_a_master_that_does_not_come_back_is_restored_and_stops(fleet: Fleet) -> None:
    (fleet.root(MASTERS[1]) / HEALTH).write_text(BREAKS)
    before = {m: _bpm(fleet, m) for m in MASTERS}
    result = fleet.apply("--wait-timeout", "1")
    assert result.exit_code == 1, result.output
    outcomes = [(h["host"], h["outcome"]) for h in fleet.records()[-1]["hosts"]]
    assert outcomes == [(MASTERS[0], "patched"), (MASTERS[1], "restored")]
    assert _bpm(fleet, MASTERS[0]) != before[MASTERS[0]]
    assert _bpm(fleet, MASTERS[1]) == before[MASTERS[1]]
    assert _bpm(fleet, MASTERS[2]) == before[MASTERS[2]]
    assert not [line for line in fleet.changes() if MASTERS[2] in line]


def test_durable_needs_the_os_conf_version_and_runs_after_the_masters(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(fleet.tmp, {"platform": {**PLATFORM, "pks": {**PLATFORM["pks"], "durable": True}}})
    monkeypatch.delenv("OS_CONF_VERSION", raising=False)
    refused = fleet.apply()
    assert refused.exit_code == 1
    assert "the durable step needs $OS_CONF_VERSION set" in refused.output
    assert fleet.changes() == []
    monkeypatch.setenv("OS_CONF_VERSION", "23.0.2")
    result = fleet.apply()
    assert result.exit_code == 0, result.output
    log = fleet.log()
    (update,) = [i for i, line in enumerate(log) if line.startswith("bosh update-config")]
    assert f"deployment=service-instance_{UUID}" in log[update] and "os_conf_version=23.0.2" in log[update]
    assert update > max(i for i, line in enumerate(log) if "patch.sh" in line)


def test_an_unhealthy_master_is_left_untouched(fleet: Fleet) -> None:
    """The patch script's --check-health under bpm: the job's own health check fails before
    any change, so the master is not touched and the rollout stops there."""
    (fleet.root(MASTERS[0]) / HEALTH).write_text("#!/bin/sh\necho 'etcd: no leader' >&2\nexit 1\n")
    before = {m: _bpm(fleet, m) for m in MASTERS}
    result = fleet.apply()
    assert result.exit_code == 1, result.output
    (host,) = fleet.records()[-1]["hosts"]
    assert (host["host"], host["outcome"]) == (MASTERS[0], "untouched")
    assert "not healthy before the change" in host["detail"]
    assert {m: _bpm(fleet, m) for m in MASTERS} == before
    assert not (fleet.root(MASTERS[0]) / "var/vcap/jobs/kube-apiserver/config/audit-policy.yaml").exists()


def test_the_patch_scripts_own_words_come_through_bosh(fleet: Fleet) -> None:
    """bosh prefixes every line and exits 1 for any failure; the patch script's exit code
    and message come from the result row of `bosh ssh -r --json`: a bpm.yml without the
    kube-apiserver process is refused, named, and the master left untouched."""
    bpm = fleet.root(MASTERS[0]) / BPM
    bpm.write_text(bpm.read_text().replace("name: kube-apiserver", "name: something-else", 1))
    before = bpm.read_text()
    result = fleet.apply()
    assert result.exit_code == 1, result.output
    (host,) = fleet.records()[-1]["hosts"]
    assert host["outcome"] == "untouched", host
    assert "refused: no process named kube-apiserver" in host["detail"]
    assert "Exit code" not in host["detail"] and "stdout |" not in host["detail"]
    assert bpm.read_text() == before
