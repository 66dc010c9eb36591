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
# listed types and prints the update id (--query update.id; an update that changes nothing
# is refused, as EKS refuses it: InvalidParameterException, exit 254); describe-update
# --query update.status prints InProgress for the first $FAKE_AWS/pending reads, then
# Successful; list-pod-identity-associations --output text prints the ids or "None" (a
# warning on stderr, as the CLI gives one about an old Python); describe-/update-/create-
# pod-identity-association over $FAKE_AWS/associations ("id role" lines); stdout carries
# only the answer, errors go to stderr; every call is appended to $FAKE_LOG.
AWS = r"""#!/bin/sh
printf 'aws %s\n' "$*" >>"$FAKE_LOG"
[ "$1" = eks ] || exit 252
verb=$2; shift 2
[ "$1" = --region ] && [ "$2" = eu-west-1 ] || { echo "aws: unexpected region: $*" >&2; exit 252; }
shift 2
opt() {  # the value of option $1 among the rest of the arguments
  want=$1; shift
  while [ "$#" -gt 1 ]; do [ "$1" = "$want" ] && { printf '%s' "$2"; return; }; shift; done
}
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
    echo 0c1e4d57-6d4a-3d46-9a4c-8f0f5b1f3a11 ;;
  describe-update)
    [ "$(opt --update-id "$@")" = 0c1e4d57-6d4a-3d46-9a4c-8f0f5b1f3a11 ] || {
      echo "ResourceNotFoundException: No update found" >&2; exit 254; }
    left=$(cat "$FAKE_AWS/pending" 2>/dev/null || echo 0)
    if [ "$left" -gt 0 ]; then echo $((left - 1)) >"$FAKE_AWS/pending"; echo InProgress
    else cat "$FAKE_AWS/outcome" 2>/dev/null || echo Successful; fi ;;
  list-pod-identity-associations)
    echo "WARNING: the aws CLI will drop support for this Python soon" >&2
    if [ -s "$FAKE_AWS/associations" ]; then cut -d' ' -f1 "$FAKE_AWS/associations" | paste -sd '\t'
    else echo None; fi ;;
  describe-pod-identity-association)
    grep "^$(opt --association-id "$@") " "$FAKE_AWS/associations" | cut -d' ' -f2 ;;
  update-pod-identity-association)
    id=$(opt --association-id "$@"); role=$(opt --role-arn "$@")
    grep -q "^$id " "$FAKE_AWS/associations" || { echo "ResourceNotFoundException" >&2; exit 254; }
    sed -i "s|^$id .*|$id $role|" "$FAKE_AWS/associations"
    echo '{"association": {}}' ;;
  create-pod-identity-association)
    echo "a-0123456789abcdef $(opt --role-arn "$@")" >>"$FAKE_AWS/associations"
    echo '{"association": {}}' ;;
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
        "wait-for-audit-log",
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
    assert [line.split()[2] for line in aws] == [
        "describe-cluster",
        "update-cluster-config",
        "describe-update",
    ]
    assert '--logging {"clusterLogging":[{"types":["audit"],"enabled":true}]}' in aws[1]
    first_kubectl = next(i for i, line in enumerate(log) if line.startswith("kubectl"))
    assert first_kubectl > log.index(aws[-1]), "Falco comes after the log type is on"
    assert any(line.startswith("helm upgrade --install falco falco") for line in log)
    assert (tmp_path / "aws/types").read_text().split() == ["api", "audit"]


def test_apply_waits_for_the_logging_update_and_stops_when_it_fails(tmp_path: Path) -> None:
    out, env = _world(tmp_path, EXAMPLE, ["api"])
    (tmp_path / "aws/pending").write_text("2")
    env["PATH"] = f"{_no_sleep(tmp_path)}{os.pathsep}{env['PATH']}"
    result = _apply(out, env, "--execute")
    assert result.returncode == 0, result.stderr
    reads = [line for line in _log(tmp_path) if " describe-update " in line]
    assert len(reads) == 3 and "--update-id 0c1e4d57-6d4a-3d46-9a4c-8f0f5b1f3a11" in reads[0]
    assert "the logging update 0c1e4d57-6d4a-3d46-9a4c-8f0f5b1f3a11 is done" in result.stdout

    out, env = _world(tmp_path / "failed", EXAMPLE, ["api"])
    (tmp_path / "failed/aws/outcome").write_text("Failed\n")
    result = _apply(out, env, "--execute")
    assert result.returncode == 1
    assert "the logging update 0c1e4d57-6d4a-3d46-9a4c-8f0f5b1f3a11 is Failed" in result.stderr
    assert not any(line.startswith(("kubectl", "helm")) for line in _log(tmp_path / "failed"))


def _no_sleep(tmp_path: Path) -> Path:
    """A sleep that returns at once (the script polls every 10 s)."""
    bin_dir = tmp_path / "nosleep"
    bin_dir.mkdir()
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sleep").chmod(0o755)
    return bin_dir


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
    assert "gives the role already" in result.stdout
    pods = yaml12.load((out / "helm/falco-values.yaml").read_text())["podAnnotations"]
    assert pods == {"auditc/identity": "arn:aws:iam::123456789012:role/falco"}  # a new role restarts


def test_a_pod_identity_with_another_role_is_updated(tmp_path: Path) -> None:
    identity = {**IDENTITY, "mode": "podIdentity"}
    spec = _eks(tmp_path, {"clusterName": "prod-eks", "region": "eu-west-1", "identity": identity})
    out = write_tree(compiled(spec), tmp_path / "out")
    _, env = _world(tmp_path / "w", EXAMPLE, ["audit"])
    (tmp_path / "w/aws/associations").write_text("a-0feedfacecafe1234 arn:aws:iam::123456789012:role/old\n")
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "a-0feedfacecafe1234 gives arn:aws:iam::123456789012:role/old: updating it" in result.stdout
    assert (tmp_path / "w/aws/associations").read_text() == (
        "a-0feedfacecafe1234 arn:aws:iam::123456789012:role/falco\n"
    )
    assert not [line for line in _log(tmp_path / "w") if "create-pod-identity-association" in line]


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
    assert lines[-1] == "apply: the cloud side, then the cluster layer"
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
        "aws eks describe-update",
        "kubectl apply --server-side",
        "helm upgrade --install",
    ]
    assert (cloud / "types").read_text().split() == ["api", "audit"]
    assert "verify: eks-prod: Falco alerted on ConfigMap auditc-probe-" in applied.stdout

    again = _cli("plan", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == "== eks-prod: nothing to do"

    (cloud / "types").write_text("api\n")  # someone turned the audit log off again
    drifted = _cli("plan", str(EXAMPLE))
    assert drifted.exit_code == 1, drifted.output
    assert drifted.stdout.splitlines()[-1] == "apply: the cloud side"


def test_an_aws_cli_that_refuses_is_a_clear_error(cloud: Path, tmp_path: Path) -> None:
    spec = _eks(tmp_path, {"clusterName": "other", "region": "eu-west-1", "identity": IDENTITY})
    result = _cli("plan", str(spec))
    assert result.exit_code == 2
    assert "aws eks describe-cluster failed: ResourceNotFoundException: No cluster found" in result.stderr
    assert "Traceback" not in result.output


def test_apply_waits_for_the_update_and_fixes_the_association_role(cloud: Path, tmp_path: Path) -> None:
    identity = {**IDENTITY, "mode": "podIdentity"}
    spec = _eks(tmp_path, {"clusterName": "prod-eks", "region": "eu-west-1", "identity": identity})
    (cloud / "pending").write_text("2")
    (cloud / "associations").write_text("a-0feedfacecafe1234 arn:aws:iam::123456789012:role/old\n")
    planned = _cli("plan", str(spec))
    role = "eks cluster prod-eks (eu-west-1): Pod Identity role of Falco's ServiceAccount"
    assert (
        f"    changed    {role}: rendered arn:aws:iam::123456789012:role/falco, "
        "live arn:aws:iam::123456789012:role/old" in planned.stdout.splitlines()
    ), planned.stdout

    applied = _cli("apply", str(spec), "--yes", "--verify-timeout", "2")
    assert applied.exit_code == 0, applied.output
    aws = [" ".join(line.split()[2:3]) for line in _log(tmp_path) if line.startswith("aws ")]
    assert aws.count("describe-update") == 3  # InProgress twice, then Successful
    assert "update-pod-identity-association" in aws and "create-pod-identity-association" not in aws
    update = next(line for line in _log(tmp_path) if "update-pod-identity-association" in line)
    assert "--association-id a-0feedfacecafe1234 --role-arn arn:aws:iam::123456789012:role/falco" in update
    assert _cli("plan", str(spec)).exit_code == 0


def test_an_update_that_fails_stops_apply_before_falco(cloud: Path, tmp_path: Path) -> None:
    (cloud / "outcome").write_text("Failed\n")
    applied = _cli("apply", str(EXAMPLE), "--yes")
    assert applied.exit_code == 1, applied.output
    assert "it says Failed, not Successful" in applied.output
    assert not [line for line in _log(tmp_path) if line.startswith("helm upgrade")]


def test_a_saved_snapshot_is_compared_with_the_spec_of_now(cloud: Path, tmp_path: Path) -> None:
    """The snapshot keeps what AWS answered, not what the spec wanted then: a role changed
    in the spec after the snapshot shows in diff --live-dir, another cluster is refused."""
    identity = {**IDENTITY, "mode": "podIdentity"}
    eks = {"clusterName": "prod-eks", "region": "eu-west-1", "identity": identity}
    (cloud / "associations").write_text("a-0feedfacecafe1234 arn:aws:iam::123456789012:role/falco\n")
    for name in ("then", "now", "other"):
        (tmp_path / name).mkdir()
    spec = _eks(tmp_path / "then", eks)
    saved = _cli("snapshot", str(spec), "-o", str(tmp_path / "snap"))
    assert saved.exit_code == 0, saved.output
    (cloud / "associations").write_text("")  # the cloud changes after the snapshot: not read again

    now = _eks(tmp_path / "now", {**eks, "identity": {**identity, "roleArn": IDENTITY["roleArn"] + "-2"}})
    live = _cli("diff", str(now), "--live-dir", str(tmp_path / "snap"))
    role = "eks cluster prod-eks (eu-west-1): Pod Identity role of Falco's ServiceAccount"
    assert (
        f"changed    {role}: rendered arn:aws:iam::123456789012:role/falco-2, "
        "live arn:aws:iam::123456789012:role/falco" in live.stdout
    ), live.output

    other = _eks(tmp_path / "other", {**eks, "clusterName": "other"})
    refused = _cli("diff", str(other), "--live-dir", str(tmp_path / "snap"))
    assert refused.exit_code == 2
    assert "the snapshot holds no answer to aws eks describe-cluster" in refused.stderr


def test_an_update_still_in_progress_at_the_deadline_stops(cloud: Path, tmp_path: Path) -> None:
    (cloud / "pending").write_text("100000")
    applied = _cli("apply", str(EXAMPLE), "--yes", "--wait-timeout", "0.3s")
    assert applied.exit_code == 1, applied.output
    assert "still InProgress, not Successful" in applied.output
    assert not [line for line in _log(tmp_path) if line.startswith("helm upgrade")]
