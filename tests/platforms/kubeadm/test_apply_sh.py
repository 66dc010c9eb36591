"""plan/apply.sh --execute against stand-in ssh, scp, kubectl and helm programs on PATH:
Falco is installed from the pinned chart and waited for before any host is touched, hosts
are done one at a time in order, files are staged before the patch runs, and the first
failing host stops the rollout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests import standins
from tests.sites import ROOT, compiled, write_spec, write_tree

SSH = r"""#!/bin/sh
# stand-in ssh: ssh -p PORT -- TARGET COMMAND
[ "$1" = -p ] && port=$2 && shift 2
[ "$1" = -- ] && shift
target=$1; shift
printf 'ssh %s %s %s\n' "$port" "$target" "$*" >>"$FAKE_LOG"
case "$*" in
  mktemp*) dir=$(mktemp -d /tmp/auditc.XXXXXX) && printf 'made %s\n' "$dir" >>"$FAKE_LOG" && echo "$dir" ;;
  *apiserver-config.patch.sh*)
    stage=$(printf '%s' "$*" | sed "s/.*sh '\(.*\)\/apiserver-config.patch.sh'.*/\1/")
    ls "$stage" | sort | tr '\n' ' ' >>"$FAKE_LOG"; echo >>"$FAKE_LOG"
    [ "$target" != "$FAIL_TARGET" ] ;;
  rm*) rm -rf "$(printf '%s' "$*" | sed "s/rm -rf '\(.*\)'/\1/")" ;;
esac
"""

SCP = r"""#!/bin/sh
# stand-in scp: scp -q -P PORT -- FILES... TARGET:DIR/
printf 'scp %s\n' "$*" >>"$FAKE_LOG"
for last; do :; done
dir=${last#*:}
shift 4
while [ "$#" -gt 1 ]; do cp "$1" "$dir"; shift; done
"""


def _setup(tmp_path: Path, spec: Path = ROOT / "specs" / "edge-tls.yaml") -> tuple[Path, dict[str, str]]:
    site = compiled(spec)
    out = write_tree(site, tmp_path / "out")
    bin_dir = tmp_path / "bin"
    standins.install(bin_dir)
    for name, text in (("ssh", SSH), ("scp", SCP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
    }
    return out, env


def _log(tmp_path: Path) -> list[str]:
    """The calls, with the rollout wait's timeout as planned: apply.sh passes what is left
    of it, a second less when the clock ticks in between."""
    return [standins.planned_wait(line) for line in (tmp_path / "log").read_text().splitlines()]


def _apply(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_falco_is_installed_and_up_before_any_host(tmp_path: Path) -> None:
    """Engine none: kubectl apply -k cluster/, helm upgrade --install of exactly the pinned
    chart with the rendered values, a bounded wait, and only then ssh."""
    out, env = _setup(tmp_path)
    result = _apply(out, env, "--context", "edge")
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    first_ssh = next(i for i, line in enumerate(log) if line.startswith("ssh"))
    cluster = log[:first_ssh]
    assert (
        cluster[0]
        == f"kubectl --context edge apply --server-side --field-manager=auditc -k {out}/plan/../cluster"
    )
    assert cluster[1] == (
        "helm --kube-context edge upgrade --install falco falco "
        "--repo https://falcosecurity.github.io/charts --version 9.1.0 "
        f"--namespace falco -f {out}/plan/../helm/falco-values.yaml"
    )
    assert cluster[2:] == [
        "kubectl --context edge -n falco get deployment/falco",
        "kubectl --context edge -n falco rollout status deployment/falco --timeout=300s",
    ]
    assert not any(line.startswith(("kubectl", "helm")) for line in log[first_ssh:])


def test_a_receiver_that_never_comes_up_stops_before_any_host(tmp_path: Path) -> None:
    out, env = _setup(tmp_path)
    env["FAKE_FALCO"] = "unavailable"
    result = _apply(out, env, "--wait-timeout", "1")
    assert result.returncode == 1
    assert "deployment/falco in namespace falco is not available; no node was touched" in result.stderr
    assert not any(line.startswith(("ssh", "scp")) for line in _log(tmp_path))


def test_gitops_sites_wait_for_the_controller(tmp_path: Path) -> None:
    """Argo CD / Flux deploy Falco: the script installs nothing, waits for the workload to
    appear (bounded) and touches no node when it never does."""
    out, env = _setup(tmp_path, ROOT / "specs" / "prod-east.yaml")
    env["FAKE_FALCO"] = "absent"
    result = _apply(out, env, "--wait-timeout", "1")
    assert result.returncode == 1
    assert "deployment/falco does not exist in namespace falco after 1s; no node was touched" in result.stderr
    log = _log(tmp_path)
    assert not any(line.startswith(("helm", "ssh", "scp")) or " apply " in line for line in log)
    assert "Flux deploys Falco from output/prod-east/cluster" in result.stdout


def test_dynamic_auditing_gets_its_sink_after_the_nodes(tmp_path: Path) -> None:
    """The AuditSink API is served only once the apiservers run with dynamic auditing on."""
    out, env = _setup(tmp_path, ROOT / "specs" / "legacy-lab.yaml")
    result = _apply(out, env)
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    last_ssh = max(i for i, line in enumerate(log) if line.startswith("ssh"))
    assert log[last_ssh + 1 :] == [
        f"kubectl apply --server-side --field-manager=auditc -f {out}/plan/audit-sink.yaml"
    ]
    # the timeout is what is left of the 300 s wait: 299s on a slow machine
    (wait,) = [
        i for i, line in enumerate(log) if line.startswith("kubectl -n falco rollout status daemonset/falco")
    ]
    assert wait < last_ssh


def test_chart_1_0_comes_after_the_nodes(tmp_path: Path) -> None:
    """Chart 1.0.12 (Falco 0.17) installs its own AuditSink: the nodes first, then the chart."""
    receiver = {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.50"}}
    (tmp_path / "spec").mkdir()
    spec = write_spec(
        tmp_path / "spec",
        {
            "kubernetes": {"version": "1.16.0"},
            "falco": {"version": "0.17.1", "receiver": receiver},
            "audit": {"dynamic": True, "webhook": {"enabled": False}},
        },
    )
    out, env = _setup(tmp_path, spec)
    result = _apply(out, env)
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    ssh = [i for i, line in enumerate(log) if line.startswith("ssh")]
    assert log[0].startswith("kubectl apply --server-side --field-manager=auditc -k ") and log[1].startswith(
        "ssh"
    )
    helm = next(i for i, line in enumerate(log) if line.startswith("helm"))
    assert helm > max(ssh) and "--version 1.0.12" in log[helm] and "charts.helm.sh/stable" in log[helm]
    assert log[helm + 1 :] == [
        "kubectl -n falco get daemonset/falco",
        "kubectl -n falco rollout status daemonset/falco --timeout=300s",
    ]


def test_execute_rolls_out_host_by_host(tmp_path: Path) -> None:
    out, env = _setup(tmp_path, ROOT / "specs" / "prod-east.yaml")
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    hosts = [line.split()[2] for line in log if line.startswith("ssh")]
    assert hosts == ["root@10.0.1.171"] * 3 + ["root@10.0.1.172"] * 3 + ["ops@10.0.1.173"] * 3
    staged = [line for line in log if line.startswith("apiserver-config.patch.sh")]
    assert staged == ["apiserver-config.patch.sh audit-policy.yaml audit-webhook.kubeconfig "] * 3
    patch_lines = [line for line in log if "apiserver-config.patch.sh'" in line]
    assert "sudo -n sh" in patch_lines[2] and "sudo" not in patch_lines[0]
    made = [line.split()[1] for line in log if line.startswith("made ")]
    assert len(made) == 3
    assert not any(Path(d).exists() for d in made), "temp dirs are removed"


def test_first_failing_host_stops_the_rollout(tmp_path: Path) -> None:
    out, env = _setup(tmp_path, ROOT / "specs" / "prod-east.yaml")
    env["FAIL_TARGET"] = "root@10.0.1.172"
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "root@10.0.1.172 failed; rollout stopped" in result.stderr
    log = _log(tmp_path)
    assert not any("10.0.1.173" in line for line in log)
    for line in log:
        if line.startswith("made "):
            shutil.rmtree(line.split()[1], ignore_errors=True)
