"""EKS: a managed control plane. The example renders no node files and a plan whose own
steps are on the AWS side; plan/apply.sh runs against a stand-in `aws` that follows the
documented AWS CLI output (describe-cluster's logging, --query and --output text), with
the suite's stand-in kubectl and helm; the spec block's errors point at their lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from compiler.api import compile_site
from compiler.errors import UserError
from tests import standins
from tests.sites import ROOT, compiled, write_spec, write_tree
from tests.tools import yaml12

EXAMPLE = ROOT / "specs" / "eks-prod.yaml"

# `aws eks ...` as the AWS CLI v2 documents it, over a state directory ($FAKE_AWS):
# describe-cluster --query 'cluster.logging.clusterLogging[?enabled].types[]' --output text
# prints the enabled types tab-separated; update-cluster-config --logging JSON turns on the
# listed types (an update that changes nothing is refused, as EKS refuses it:
# InvalidParameterException, exit 254); list-pod-identity-associations ... --output text
# prints the ids or "None"; every call is appended to $FAKE_LOG.
AWS = r"""#!/bin/sh
printf 'aws %s\n' "$*" >>"$FAKE_LOG"
[ "$1" = eks ] || exit 252
verb=$2; shift 2
if [ "$verb" = wait ]; then verb="wait $1"; shift; fi  # aws eks wait WAITER --region ...
[ "$1" = --region ] && [ "$2" = eu-west-1 ] || { echo "aws: unexpected region: $*" >&2; exit 252; }
shift 2
case "$verb" in
  describe-cluster)
    [ "$1 $2" = "--name prod-eks" ] || { echo "ResourceNotFoundException: No cluster found" >&2; exit 254; }
    tr '\n' '\t' <"$FAKE_AWS/types" | sed 's/\t$//'; echo ;;
  update-cluster-config)
    [ "$1 $2 $3" = '--name prod-eks --logging' ] || exit 252
    if grep -qx audit "$FAKE_AWS/types"; then
      printf '%s %s\n' "An error occurred (InvalidParameterException):" \
        "No changes needed for the logging config provided" >&2
      exit 254
    fi
    echo audit >>"$FAKE_AWS/types"
    echo '{"update": {"status": "InProgress", "type": "LoggingUpdate"}}' ;;
  "wait cluster-active") [ "$1 $2" = "--name prod-eks" ] || exit 252 ;;
  list-pod-identity-associations)
    if [ -s "$FAKE_AWS/associations" ]; then cat "$FAKE_AWS/associations"; else echo None; fi ;;
  create-pod-identity-association)
    echo a-0123456789abcdef >>"$FAKE_AWS/associations" ;;
  *) exit 252 ;;
esac
"""


def _world(tmp_path: Path, spec: Path, types: list[str]) -> tuple[Path, dict[str, str]]:
    out = write_tree(compiled(spec), tmp_path / "out")
    bin_dir = tmp_path / "bin"
    standins.install(bin_dir)
    (bin_dir / "aws").write_text(AWS)
    (bin_dir / "aws").chmod(0o755)
    state = tmp_path / "aws"
    state.mkdir()
    (state / "types").write_text("".join(f"{t}\n" for t in types))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_AWS": str(state),
    }
    return out, env


def _apply(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = out / "plan/apply.sh"
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120)


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "log"
    return [standins.planned_wait(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_example_has_no_node_files_and_aws_steps_first() -> None:
    site = compiled(EXAMPLE)
    names = sorted(a.path for a in site.artifacts)
    assert not [n for n in names if n.startswith("node/")]
    plan = yaml12.load(next(a.content for a in site.artifacts if a.path == "plan/plan.yaml").decode())
    actions = [step["action"] for step in plan["spec"]["steps"]]
    assert actions == [
        "check-audit-log",
        "enable-audit-log",
        "wait-for-cluster",
        "cluster-objects",
        "install-falco",
        "wait-for-falco",
    ]
    assert plan["spec"]["auditLog"] == "CloudWatch Logs /aws/eks/prod-eks/cluster in eu-west-1"


def test_apply_turns_the_audit_log_on_then_installs_falco(tmp_path: Path) -> None:
    out, env = _world(tmp_path, EXAMPLE, ["api"])
    result = _apply(out, env, "--execute")
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    aws = [line for line in log if line.startswith("aws ")]
    assert [line.split()[2] for line in aws] == ["describe-cluster", "update-cluster-config", "wait"]
    assert '--logging {"clusterLogging":[{"types":["audit"],"enabled":true}]}' in aws[1]
    first_kubectl = next(i for i, line in enumerate(log) if line.startswith("kubectl"))
    assert first_kubectl > log.index(aws[-1]), "Falco comes after the log type is on"
    assert any(line.startswith("helm upgrade --install falco falco") for line in log)
    assert (tmp_path / "aws/types").read_text().split() == ["api", "audit"]


def test_apply_leaves_an_enabled_audit_log_alone(tmp_path: Path) -> None:
    out, env = _world(tmp_path, EXAMPLE, ["api", "audit"])
    result = _apply(out, env, "--execute")
    assert result.returncode == 0, result.stderr
    assert "the audit log type is already on" in result.stdout
    assert [line.split()[2] for line in _log(tmp_path) if line.startswith("aws ")] == ["describe-cluster"]


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    out, env = _world(tmp_path, EXAMPLE, [])
    result = _apply(out, env)
    assert result.returncode == 0, result.stderr
    assert _log(tmp_path) == []
    assert "+ aws eks update-cluster-config --region eu-west-1 --name prod-eks --logging" in result.stdout
    assert result.stdout.rstrip().endswith("dry run: nothing was changed; run with --execute to apply")


def _eks(tmp_path: Path, eks: dict[str, Any], **spec: Any) -> Path:
    platform = {"type": "eks", "kubeadm": None, "eks": eks}
    return write_spec(tmp_path, {"platform": platform, **spec})


IDENTITY = {"mode": "irsa", "roleArn": "arn:aws:iam::123456789012:role/falco"}


def test_pod_identity_is_associated_once(tmp_path: Path) -> None:
    identity = {**IDENTITY, "mode": "podIdentity"}
    spec = _eks(tmp_path, {"clusterName": "prod-eks", "region": "eu-west-1", "identity": identity})
    out = write_tree(compiled(spec), tmp_path / "out")
    rbac = (out / "cluster/rbac.yaml").read_text()
    assert "eks.amazonaws.com/role-arn" not in rbac  # Pod Identity needs no annotation
    _, env = _world(tmp_path / "w", EXAMPLE, ["audit"])
    script = out / "plan/apply.sh"
    for _ in range(2):
        result = subprocess.run(["bash", str(script), "--execute"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    creates = [line for line in _log(tmp_path / "w") if "create-pod-identity-association" in line]
    assert creates == [
        "aws eks create-pod-identity-association --region eu-west-1 --cluster-name prod-eks "
        "--namespace falco --service-account falco --role-arn arn:aws:iam::123456789012:role/falco"
    ]


@pytest.mark.parametrize(
    ("eks", "spec", "field", "message"),
    [
        ({"region": "eu-west-1", "identity": IDENTITY}, {}, "spec.platform.eks.clusterName", "required"),
        (
            {"clusterName": "-bad", "region": "eu-west-1", "identity": IDENTITY},
            {},
            "spec.platform.eks.clusterName",
            "an EKS cluster name",
        ),
        (
            {"clusterName": "c", "region": "Europe", "identity": IDENTITY},
            {},
            "spec.platform.eks.region",
            "an AWS region",
        ),
        (
            {"clusterName": "c", "region": "eu-west-1", "identity": {"mode": "irsa", "roleArn": "falco"}},
            {},
            "spec.platform.eks.identity.roleArn",
            "an IAM role ARN",
        ),
        (
            {"clusterName": "c", "region": "eu-west-1", "identity": IDENTITY},
            {"falco": {"version": "0.41"}},
            "spec.falco.version",
            "EKS needs Falco 0.42 or later",
        ),
        (
            {"clusterName": "c", "region": "eu-west-1", "identity": IDENTITY},
            {"falco": {"syscalls": True}},
            "spec.falco.syscalls",
            "not on EKS",
        ),
    ],
)
def test_spec_errors_point_at_the_field(
    tmp_path: Path, eks: dict[str, Any], spec: dict[str, Any], field: str, message: str
) -> None:
    path = _eks(tmp_path, eks, **spec)
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0


# ---- auditc plan / apply / diff --live: the stand-in cluster (tests/standins.py) and aws


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in kubectl/helm over a state directory and the stand-in aws on PATH; the
    returned directory holds the aws state (types: the enabled log types)."""
    import shutil

    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    (bin_dir / "aws").write_text(AWS)
    (bin_dir / "aws").chmod(0o755)
    state = tmp_path / "aws"
    state.mkdir()
    (state / "types").write_text("api\n")
    (tmp_path / "cluster").mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_REAL_KUBECTL", real_kubectl)
    monkeypatch.setenv("FAKE_AWS", str(state))
    monkeypatch.setenv("AUDITC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUDITC_POLL_INTERVAL", "0.05")
    return state


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from compiler.cli import app

    return CliRunner().invoke(app, list(args))


def test_plan_apply_then_an_empty_plan(cloud: Path, tmp_path: Path) -> None:
    planned = _cli("plan", str(EXAMPLE))
    assert planned.exit_code == 1, planned.output
    lines = planned.stdout.splitlines()
    setting = "eks cluster prod-eks (eu-west-1): control-plane log type audit"
    assert f"  update     cloud setting {setting}" in lines
    assert f"    changed    {setting}: rendered on, live off" in lines
    assert lines[-1] == "apply: the cloud side, then the cluster layer, then no host"
    live = _cli("diff", str(EXAMPLE), "--live")
    assert live.exit_code == 1 and f"changed    {setting}: rendered on, live off" in live.stdout

    applied = _cli("apply", str(EXAMPLE), "--yes", "--verify-timeout", "2")
    assert applied.exit_code == 0, applied.output
    log = _log(tmp_path)
    writes = [line for line in log if line.split()[:3] != ["aws", "eks", "describe-cluster"]]
    writes = [line for line in writes if " get " not in f" {line} " and not line.startswith("helm list")]
    assert [" ".join(line.split()[:3]) for line in writes[:5]] == [
        "kubectl create -f",  # the lock
        "aws eks update-cluster-config",
        "aws eks wait",
        "kubectl apply --server-side",
        "helm upgrade --install",
    ]
    assert (cloud / "types").read_text().split() == ["api", "audit"]
    assert "verify: eks-prod: Falco alerted on ConfigMap auditc-probe-" in applied.stdout

    again = _cli("plan", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == "== eks-prod: nothing to do"


def test_an_aws_cli_that_refuses_is_a_clear_error(cloud: Path, tmp_path: Path) -> None:
    spec = _eks(tmp_path, {"clusterName": "other", "region": "eu-west-1", "identity": IDENTITY})
    result = _cli("plan", str(spec))
    assert result.exit_code == 2
    assert "aws eks describe-cluster failed: ResourceNotFoundException: No cluster found" in result.stderr
    assert "Traceback" not in result.output
