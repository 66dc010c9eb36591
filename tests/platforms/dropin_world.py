"""Servers of the drop-in platforms (k3s, RKE2) as directories, for the node script
(node/apiserver-config.patch.sh) and auditc's rollout: each holds the platform's config
file and stand-ins at the paths `--root` takes (DIR/usr/bin/systemctl and the program that
answers /readyz), and the stand-ins follow the documented contracts:

- config (k3s-io/docs "Multiple Config Files"; RKE2 reads its config with the same code):
  config.yaml, then config.yaml.d/*.yaml in byte order, the last value of a key wins,
  `key+:` appends; `--kube-apiserver-arg` on the unit's command line replaces the list;
- `systemctl restart UNIT` starts the server with the merged flags. k3s runs
  kube-apiserver in-process with exactly those; RKE2 first adds, for its top-level
  `audit-policy-file`, --audit-policy-file and its log defaults (rancher/rke2
  pkg/podexecutor/staticpod.go), then writes the static pod (DIR/<pod manifest>) with
  every existing file a flag names mounted (pkg/staticpod/staticpod.go readFiles);
- kube-apiserver is ready only when the files its audit flags name exist and parse (a
  Policy, a kubeconfig), and, on RKE2, are mounted into its pod, as kube-apiserver
  refuses to start otherwise. DIR/run/broken: it fails whatever its flags.
State and a call log are in DIR/run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

SYSTEMCTL = r"""
import glob, json, os, sys
import yaml
FLAVOR = json.loads(%(flavor)r)
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
run = os.path.join(root, "run")
os.makedirs(run, exist_ok=True)
with open(os.path.join(run, "systemctl.log"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
cmdline = os.path.join(run, "cmdline")
binary = FLAVOR["binary"]
command = open(cmdline).read().strip() if os.path.exists(cmdline) else binary + " server"
if args[:2] == ["show", "-p"]:
    if args[-1] != FLAVOR["unit"]:
        sys.exit(0)  # systemd shows an unknown unit's properties empty
    if args[2] == "ExecStart":
        print("{ path=" + binary + " ; argv[]=" + command + " ; ignore_errors=no }")
    elif os.path.exists(os.path.join(run, args[2])):  # Environment, EnvironmentFiles
        print(open(os.path.join(run, args[2])).read().strip())
    sys.exit(0)
args = [a for a in args if a != "--no-block"]  # the stand-in restarts at once either way
if args[0] != "restart" or args[1] != FLAVOR["unit"]:
    print(f"Failed to {args[0]} {args[-1]}: Unit {args[-1]}.service not found.", file=sys.stderr)
    sys.exit(5)
config = os.path.join(root, FLAVOR["config"].lstrip("/"))
drop_ins = [f for f in glob.glob(config + ".d/*") if f.lower().endswith((".yaml", ".yml"))]
files = ([config] if os.path.exists(config) else []) + sorted(drop_ins)
merged = {}
for path in files:
    for key, value in (yaml.safe_load(open(path)) or {}).items():
        if key.endswith("+"):
            key = key[:-1]
            merged[key] = list(merged.get(key) or []) + (value if isinstance(value, list) else [value])
        else:
            merged[key] = value
flags = ["--" + f for f in merged.get("kube-apiserver-arg") or []]
if "--kube-apiserver-arg" in command:
    flags = ["--" + p.split("=", 1)[1] for p in command.split() if p.startswith("--kube-apiserver-arg=")]
mounted = None
if FLAVOR["pod_manifest"]:
    cis = "/etc/rancher/rke2/audit-policy.yaml" if merged.get("profile") else ""
    policy = merged.get("audit-policy-file") or cis
    if policy:
        extra = ["--audit-policy-file=" + policy, "--audit-log-maxage=30", "--audit-log-maxbackup=10",
                 "--audit-log-maxsize=100"]
        if not any(f.startswith("--audit-log-path=") for f in flags):
            extra.append("--audit-log-path=/var/lib/rancher/rke2/server/logs/audit.log")
        flags = extra + flags
        if not os.path.exists(root + policy):  # RKE2 writes a policy that logs nothing
            os.makedirs(os.path.dirname(root + policy), exist_ok=True)
            empty = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n"
            open(root + policy, "w").write(empty)
    values = [f.split("=", 1)[1] for f in flags if "=/" in f]
    mounted = sorted({v for v in values if os.path.isfile(root + v)})
    meta = {"name": "kube-apiserver", "namespace": "kube-system"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "kube-apiserver", "command": ["kube-apiserver"], "args": flags,
                    "volumeMounts": [{"name": f"file{i}", "mountPath": m, "readOnly": True}
                                     for i, m in enumerate(mounted)]}],
                    "volumes": [{"name": f"file{i}", "hostPath": {"path": m, "type": "File"}}
                                for i, m in enumerate(mounted)]}}
    target = root + FLAVOR["pod_manifest"]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    open(target, "w").write(yaml.safe_dump(pod))
def failed(why):
    open(os.path.join(run, "apiserver.state"), "w").write("failed: " + why + "\n")
    sys.exit(0)  # the server keeps running; its apiserver does not come up
open(os.path.join(run, "apiserver.args"), "w").write("".join(f + "\n" for f in flags))
if os.path.exists(os.path.join(run, "broken")):
    failed("the stand-in was told to fail")
named = dict(f[2:].split("=", 1) for f in flags if "=" in f)
for flag, kind in (("audit-policy-file", "Policy"), ("audit-webhook-config-file", "Config")):
    if flag in named:
        path = named[flag]
        if not os.path.exists(root + path):
            failed(f"--{flag}: open {path}: no such file or directory")
        if mounted is not None and path not in mounted:
            failed(f"--{flag}: open {path}: no such file or directory (not mounted into the pod)")
        if (yaml.safe_load(open(root + path)) or {}).get("kind") != kind:
            failed(f"--{flag}: {path} is not a {kind}")
open(os.path.join(run, "apiserver.state"), "w").write("ready\n")
"""

READY = r"""
import json, os, sys
FLAVOR = json.loads(%(flavor)r)
here = os.path.dirname(os.path.abspath(__file__))  # the program's folder (its body lives there)
root = here[: -len(os.path.dirname(FLAVOR["ready_bin"]))]
state = os.path.join(root, "run", "apiserver.state")
if sys.argv[1:] != FLAVOR["ready_args"]:
    print(f"stand-in: unexpected: {sys.argv[1:]}", file=sys.stderr); sys.exit(64)
if os.path.exists(state) and open(state).read().startswith("ready"):
    print("ok"); sys.exit(0)
print("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?",
      file=sys.stderr)
sys.exit(1)
"""


@dataclass(frozen=True)
class Flavor:
    name: str
    unit: str
    binary: str  # what the unit runs
    config: str  # the config file
    ready_bin: str
    ready_args: tuple[str, ...]
    pod_manifest: str  # "" where the server runs kube-apiserver in-process
    drop_in: str  # auditc's drop-in, relative to the server's root

    def json(self) -> str:
        import json

        return json.dumps(
            {
                "unit": self.unit,
                "binary": self.binary,
                "config": self.config,
                "ready_bin": self.ready_bin,
                "ready_args": list(self.ready_args),
                "pod_manifest": self.pod_manifest,
            }
        )


K3S = Flavor(
    "k3s",
    "k3s",
    "/usr/local/bin/k3s",
    "/etc/rancher/k3s/config.yaml",
    "/usr/local/bin/k3s",
    ("kubectl", "get", "--raw=/readyz"),
    "",
    "etc/rancher/k3s/config.yaml.d/zz-auditc.yaml",
)
RKE2 = Flavor(
    "rke2",
    "rke2-server",
    "/usr/local/bin/rke2",
    "/etc/rancher/rke2/config.yaml",
    "/var/lib/rancher/rke2/bin/kubectl",
    ("--kubeconfig", "/etc/rancher/rke2/rke2.yaml", "get", "--raw=/readyz"),
    "/var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml",
    "etc/rancher/rke2/config.yaml.d/zz-auditc.yaml",
)

CONFIG = (
    'write-kubeconfig-mode: "0644"\nkube-apiserver-arg:\n  - "enable-admission-plugins=NodeRestriction"\n'
)


def server(root: Path, flavor: Flavor, config: str = CONFIG) -> Path:
    """A server as a directory: its config file and stand-ins, its apiserver running."""
    from tests import standins

    for relative, body in (("/usr/bin/systemctl", SYSTEMCTL), (flavor.ready_bin, READY)):
        # run by the suite's stand-in server (a fork, not a new interpreter, per call)
        standins.python_program(root / relative.lstrip("/"), body % {"flavor": flavor.json()})
    path = root / flavor.config.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config)
    (root / "run").mkdir(exist_ok=True)
    (root / "run/apiserver.state").write_text("ready\n")
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under the server except the stand-ins' own run state."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "run"
    }


def restarts(root: Path) -> int:
    log = root / "run/systemctl.log"
    return sum(line.startswith("restart ") for line in log.read_text().splitlines()) if log.exists() else 0


def apiserver_flags(root: Path) -> list[str]:
    return (root / "run/apiserver.args").read_text().splitlines()


def ssh_site(
    tmp_path: Path,
    sshd: tuple[int, Path] | None,
    monkeypatch: Any,
    flavor: Flavor,
    example: Path,
    hosts: list[str],
) -> dict[str, Any]:
    """The example's servers as directories behind the suite's sshd (every host name
    reaches it through a ProxyCommand relay), the stand-in cluster for the cluster layer
    (its probe alert arrives when the servers' drop-ins dial Falco); the spec (the example
    with the sshd's port), the nodes' directory and the node options for auditc. Without
    ``sshd``: the nodes read and changed in place (--local), as on a node itself."""
    import os
    import shutil

    import pytest

    from tests import standins
    from tests.tools import ssh_options

    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    nodes = tmp_path / "nodes"
    for host in hosts:
        server(nodes / host, flavor)
    (tmp_path / "cluster").mkdir()
    for name, value in {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLUSTER": str(tmp_path / "cluster"),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_REAL_KUBECTL": real_kubectl,
        # the probe's event reaches Falco when a server's running flags name the webhook
        "FAKE_APISERVER_CONFIGS": os.pathsep.join(str(nodes / h / "run/apiserver.args") for h in hosts),
        "AUDITC_STATE_DIR": str(tmp_path / "state"),
        "AUDITC_POLL_INTERVAL": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    text = example.read_text()
    spec = tmp_path / example.name
    if sshd is None:
        spec.write_text(text)
        return {"spec": spec, "nodes": nodes, "args": ["--local", "--node-root", f"{nodes}/{{host}}"]}
    port, key = sshd
    for host in hosts:
        text = text.replace(f"- host: {host}\n", f"- host: {host}\n          port: {port}\n")
    spec.write_text(text)
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    args = ["--node-root", f"{nodes}/{{host}}", *ssh_options(key)]
    args += ["--ssh-option", f"ProxyCommand={sys.executable} {relay} %p"]
    return {"spec": spec, "nodes": nodes, "args": args}
