"""k3s: the node script (node/apiserver-config.patch.sh) run on servers that are
directories, with a stand-in systemctl and k3s inside each (DIR/usr/bin/systemctl,
DIR/usr/local/bin/k3s, what --root takes). The stand-ins follow k3s's documented config
contract (k3s-io/docs, "Multiple Config Files"): config.yaml, then config.yaml.d/*.yaml in
byte order, the last value of a key wins and `key+:` appends; `k3s server` on the command
line with --kube-apiserver-arg replaces the files' list. `systemctl restart k3s` starts the
embedded kube-apiserver with the merged flags, and it is ready only when the files its
audit flags name exist and parse (a Policy, a kubeconfig), as kube-apiserver refuses to
start otherwise. Then auditc plan / apply / diff --live over the suite's real sshd."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.api import compile_site
from compiler.cli import app
from compiler.errors import UserError
from tests import standins
from tests.sites import ROOT, compiled, write_spec, write_tree
from tests.tools import ssh_options, yaml12

EXAMPLE = ROOT / "specs" / "k3s-edge.yaml"
SERVERS = ["10.20.0.11", "10.20.0.12", "10.20.0.13"]
DROP_IN = "etc/rancher/k3s/config.yaml.d/zz-auditc.yaml"

# the stand-in systemctl: `show -p ExecStart --value UNIT`, `restart UNIT`; state and a
# call log in DIR/run. A restart merges the config files as k3s does and "starts"
# kube-apiserver: DIR/run/k3s.state is ready or failed (with the reason), DIR/run/k3s.args
# holds the flags it runs with. DIR/run/broken: the apiserver fails whatever its flags.
SYSTEMCTL = r"""
import glob, os, sys
import yaml
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
run = os.path.join(root, "run")
os.makedirs(run, exist_ok=True)
with open(os.path.join(run, "systemctl.log"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
cmdline = os.path.join(run, "cmdline")
command = open(cmdline).read().strip() if os.path.exists(cmdline) else "/usr/local/bin/k3s server"
if args[:3] == ["show", "-p", "ExecStart"]:
    if args[-1] == "k3s":
        print("{ path=/usr/local/bin/k3s ; argv[]=" + command + " ; ignore_errors=no }")
    sys.exit(0)
if args[0] != "restart" or args[1] != "k3s":
    print(f"Failed to {args[0]} {args[-1]}: Unit {args[-1]}.service not found.", file=sys.stderr)
    sys.exit(5)
config = os.path.join(root, "etc/rancher/k3s/config.yaml")
files = ([config] if os.path.exists(config) else []) + sorted(glob.glob(config + ".d/*.yaml"))
merged = {}
for path in files:
    for key, value in (yaml.safe_load(open(path)) or {}).items():
        if key.endswith("+"):
            key = key[:-1]
            merged[key] = list(merged.get(key) or []) + (value if isinstance(value, list) else [value])
        else:
            merged[key] = value
flags = list(merged.get("kube-apiserver-arg") or [])
if "--kube-apiserver-arg" in command:
    flags = [part.split("=", 1)[1] for part in command.split() if part.startswith("--kube-apiserver-arg=")]
def failed(why):
    open(os.path.join(run, "k3s.state"), "w").write("failed: " + why + "\n")
    sys.exit(0)  # k3s keeps running; its apiserver does not come up
open(os.path.join(run, "k3s.args"), "w").write("".join(f"--{f}\n" for f in flags))
if os.path.exists(os.path.join(run, "broken")):
    failed("the stand-in was told to fail")
named = dict(f.split("=", 1) for f in flags)
for flag, kind in (("audit-policy-file", "Policy"), ("audit-webhook-config-file", "Config")):
    if flag in named:
        path = root + named[flag]
        if not os.path.exists(path):
            failed(f"--{flag}: open {named[flag]}: no such file or directory")
        if (yaml.safe_load(open(path)) or {}).get("kind") != kind:
            failed(f"--{flag}: {named[flag]} is not a {kind}")
open(os.path.join(run, "k3s.state"), "w").write("ready\n")
"""

# the stand-in k3s: `k3s kubectl get --raw=/readyz`, as the admin kubeconfig answers it
K3S = r"""
import os, sys
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
state = os.path.join(root, "run", "k3s.state")
if sys.argv[1:] != ["kubectl", "get", "--raw=/readyz"]:
    print(f"stand-in k3s: unexpected: {sys.argv[1:]}", file=sys.stderr); sys.exit(64)
if os.path.exists(state) and open(state).read().startswith("ready"):
    print("ok"); sys.exit(0)
print("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?",
      file=sys.stderr)
sys.exit(1)
"""

RELAY = r"""
import os, socket, sys, threading
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while data := os.read(0, 65536):
        connection.sendall(data)
    connection.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := connection.recv(65536):
    os.write(1, data)
"""

CONFIG = (
    'write-kubeconfig-mode: "0644"\nkube-apiserver-arg:\n  - "enable-admission-plugins=NodeRestriction"\n'
)


def _server(root: Path) -> Path:
    """A k3s server as a directory: its config file, systemd and k3s stand-ins, running."""
    for relative, body in (("usr/bin/systemctl", SYSTEMCTL), ("usr/local/bin/k3s", K3S)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    config = root / "etc/rancher/k3s/config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG)
    (root / "run").mkdir(exist_ok=True)
    (root / "run/k3s.state").write_text("ready\n")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under the server except the stand-ins' own run state."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "run"
    }


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
    args = (root / "run/k3s.args").read_text().splitlines()
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
    result = _run(node, root, "--wait-timeout", "1")
    assert result.returncode == 1
    assert "did not answer /readyz within 1s: rolling back" in result.stderr
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
    assert _run(node, root, "--wait-timeout", "1").returncode == 1
    assert (root / DROP_IN).read_bytes() == old


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
    (root / "run/k3s.state").write_text("failed: down\n")
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
    """Three k3s servers as directories behind the suite's sshd, the stand-in cluster for
    the cluster layer (its probe alert arrives when the servers' drop-ins dial Falco)."""
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    port, key = sshd
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    nodes = tmp_path / "nodes"
    for host in SERVERS:
        _server(nodes / host)
    (tmp_path / "cluster").mkdir()
    for name, value in {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLUSTER": str(tmp_path / "cluster"),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_REAL_KUBECTL": real_kubectl,
        "FAKE_APISERVER_CONFIGS": os.pathsep.join(str(nodes / h / DROP_IN) for h in SERVERS),
        "AUDITC_STATE_DIR": str(tmp_path / "state"),
        "AUDITC_POLL_INTERVAL": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    text = EXAMPLE.read_text()
    for host in SERVERS:
        text = text.replace(f"- host: {host}\n", f"- host: {host}\n          port: {port}\n")
    spec = tmp_path / "k3s-edge.yaml"
    spec.write_text(text)
    relay = tmp_path / "relay.py"  # every server name reaches the test sshd on 127.0.0.1
    relay.write_text(RELAY)
    args = ["--node-root", f"{nodes}/{{host}}", *ssh_options(key)]
    args += ["--ssh-option", f"ProxyCommand={sys.executable} {relay} %p"]
    return {"spec": spec, "nodes": nodes, "args": args}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_plan_apply_over_ssh_then_an_empty_plan(edge: dict[str, Any]) -> None:
    spec, nodes, args = edge["spec"], edge["nodes"], edge["args"]
    planned = _cli("plan", str(spec), *args)
    assert planned.exit_code == 1, planned.output
    assert planned.stdout.splitlines()[-1].startswith(
        "apply: the cluster layer, then 3 host(s) one at a time"
    )
    applied = _cli("apply", str(spec), "--yes", "--verify-timeout", "2", *args)
    assert applied.exit_code == 0, applied.output
    for host in SERVERS:
        assert (nodes / host / DROP_IN).exists() and _restarts(nodes / host) == 1
    assert "verify: k3s-edge: Falco alerted on ConfigMap auditc-probe-" in applied.stdout
    again = _cli("plan", str(spec), *args)
    assert again.exit_code == 0, again.output

    # a drop-in edited by hand on one server shows in the live diff, as a whole file
    (nodes / SERVERS[1] / DROP_IN).write_text("kube-apiserver-arg+:\n- audit-log-maxage=1\n")
    live = _cli("diff", str(spec), "--live", *args)
    assert live.exit_code == 1, live.output
    assert "/etc/rancher/k3s/config.yaml.d/zz-auditc.yaml" in live.stdout and SERVERS[1] in live.stdout
