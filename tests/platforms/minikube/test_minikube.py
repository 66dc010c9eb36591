"""minikube: the dry run of plan/apply.sh, checked flag by flag against the spec."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from compiler.api import compile_site
from tests.sites import ROOT, write_spec, write_tree
from tests.tools import yaml12

yaml = yaml12
MINIKUBE = {
    "platform": {"type": "minikube", "kubeadm": None, "minikube": {"profile": "audit-lab"}},
    "falco": None,
}


def _dry_run(spec: Path, tmp_path: Path) -> tuple[list[list[str]], Path]:
    root = write_tree(compile_site(spec), tmp_path / "out")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MINIKUBE_HOME": str(tmp_path / "mk")}
    result = subprocess.run(
        ["bash", str(root / "plan/apply.sh")], capture_output=True, text=True, check=True, env=env
    )
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert not (tmp_path / "mk").exists(), "a dry run touches nothing"
    return commands, root


def _extra_config(commands: list[list[str]]) -> tuple[list[str], dict[str, str]]:
    plain, start = [c for c in commands if c[:2] == ["minikube", "start"]]
    assert not any(arg.startswith("--extra-config") for arg in plain), "no audit flags before Falco is up"
    flags = {}
    for arg in start:
        if arg.startswith("--extra-config=apiserver."):
            name, _, value = arg.removeprefix("--extra-config=apiserver.").partition("=")
            assert name not in flags, f"{name} given twice"
            flags[name] = value
    return start, flags


def test_example_site_flag_by_flag(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "dev-minikube.yaml"
    commands, root = _dry_run(spec, tmp_path)
    start, flags = _extra_config(commands)
    assert start[:4] == ["minikube", "start", "-p", "falco-dev"]
    assert "--kubernetes-version=v1.30.0" in start
    assert flags == {
        "audit-policy-file": "/etc/ssl/certs/auditc/audit-policy.yaml",
        "audit-log-path": "-",  # minikube's apiserver mounts are read-only: stdout
        "audit-log-format": "json",
        "audit-log-mode": "blocking",
        "audit-log-truncate-enabled": "false",
        "audit-webhook-config-file": "/etc/ssl/certs/auditc/audit-webhook.kubeconfig",
        "audit-webhook-mode": "batch",
        "audit-webhook-initial-backoff": "10s",
        "audit-webhook-batch-buffer-size": "10000",
        "audit-webhook-batch-max-size": "10",  # from the spec
        "audit-webhook-batch-max-wait": "5s",
        "audit-webhook-batch-throttle-enable": "true",
        "audit-webhook-batch-throttle-qps": "10",
        "audit-webhook-batch-throttle-burst": "15",
        "audit-webhook-truncate-enabled": "true",
        "audit-webhook-truncate-max-event-size": "102400",
        "audit-webhook-truncate-max-batch-size": "10485760",
    }
    installs = [c for c in commands if c[0] == "install"]
    target = str(tmp_path / "mk" / ".minikube" / "files" / "etc/ssl/certs/auditc")
    assert [c[-1] for c in installs] == [f"{target}/audit-policy.yaml", f"{target}/audit-webhook.kubeconfig"]
    kubeconfig = yaml.load((root / "node/audit-webhook.kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://localhost:30007/k8s-audit"
    assert not (root / "node/apiserver-config.patch.sh").exists()


def test_falco_comes_up_before_the_flags(tmp_path: Path) -> None:
    """The profile runs (started plain if it was not), Falco is installed and waited for,
    and only then are the files staged and the profile restarted with the audit flags."""
    commands, _ = _dry_run(ROOT / "specs" / "dev-minikube.yaml", tmp_path)
    steps = [c[0] if c[0] != "minikube" else f"minikube {c[1]}" for c in commands]
    start = steps.index("minikube start")
    helm = steps.index("helm")
    wait = next(i for i, c in enumerate(commands) if c[:1] == ["kubectl"] and "rollout" in c)
    stage = steps.index("install")
    restart = len(steps) - 1 - steps[::-1].index("minikube start")
    assert start < helm < wait < stage < steps.index("minikube stop") < restart
    (helm_command,) = [c for c in commands if c[0] == "helm"]
    assert helm_command[:3] == ["helm", "--kube-context", "falco-dev"]
    assert helm_command[helm_command.index("--version") + 1] == "9.1.0"


def test_spec_settings_reach_the_flags(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        {
            **MINIKUBE,
            "kubernetes": {"version": "1.31"},
            "audit": {"log": {"enabled": False}, "webhook": {"mode": "blocking", "initialBackoff": "3s"}},
        },
    )
    commands, _ = _dry_run(spec, tmp_path)
    start, flags = _extra_config(commands)
    assert start[:4] == ["minikube", "start", "-p", "audit-lab"]
    assert not any(a.startswith("--kubernetes-version") for a in start), "1.31 alone is not a full version"
    assert not any(name.startswith("audit-log-") for name in flags)
    assert flags["audit-webhook-mode"] == "blocking"
    assert flags["audit-webhook-initial-backoff"] == "3s"
    assert "audit-webhook-batch-max-size" not in flags  # batch settings only in batch mode


def test_minikube_home_follows_minikube(tmp_path: Path) -> None:
    """minikube uses $MINIKUBE_HOME/.minikube unless MINIKUBE_HOME already ends in .minikube."""
    root = write_tree(compile_site(write_spec(tmp_path, MINIKUBE)), tmp_path / "o")
    for home, expected in (
        ("/data/mk", "/data/mk/.minikube/files"),
        ("/data/.minikube", "/data/.minikube/files"),
    ):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MINIKUBE_HOME": home}
        out = subprocess.run(
            ["bash", str(root / "plan/apply.sh")], capture_output=True, text=True, env=env, check=True
        )
        assert f"mkdir -p {expected}/etc/ssl/certs/auditc" in out.stdout
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(root / "plan/apply.sh")], capture_output=True, text=True, env=env, check=True
    )
    assert f"mkdir -p {tmp_path}/.minikube/files/etc/ssl/certs/auditc" in out.stdout


def test_profile_and_paths_are_quoted(tmp_path: Path) -> None:
    script = (
        write_tree(compile_site(write_spec(tmp_path, MINIKUBE)), tmp_path / "o") / "plan/apply.sh"
    ).read_text()
    assert "profile='audit-lab'" in script
    assert "'files/etc/ssl/certs/auditc'" in script
