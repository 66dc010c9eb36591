"""k3s: the node script (node/apiserver-config.patch.sh) run on servers that are
directories holding stand-in systemctl and k3s (tests/platforms/dropin_world.py: they
follow k3s's documented config contract and start an apiserver that is ready only with
files it can read), then auditc plan / apply / diff --live over the suite's real sshd."""

from __future__ import annotations

import os
import shutil
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

EXAMPLE = ROOT / "specs" / "k3s-edge.yaml"
SERVERS = ["10.20.0.11", "10.20.0.12", "10.20.0.13"]
DROP_IN = "etc/rancher/k3s/config.yaml.d/zz-auditc.yaml"


def _server(root: Path) -> Path:
    return world.server(root, world.K3S)


_tree, _restarts = world.tree, world.restarts
CONFIG = world.CONFIG
RELAY = world.RELAY


def _node(tmp_path: Path, spec: Path = EXAMPLE) -> Path:
    return write_tree(compiled(spec), tmp_path / "out") / "node"


def _run(node: Path, root: Path, *args: str, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDITC_POLL_INTERVAL": "0.05"}
    script = node / "apiserver-config.patch.sh"
    return subprocess.run(
        [shell, str(script), "--root", str(root), *args], capture_output=True, text=True, env=env, timeout=60
    )


def _restarts(root: Path) -> int:
    log = root / "run/systemctl.log"
    return sum(line.startswith("restart ") for line in log.read_text().splitlines()) if log.exists() else 0


def test_the_drop_in_appends_the_audit_flags(tmp_path: Path) -> None:
    node = _node(tmp_path)
    from compiler import __version__

    assert __version__ not in (node / "zz-auditc.yaml").read_text(), (
        "an upgrade must not restart every server"
    )
    drop_in = yaml12.load((node / "zz-auditc.yaml").read_text())
    (flags,) = drop_in.values()
    assert list(drop_in) == ["kube-apiserver-arg+"]
    assert "audit-policy-file=/var/lib/rancher/k3s/server/auditc/audit-policy.yaml" in flags
    assert "audit-webhook-config-file=/var/lib/rancher/k3s/server/auditc/audit-webhook.kubeconfig" in flags
    assert "audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log" in flags
    plan = yaml12.load((node.parent / "plan/plan.yaml").read_text())
    assert [h["host"] for h in plan["spec"]["hosts"]] == SERVERS


@pytest.mark.parametrize("shell", ["sh", "bash", "busybox"])
def test_install_restart_then_nothing_to_do(tmp_path: Path, shell: str) -> None:
    if shell == "busybox" and shutil.which("busybox") is None:
        pytest.skip("busybox is not installed (make test installs it)")
    node, root = _node(tmp_path), _server(tmp_path / "server")
    argv_shell = ["busybox", "sh"] if shell == "busybox" else [shell]
    result = subprocess.run(
        [*argv_shell, str(node / "apiserver-config.patch.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "AUDITC_POLL_INTERVAL": "0.05"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (root / DROP_IN).read_bytes() == (node / "zz-auditc.yaml").read_bytes()
    assert (root / "var/lib/rancher/k3s/server/auditc/audit-policy.yaml").read_bytes() == (
        node / "audit-policy.yaml"
    ).read_bytes()
    assert (root / "var/lib/rancher/k3s/server/logs").is_dir()
    args = (root / "run/apiserver.args").read_text().splitlines()
    assert args[0] == "--enable-admission-plugins=NodeRestriction", "the user's flags stay first"
    assert "--audit-webhook-mode=batch" in args
    assert (root / "etc/rancher/k3s/config.yaml").read_text() == CONFIG, "the user's file is never written"
    assert _restarts(root) == 1

    again = _run(node, root)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    assert _restarts(root) == 1, "nothing changed: no restart"


def test_an_apiserver_that_does_not_come_back_is_put_back(tmp_path: Path) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    before = _tree(root)
    (root / "run/broken").touch()
    result = _run(node, root, "--wait-timeout", "0")
    assert result.returncode == 1
    assert "did not answer /readyz within 0s: rolling back" in result.stderr
    (root / "run/broken").unlink()
    after = _tree(root)
    # the drop-in and config files are gone again; only the backup (and the empty dirs) stay
    assert {k: v for k, v in after.items() if not k.startswith("var/lib/auditc/backup/")} == before
    assert _restarts(root) == 2, "restarted with the change, then again without it"


def test_a_previous_drop_in_is_restored(tmp_path: Path) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    old = b"# an older auditc drop-in\nkube-apiserver-arg+:\n- audit-log-maxage=30\n"
    (root / DROP_IN).parent.mkdir(parents=True)
    (root / DROP_IN).write_bytes(old)
    (root / "run/broken").touch()
    assert _run(node, root, "--wait-timeout", "0").returncode == 1
    assert (root / DROP_IN).read_bytes() == old


def _env_file(root: Path, text: str) -> None:
    """The unit loads an environment file (the k3s install script writes k3s.service.env)."""
    (root / "run/EnvironmentFiles").write_text("/etc/systemd/system/k3s.service.env (ignore_errors=yes)")
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/k3s.service.env").write_text(text)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda root: (root / "run/cmdline").write_text(
                "/usr/local/bin/k3s server --kube-apiserver-arg=anonymous-auth=false"
            ),
            "passes --kube-apiserver-arg on its command line",
        ),
        (
            lambda root: (
                (root / "etc/rancher/k3s/config.yaml.d").mkdir()
                or (root / "etc/rancher/k3s/config.yaml.d/zzz-late.yaml").write_text(
                    "kube-apiserver-arg:\n  - profiling=false\n"
                )
            ),
            "zzz-late.yaml sorts after zz-auditc.yaml and sets kube-apiserver-arg without +",
        ),
        (
            lambda root: (
                (root / "etc/rancher/k3s/config.yaml.d").mkdir()
                or (root / "etc/rancher/k3s/config.yaml.d/zzz-late.YML").write_text(
                    "{kube-apiserver-arg: [profiling=false]}\n"
                )
            ),
            "zzz-late.YML sorts after zz-auditc.yaml and sets kube-apiserver-arg without +",
        ),
        (
            lambda root: (
                (root / "etc/rancher/k3s/config.yaml.d").mkdir()
                or (root / "etc/rancher/k3s/config.yaml.d/zzz-late.yaml").write_text(
                    "kube-apiserver-arg+:\n  - audit-log-path=-\n"
                )
            ),
            "zzz-late.yaml sorts after zz-auditc.yaml and appends audit flags of its own",
        ),
        (
            lambda root: (root / "run/cmdline").write_text(
                "/usr/local/bin/k3s server --config /etc/k3s.yaml"
            ),
            "k3s runs with --config of its own, not /etc/rancher/k3s/config.yaml",
        ),
        (
            lambda root: _env_file(root, "K3S_CONFIG_FILE=/etc/other.yaml\n"),
            "k3s sets K3S_CONFIG_FILE to another file than /etc/rancher/k3s/config.yaml",
        ),
    ],
)
def test_refusals_change_nothing(tmp_path: Path, setup: Any, message: str) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    setup(root)
    before = _tree(root)
    result = _run(node, root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert _tree(root) == before and _restarts(root) == 0


def test_check_health(tmp_path: Path) -> None:
    node, root = _node(tmp_path), _server(tmp_path / "server")
    assert _run(node, root, "--check-health").returncode == 0
    (root / "run/apiserver.state").write_text("failed: down\n")
    down = _run(node, root, "--check-health")
    assert down.returncode == 1 and "does not answer /readyz" in down.stderr


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"kubernetes": {"version": "1.21"}}, "spec.kubernetes.version", "k3s before 1.22"),
        ({"platform": {"k3s": {"servers": []}}}, "spec.platform.k3s.servers", "at least 1"),
        (
            {"platform": {"k3s": {"servers": [{"host": "a"}], "service": "k3s;id"}}},
            "spec.platform.k3s.service",
            "a systemd unit name",
        ),
    ],
)
def test_spec_errors_point_at_the_field(
    tmp_path: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    base: dict[str, Any] = {
        "platform": {"type": "k3s", "kubeadm": None, "k3s": {"servers": [{"host": "10.0.0.1"}]}}
    }
    if "platform" in spec:
        base["platform"]["k3s"] = spec.pop("platform")["k3s"]
    path = write_spec(tmp_path, {**base, **spec})
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0


# ---- auditc plan / apply / diff --live over the real sshd -------------------------------


@pytest.fixture
def edge(tmp_path: Path, sshd: tuple[int, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return world.ssh_site(tmp_path, sshd, monkeypatch, world.K3S, EXAMPLE, SERVERS)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_plan_apply_over_ssh_then_an_empty_plan(edge: dict[str, Any]) -> None:
    spec, nodes, args = edge["spec"], edge["nodes"], edge["args"]
    applied = _cli("apply", str(spec), "--yes", "--verify-timeout", "2", *args)
    assert applied.exit_code == 0, applied.output
    for host in SERVERS:
        assert (nodes / host / DROP_IN).exists() and _restarts(nodes / host) == 1
    assert "verify: k3s-edge: Falco alerted on ConfigMap auditc-probe-" in applied.stdout
    again = _cli("plan", str(spec), *args)
    assert again.exit_code == 0, again.output

    # a drop-in edited by hand on one server shows in the live diff, as a whole file
    (nodes / SERVERS[1] / DROP_IN).write_text("kube-apiserver-arg+:\n- audit-log-maxage=1\n")
    live = _cli("diff", str(spec), "--live", "--local", "--node-root", f"{nodes}/{{host}}")  # no ssh: quicker
    assert live.exit_code == 1, live.output
    assert "/etc/rancher/k3s/config.yaml.d/zz-auditc.yaml" in live.stdout and SERVERS[1] in live.stdout


def test_audit_flags_in_the_users_config_are_pointed_out(tmp_path: Path) -> None:
    node = _node(tmp_path)
    root = world.server(tmp_path / "server", world.K3S, world.CONFIG + '  - "audit-log-maxage=1"\n')
    result = _run(node, root)
    assert result.returncode == 0, result.stderr
    assert "config.yaml sets audit flags of its own; the drop-in's come later and win" in result.stderr
    flags = world.apiserver_flags(root)
    assert flags.index("--audit-log-maxage=1") < flags.index("--audit-log-maxage=30"), "auditc's is last"
