"""RKE2: the node script (node/apiserver-config.patch.sh) run on servers that are
directories holding stand-in systemctl and RKE2's kubectl (tests/platforms/dropin_world.py:
a restart merges the config files as RKE2 does, adds its audit defaults for the top-level
audit-policy-file, writes the kube-apiserver static pod with every existing file a flag
names mounted, and starts an apiserver that is ready only with files it can read in its
pod), then auditc apply / plan with the servers changed in place (--local)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.api import compile_site
from compiler.cli import app
from compiler.errors import UserError
from tests.platforms import dropin_world as world
from tests.sites import ROOT, compiled, write_spec, write_tree
from tests.tools import yaml12

EXAMPLE = ROOT / "specs" / "rke2-plant.yaml"
SERVERS = ["10.30.0.11", "10.30.0.12", "10.30.0.13"]
DROP_IN = world.RKE2.drop_in
POD = world.RKE2.pod_manifest.lstrip("/")
POLICY = "/etc/rancher/rke2/auditc/audit-policy.yaml"
WEBHOOK = "/etc/rancher/rke2/auditc/audit-webhook.kubeconfig"


def _node(tmp_path: Path) -> Path:
    return write_tree(compiled(EXAMPLE), tmp_path / "out") / "node"


def _run(node: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDITC_POLL_INTERVAL": "0.05"}
    script = node / "apiserver-config.patch.sh"
    return subprocess.run(
        ["sh", str(script), "--root", str(root), *args], capture_output=True, text=True, env=env, timeout=60
    )


def _server(root: Path, config: str = world.CONFIG) -> Path:
    return world.server(root, world.RKE2, config)


def _pod(root: Path) -> dict[str, Any]:
    pod: dict[str, Any] = yaml12.load((root / POD).read_text())
    return pod


def test_the_drop_in_sets_rke2s_policy_key_and_appends_the_rest(tmp_path: Path) -> None:
    drop_in = yaml12.load((_node(tmp_path) / "zz-auditc.yaml").read_text())
    assert list(drop_in) == ["audit-policy-file", "kube-apiserver-arg+"]
    assert drop_in["audit-policy-file"] == POLICY
    flags = drop_in["kube-apiserver-arg+"]
    assert f"audit-webhook-config-file={WEBHOOK}" in flags
    assert not [f for f in flags if f.startswith("audit-policy-file=")], "RKE2 adds the policy flag itself"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_regenerated_pod_runs_auditcs_flags_and_mounts_its_files(tmp_path: Path, shell: str) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    env = {**os.environ, "AUDITC_POLL_INTERVAL": "0.05"}
    result = subprocess.run(
        [shell, str(node / "apiserver-config.patch.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (container,) = _pod(root)["spec"]["containers"]
    args = container["args"]
    assert args[0] == f"--audit-policy-file={POLICY}", "RKE2's own policy flag names auditc's policy"
    assert f"--audit-webhook-config-file={WEBHOOK}" in args
    # the user's flags, then auditc's: a flag both set is auditc's (kube-apiserver takes the last)
    assert args.index("--enable-admission-plugins=NodeRestriction") < args.index("--audit-webhook-mode=batch")
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {POLICY, WEBHOOK}
    assert world.restarts(root) == 1
    again = _run(node, root)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert world.restarts(root) == 1


def test_the_cis_profile_policy_gives_way(tmp_path: Path) -> None:
    node = _node(tmp_path)
    root = _server(tmp_path / "server", world.CONFIG + "profile: cis\n")
    result = _run(node, root)
    assert result.returncode == 0, result.stderr
    assert "sets a profile: its audit policy (which logs nothing) gives way" in result.stderr
    (container,) = _pod(root)["spec"]["containers"]
    assert [a for a in container["args"] if a.startswith("--audit-policy-file=")] == [
        f"--audit-policy-file={POLICY}"
    ]
    assert not (root / "etc/rancher/rke2/audit-policy.yaml").exists(), "the CIS default is not written"


def test_a_pod_not_regenerated_is_not_taken_for_ready(tmp_path: Path) -> None:
    """RKE2 answers /readyz from the old apiserver until it has written the new pod: the
    script waits for the pod with the new flags, and rolls back when it never comes."""
    node, root = _node(tmp_path), _server(tmp_path / "server")
    stale = root / POD
    stale.parent.mkdir(parents=True)
    stale.write_text("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: kube-apiserver, args: []}]}\n")
    # a systemctl that restarts nothing: the old pod stays, the old apiserver stays ready
    systemctl = root / "usr/bin/.systemctl.py"  # the stand-in's body (tests/standins.python_program)
    body = systemctl.read_text()
    systemctl.write_text(body.replace("config = os.path.join(", "sys.exit(0)\nconfig = os.path.join(", 1))
    result = _run(node, root, "--wait-timeout", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolling back" in result.stderr and not (root / DROP_IN).exists()


def test_an_apiserver_that_does_not_come_back_is_put_back(tmp_path: Path) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    (root / "run/broken").touch()
    result = _run(node, root, "--wait-timeout", "0")
    assert result.returncode == 1
    assert not (root / DROP_IN).exists() and not (root / POLICY.lstrip("/")).exists()
    assert world.restarts(root) == 2


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"kubernetes": {"version": "1.21"}}, "spec.kubernetes.version", "RKE2 before 1.22"),
        (
            {"rke2": {"configDir": "/var/lib/rancher/rke2/agent/pod-manifests/auditc"}},
            "spec.platform.rke2.configDir",
            "must not be inside /var/lib/rancher/rke2/agent/pod-manifests",
        ),
    ],
)
def test_spec_errors_point_at_the_field(
    tmp_path: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    rke2: dict[str, Any] = {"servers": [{"host": "10.0.0.1"}], **spec.pop("rke2", {})}
    path = write_spec(tmp_path, {"platform": {"type": "rke2", "kubeadm": None, "rke2": rke2}, **spec})
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # --local: the rollout over ssh is the same code, tested with the real sshd for k3s
    return world.ssh_site(tmp_path, None, monkeypatch, world.RKE2, EXAMPLE, SERVERS)


def test_plan_apply_then_an_empty_plan(plant: dict[str, Any]) -> None:
    spec, nodes, args = plant["spec"], plant["nodes"], plant["args"]
    applied = CliRunner().invoke(app, ["apply", str(spec), "--yes", "--verify-timeout", "2", *args])
    assert applied.exit_code == 0, applied.output
    for host in SERVERS:
        assert f"--audit-webhook-config-file={WEBHOOK}" in world.apiserver_flags(nodes / host)
    assert "verify: rke2-plant: Falco alerted on ConfigMap auditc-probe-" in applied.stdout
    again = CliRunner().invoke(app, ["plan", str(spec), *args])
    assert again.exit_code == 0, again.output
