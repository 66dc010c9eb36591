"""auditc plan / apply on minikube: the profile's node is a directory holding the real
kubeadm 1.30 kube-apiserver manifest, behind the stand-in minikube of tests/standins.py
(file sync at start, --extra-config taken as the profile's options, `minikube ssh`), the
cluster layer against the stand-in kubectl and helm. apply installs the files into
minikube's file sync, stops and starts the profile with the rendered flags, waits for
/readyz and reads the node again."""

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
from tests.paths import DATA
from tests.sites import write_spec

PROFILE = "audit-lab"
PLATFORM = {"type": "minikube", "kubeadm": None, "minikube": {"profile": PROFILE}}
MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"


@dataclass
class Lab:
    tmp: Path
    spec: Path
    node: Path
    files: Path  # minikube's file sync
    state: Path
    log: Path

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.state / "t").glob("apply-*.json"))]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    standins.install_minikube(bin_dir)
    home = tmp_path / "minikube" / PROFILE
    node = home / "node"
    (node / MANIFEST).parent.mkdir(parents=True)
    shutil.copy(DATA / "kube-apiserver-manifests/1.30.14-kubeadm.yaml", node / MANIFEST)
    (home / "status").write_text("Running")
    (tmp_path / "cluster").mkdir()
    spec = write_spec(tmp_path, {"kubernetes": {"version": "1.30.14"}, "platform": PLATFORM, "falco": None})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MINIKUBE", str(tmp_path / "minikube"))
    monkeypatch.setenv("MINIKUBE_HOME", str(tmp_path / "mk"))
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    monkeypatch.setenv("FAKE_APISERVER_CONFIGS", str(node / MANIFEST))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_REAL_KUBECTL", real_kubectl)
    monkeypatch.setenv("AUDITC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUDITC_POLL_INTERVAL", "0.05")
    files = tmp_path / "mk" / ".minikube" / "files" / "etc/ssl/certs/auditc"
    yield Lab(tmp_path, spec, node, files, tmp_path / "state", tmp_path / "calls.log")


def test_apply_restarts_the_profile_with_the_flags_then_plan_is_empty(lab: Lab) -> None:
    planned = lab.cli("plan", str(lab.spec))
    assert planned.exit_code == 1, planned.output
    assert [line.split()[:3] for line in planned.stdout.splitlines() if " host " in line] == [
        ["update", "host", f"minikube/{PROFILE}"]
    ]
    result = lab.cli("apply", str(lab.spec), "--yes")
    assert result.exit_code == 0, result.output
    assert [(h["host"], h["outcome"]) for h in lab.records()[-1]["hosts"]] == [
        (f"minikube/{PROFILE}", "patched")
    ]
    minikube = [c.split()[1] for c in lab.calls() if c.startswith("minikube ") and "ssh" not in c.split()[1]]
    assert minikube[-2:] == ["stop", "start"]
    calls = lab.calls()
    helm = next(i for i, c in enumerate(calls) if c.startswith("helm upgrade"))
    stop = next(i for i, c in enumerate(calls) if c.startswith("minikube stop"))
    assert helm < stop, "Falco before the flags"
    assert sorted(p.name for p in lab.files.iterdir()) == ["audit-policy.yaml", "audit-webhook.kubeconfig"]
    assert (lab.node / "etc/ssl/certs/auditc/audit-policy.yaml").is_file()  # synced at start
    assert (
        "--audit-webhook-config-file=/etc/ssl/certs/auditc/audit-webhook.kubeconfig"
        in (lab.node / MANIFEST).read_text()
    )
    assert "kubectl get --raw /readyz --context audit-lab" in calls
    assert "verify: t: Falco alerted on ConfigMap auditc-probe-" in result.stdout
    again = lab.cli("plan", str(lab.spec))
    assert again.exit_code == 0, again.output


def test_a_start_that_fails_is_reported_with_what_to_do(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MINIKUBE_BREAKS", "1")
    result = lab.cli("apply", str(lab.spec), "--yes")
    assert result.exit_code == 1, result.output
    (host,) = lab.records()[-1]["hosts"]
    assert host["outcome"] == "unknown"
    assert (
        "minikube start with the new flags failed: X Exiting due to K8S_APISERVER_MISSING" in host["detail"]
    )
    assert "start the profile with the flags it had" in host["detail"]
    assert not lab.files.exists() or list(lab.files.iterdir()) == [], "the previous (no) files are back"


def test_an_apiserver_that_never_gets_ready(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_READYZ", "fail")
    result = lab.cli("apply", str(lab.spec), "--yes", "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    (host,) = lab.records()[-1]["hosts"]
    assert host["outcome"] == "unknown" and "the apiserver is not ready after 0.3s" in host["detail"]
