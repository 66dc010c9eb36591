"""falco.receiver.mode logfile (kubeadm here; k3s and RKE2 take the same path): no webhook
flag or kubeconfig anywhere, Falco on the control-plane nodes reading the log file with
the k8saudit plugin (its values go through helm template of the real chart in
tests/artifacts/test_falco_chart.py, the example lab-logfile among them), and the spec
errors that keep the log where Falco reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compiler.api import compile_site
from compiler.errors import UserError
from tests.rollout.conftest import world  # noqa: F401  (the rollout world, as a fixture here)
from tests.sites import ROOT, compiled, write_spec
from tests.tools import yaml12

EXAMPLE = ROOT / "specs" / "lab-logfile.yaml"


def test_no_webhook_anywhere_and_falco_follows_the_file() -> None:
    files = {a.path: a.content.decode() for a in compiled(EXAMPLE).artifacts}
    assert "node/audit-webhook.kubeconfig" not in files
    assert "--audit-webhook" not in files["node/apiserver-config.patch.sh"]
    assert "'audit-log-path' '/var/log/kubernetes/audit/audit.log'" in files["node/apiserver-config.patch.sh"]
    assert "audit-webhook" not in files["node/kubeadm-config.yaml"]
    values = yaml12.load(files["helm/falco-values.yaml"])
    (plugin,) = [p for p in values["falco"]["plugins"] if p["name"] == "k8saudit"]
    assert plugin["open_params"] == "file:///var/log/kubernetes/audit/audit.log"
    assert "k8saudit:0.17.0" in values["falcoctl"]["config"]["artifact"]["install"]["refs"]
    assert values["controller"]["kind"] == "daemonset" and "services" not in values
    plan = yaml12.load(files["plan/plan.yaml"])
    (wait,) = [s for s in plan["spec"]["steps"] if s["action"] == "wait-for-falco"]
    assert "daemonset/falco" in wait["command"]
    assert not [p for p in files if p == "cluster/service.yaml"]


def _logfile(tmp_path: Path, **spec: Any) -> Path:
    falco = {"version": "0.44", "receiver": {"mode": "logfile"}, **spec.pop("falco", {})}
    return write_spec(tmp_path, {"falco": falco, **spec})


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"audit": {"log": {"enabled": False}}}, "spec.audit.log.enabled", "log to a file"),
        ({"audit": {"log": {"path": "-"}}}, "spec.audit.log.path", "log to a file"),
        ({"audit": {"log": {"format": "legacy"}}}, "spec.audit.log.format", "reads JSON lines"),
        ({"audit": {"webhook": {"enabled": True}}}, "spec.audit.webhook.enabled", "has no webhook"),
        ({"falco": {"version": "0.41"}}, "spec.falco.receiver.mode", "needs Falco 0.42.0 or later"),
        (
            {"platform": {"type": "minikube", "kubeadm": None, "minikube": {}}},
            "spec.falco.receiver.mode",
            "logfile is not on platform minikube",
        ),
    ],
)
def test_what_logfile_needs_is_pointed_at(
    tmp_path: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    path = _logfile(tmp_path, **spec)
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0


def test_no_receiver_address_is_needed_and_the_receiver_lints_stay_quiet(tmp_path: Path) -> None:
    path = _logfile(tmp_path, falco={"receiver": {"mode": "logfile", "address": None}})
    site = compile_site(path)
    assert not {w.code for w in site.warnings} & {"AUD003", "AUD005"}  # no receiver: nothing to warn


def test_apply_then_verify_reads_the_alert_from_the_file_pipeline(world: Any) -> None:  # noqa: F811
    """The rollout world (tests/rollout/world.py): Falco first (a DaemonSet, no receiver
    Service to wait for), the hosts patched with the log flags and no webhook, then the
    probe's alert arrives through the log file Falco follows."""
    world.respec({"falco": {"receiver": {"mode": "logfile", "address": None}}})
    result = world.apply(None, "--verify-timeout", "2")
    assert result.exit_code == 0, result.output
    for host in ("cp-1", "cp-2", "cp-3"):
        manifest = world.manifest(host).read_text()
        assert "--audit-log-path=/var/log/kubernetes/audit/audit.log" in manifest
        assert "audit-webhook" not in manifest
    assert "Falco alerted on ConfigMap auditc-probe-" in result.stdout
    assert world.plan().exit_code == 0
