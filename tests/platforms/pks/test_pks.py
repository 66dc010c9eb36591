"""The PKS/TKGI plan executed with --execute against stand-in `pks` and `bosh` programs.

The stand-ins follow the documented CLI contracts (shared research pks-bosh.md §4-§5:
`pks login -a -u -p [-k]`, `pks cluster NAME --json` with `uuid`, deployment
`service-instance_<uuid>`, `bosh -d DEP vms --json` tables with string cells, `bosh -d
DEP scp -r SRC INSTANCE:DST`, `bosh -d DEP ssh INSTANCE -c CMD`) and treat a local
directory per master as that VM's `/`, each holding a realistic TKGI bpm.yml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import standins
from tests.paths import DATA
from tests.platforms.pks.fakes import BOSH, BPM, HEALTH, MASTERS, MONIT, PASSWORD, PKS, UUID, tkgi_master
from tests.sites import ROOT, compiled, write_tree
from tests.tools import yaml12


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = compiled(ROOT / "specs" / "tkgi-prod.yaml")
    out = write_tree(site, tmp_path / "out" / site.name)
    fake = tmp_path / "fake"
    bin_dir = fake / "bin"
    standins.install(bin_dir)
    for name, text in (("pks", PKS), ("bosh", BOSH), ("monit", MONIT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for master in MASTERS:
        root = fake / "vms" / master.replace("/", "_")
        (root / "tmp").mkdir(parents=True)
        tkgi_master(root)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE": str(fake),
        "FAKE_LOG": str(fake / "log"),
        "FAKE_UUID": UUID,
        "FAKE_PASSWORD": PASSWORD,
        "TKGI_USER": "ops-admin",
        "TKGI_PASSWORD": PASSWORD,
        "OS_CONF_VERSION": "23.0.2",
    }
    return out, env


def _apply(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _log(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_LOG"])
    lines = path.read_text().splitlines() if path.exists() else []
    return [standins.planned_wait(line) for line in lines]


def _root(env: dict[str, str], master: str) -> Path:
    return Path(env["FAKE"]) / "vms" / master.replace("/", "_")


def _args(bpm: Path) -> list[str]:
    (process,) = yaml12.load(bpm.read_text())["processes"]
    return [str(a) for a in process["args"]]


def test_rollout_one_master_at_a_time(fleet: tuple[Path, dict[str, str]]) -> None:
    out, env = fleet
    result = _apply(out, env)
    assert result.returncode == 0, result.stderr
    log = _log(env)
    # the cluster layer first: Argo CD deploys Falco, the script waits for it on the
    # cluster's own context (pks get-credentials), then the masters
    assert log[:5] == [
        "pks login -a api.tkgi.example.com -u ops-admin -p <hidden> ",
        "pks get-credentials prod-1",
        "kubectl --context prod-1 -n falco get deployment/falco",
        "kubectl --context prod-1 -n falco rollout status deployment/falco --timeout=300s",
        "pks cluster prod-1 --json",
    ]
    touched = [line.split()[2] for line in log if line.startswith(("bosh scp", "bosh ssh"))]
    assert touched == [m for m in MASTERS for _ in range(3)], "scp, patch, cleanup per master, in order"
    patches = [line for line in log if "apiserver-config.patch.sh" in line and line.startswith("bosh ssh")]
    assert all(
        "--mode bpm" in line and line.split(" ", 3)[3].startswith("sudo sh '/tmp/auditc.") for line in patches
    )
    assert log.count("monit restart kube-apiserver") == 3
    for master in MASTERS:
        root = _root(env, master)
        config = root / "var/vcap/jobs/kube-apiserver/config"
        for name in ("audit-policy.yaml", "audit-webhook.kubeconfig"):
            assert (config / name).read_bytes() == (out / "node" / name).read_bytes()
            assert (config / name).stat().st_mode & 0o777 == 0o644
        args = _args(root / BPM)
        for flag in ("audit-policy-file", "audit-webhook-config-file", "audit-webhook-batch-max-wait"):
            assert sum(a.startswith(f"--{flag}=") for a in args) == 1, flag
        assert f"--audit-policy-file={config}/audit-policy.yaml".replace(str(root), "") in args
        # TKGI's own log flags are left alone (the spec does not set audit.log)
        assert "--audit-log-path=/var/vcap/sys/log/kube-apiserver/audit/log/audit.log" in args
        assert not list((root / "tmp").iterdir()), "the temp dir is removed"
    assert PASSWORD not in result.stdout + result.stderr + "\n".join(log)

    before = {m: (_root(env, m) / BPM).read_bytes() for m in MASTERS}
    Path(env["FAKE_LOG"]).unlink()
    again = _apply(out, env)
    assert again.returncode == 0, again.stderr
    assert {m: (_root(env, m) / BPM).read_bytes() for m in MASTERS} == before
    assert not any(line.startswith("monit") for line in _log(env)), "a second run restarts nothing"
    assert _log(env)[-1] == (
        "bosh update-config --name=auditc-tkgi-prod runtime-config.yaml "
        f"deployment=service-instance_{UUID} os_conf_version=23.0.2"
    )


def test_unhealthy_master_is_restored_and_stops_the_rollout(fleet: tuple[Path, dict[str, str]]) -> None:
    out, env = fleet
    sick = _root(env, MASTERS[1])
    (sick / HEALTH).write_text("#!/bin/sh\nexit 1\n")
    original = (sick / BPM).read_bytes()
    result = _apply(out, env)
    assert result.returncode == 1
    assert f"{MASTERS[1]} failed; rollout stopped" in result.stderr
    assert (sick / BPM).read_bytes() == original
    assert not any(MASTERS[2] in line for line in _log(env)), "the third master is never touched"
    third = _root(env, MASTERS[2])
    assert (third / BPM).read_bytes() == (DATA / "bpm/tkgi-master.yml").read_bytes()
    assert "--audit-webhook-config-file" in (_root(env, MASTERS[0]) / BPM).read_text()


@pytest.mark.parametrize("missing", ["TKGI_USER", "TKGI_PASSWORD", "OS_CONF_VERSION"])
def test_missing_credentials_stop_before_any_remote_step(
    fleet: tuple[Path, dict[str, str]], missing: str
) -> None:
    out, env = fleet
    del env[missing]
    result = _apply(out, env)
    assert result.returncode == 2
    assert (
        "set TKGI_USER and TKGI_PASSWORD" if missing != "OS_CONF_VERSION" else "set OS_CONF_VERSION"
    ) in result.stderr
    assert _log(env) == []
    assert PASSWORD not in result.stdout + result.stderr


def test_dry_run_names_the_variables_not_their_values(fleet: tuple[Path, dict[str, str]]) -> None:
    out, env = fleet
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh")], env=env, capture_output=True, text=True, check=True
    )
    assert '-u "$TKGI_USER" -p "$TKGI_PASSWORD"' in result.stdout
    assert PASSWORD not in result.stdout and "ops-admin" not in result.stdout
    assert _log(env) == []
    assert "bosh -n update-config --type=runtime --name=auditc-tkgi-prod" in result.stdout


def _resolved(tmp_path: Path, spec: dict[str, object]) -> object:
    from compiler.pipeline import load
    from tests.sites import write_spec

    base = {
        "platform": {"type": "pks", "kubeadm": None, "pks": {"api": "api.example.com", "cluster": "c1"}},
        "falco": {"receiver": {"address": "10.0.0.1"}},
    }
    return load(write_spec(tmp_path, {**base, **spec}))


def test_bpm_leaves_tkgi_log_flags_unless_the_spec_writes_audit_log(tmp_path: Path) -> None:
    from compiler.artifacts.apiserver import apiserver_change

    default = apiserver_change(_resolved(tmp_path, {}))  # type: ignore[arg-type]
    assert not any(name.startswith("audit-log-") for name, _ in default.flags)
    assert "audit-log-" not in "".join(default.owned_prefixes)

    tuned = apiserver_change(_resolved(tmp_path, {"audit": {"log": {"maxAge": 60}}}))  # type: ignore[arg-type]
    flags = dict(tuned.flags)
    assert flags["audit-log-maxage"] == "60"
    assert flags["audit-log-path"] == "/var/vcap/sys/log/kube-apiserver/audit/log/audit.log"
    assert tuned.owned_prefixes == ("audit-",)

    off = apiserver_change(_resolved(tmp_path, {"audit": {"log": {"enabled": False}}}))  # type: ignore[arg-type]
    assert not any(name.startswith("audit-log-") for name, _ in off.flags)
    assert off.owned_prefixes == ("audit-",), "TKGI's log flags are removed when the spec turns the log off"


def test_bpm_config_dir_must_be_visible_in_the_sandbox(tmp_path: Path) -> None:
    from compiler.errors import UserError

    spec = {
        "platform": {
            "type": "pks",
            "kubeadm": None,
            "pks": {"api": "a.example.com", "cluster": "c1", "configDir": "/var/lib/k8s-audit"},
        }
    }
    with pytest.raises(UserError, match="cannot see /var/lib/k8s-audit inside its bpm sandbox"):
        _resolved(tmp_path, spec)


def test_static_pod_layout_over_bosh(tmp_path: Path, readyz_server: int) -> None:
    """apiserverConfig: staticPod (the seed's layout): the same stand-ins, masters holding a
    kube-apiserver static pod manifest, the patch script waiting on a real /readyz."""
    site = compiled(ROOT / "specs" / "seed-pks14.yaml")
    out = write_tree(site, tmp_path / "out" / site.name)
    fake = tmp_path / "fake"
    bin_dir = fake / "bin"
    standins.install(bin_dir)
    for name, text in (("pks", PKS), ("bosh", BOSH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    manifest = Path("etc/kubernetes/manifests/kube-apiserver.yaml")
    real = (DATA / "kube-apiserver-manifests/1.16.0-kubeadm.yaml").read_text()
    text = real.replace("--secure-port=6443", f"--secure-port={readyz_server}")
    for master in MASTERS[:2]:
        root = fake / "vms" / master.replace("/", "_")
        (root / "tmp").mkdir(parents=True)
        (root / manifest).parent.mkdir(parents=True)
        (root / manifest).write_text(text)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE": str(fake),
        "FAKE_LOG": str(fake / "log"),
        "FAKE_UUID": UUID,
        "FAKE_PASSWORD": PASSWORD,
        "PKS_USER": "ops",
        "PKS_PASSWORD": PASSWORD,
    }
    result = _apply(out, env)
    assert result.returncode == 0, result.stderr
    for master in MASTERS[:2]:
        root = fake / "vms" / master.replace("/", "_")
        patched = (root / manifest).read_text()
        assert patched.count("--audit-log-path=/var/lib/k8s-audit/audit.log") == 1
        assert (
            patched.count("--audit-policy-file=/var/vcap/jobs/kube-apiserver/config/audit-policy.yaml") == 1
        )
        assert (root / "var/lib/k8s-audit").is_dir()
    patch_calls = [line for line in _log(env) if line.startswith("bosh ssh") and "patch.sh" in line]
    assert len(patch_calls) == 2 and all("--mode static-pod" in line for line in patch_calls)


def test_live_diff_reads_masters_over_bosh(fleet: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """After the rollout the masters match; one edited flag on one master is reported there."""
    out, env = fleet
    assert _apply(out, env).returncode == 0
    kubectl = Path(env["FAKE"]) / "bin" / "kubectl"
    kubectl.write_text("#!/bin/sh\nexit 0\n")  # the cluster side is not under test here
    kubectl.chmod(0o755)
    spec = str(ROOT / "specs" / "tkgi-prod.yaml")

    def live() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "compiler", "diff", spec, "--live"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )

    clean = live()
    assert [line for line in clean.stdout.splitlines() if "bpm.yml" in line or "config/audit" in line] == []
    bpm = _root(env, MASTERS[1]) / BPM
    bpm.write_text(
        bpm.read_text().replace("--audit-webhook-batch-max-wait=5s", "--audit-webhook-batch-max-wait=9s")
    )
    edited = live()
    lines = [line for line in edited.stdout.splitlines() if "bpm.yml" in line]
    assert lines == [
        f"  changed    {MASTERS[1]} /var/vcap/jobs/kube-apiserver/config/bpm.yml "
        "--audit-webhook-batch-max-wait: rendered 5s, live 9s"
    ], edited.stdout + edited.stderr
