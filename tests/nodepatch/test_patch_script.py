"""The node-side patch script: compiler/nodepatch/apiserver-config.patch.sh.j2.

The script is rendered from a context dict (``make_context``; later the compiler's real output)
and run with ``--root`` against a fake node: real kubeadm manifests (tests/data/kube-apiserver-
manifests) and hand-made hard cases (tests/data/kube-apiserver-hard, see its README.md). The
behavioural tests run once per awk implementation found on the machine (mawk, gawk --posix,
busybox awk), through an ``awk`` shim put first on PATH.

The awk programs themselves run under every awk in tests/nodepatch/test_awk.py, so the
whole-script flow tests here run under one default awk (tests/nodepatch/helpers.py) and sh;
test_shells_and_awks_give_the_same_result is the cross-check over every shell and awk.
Readiness is polled every 0.05 s (AUDITC_POLL_INTERVAL) instead of every second.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler.nodepatch import patch_script
from tests.nodepatch.helpers import awk_shim, shellcheck_context
from tests.paths import DATA
from tests.tools import AWKS, require_tool, yaml12

REAL_MANIFESTS = sorted((DATA / "kube-apiserver-manifests").glob("*.yaml"))
HARD_DIR = DATA / "kube-apiserver-hard"
HARD_MANIFESTS = sorted(p for p in HARD_DIR.glob("*.yaml") if not p.name.startswith("refuse-"))
MANIFESTS = REAL_MANIFESTS + HARD_MANIFESTS
DIGEST_KEY = "auditc.dev/config-digest"

# What each refusal case must say on stderr (a fragment of the message).
REFUSALS = {
    "refuse-args.yaml": "args:",
    "refuse-flow-command.yaml": "flow sequence",
    "refuse-mount-conflict.yaml": "already mounts /etc/kubernetes/audit",
    "refuse-multi-doc.yaml": "more than one YAML document",
    "refuse-no-container.yaml": "no kube-apiserver container",
    "refuse-sh-c.yaml": "sh -c",
    "refuse-split-flag.yaml": "--name=value",
    "refuse-tabs.yaml": "tab",
}

CONFIG_FILES = {
    "audit-policy.yaml": (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
        "rules:\n- level: Metadata\n"
    ),
    "audit-webhook.kubeconfig": (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: falco\n  cluster:\n"
        "    server: http://10.0.0.5:30007/k8s-audit\ncontexts:\n- name: default\n  context:\n"
        "    cluster: falco\n    user: ''\ncurrent-context: default\nusers: []\n"
    ),
}

HOSTILE = "x'; touch PWNED; ' $(touch PWNED) `touch PWNED` \\' \\ ; | & < > * ? \" # \u2019\u00e9 ${PWNED:-x}"


# --- the context -----------------------------------------------------------------------------


def digest(files: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def make_context(
    *,
    config_dir: str = "/etc/kubernetes/audit",
    log_dir: str = "/var/log/kubernetes/audit",
    files: Mapping[str, str] = CONFIG_FILES,
    **overrides: Any,
) -> dict[str, Any]:
    """The template context, as the compiler would build it for a webhook + log backend."""
    flags = [
        ("audit-policy-file", f"{config_dir}/audit-policy.yaml"),
        ("audit-log-path", f"{log_dir}/audit.log"),
        ("audit-log-maxage", "30"),
        ("audit-log-maxbackup", "10"),
        ("audit-log-maxsize", "100"),
        ("audit-webhook-config-file", f"{config_dir}/audit-webhook.kubeconfig"),
        ("audit-webhook-batch-max-wait", "5s"),
        ("audit-webhook-truncate-enabled", "true"),
    ]
    context: dict[str, Any] = {
        "site": "lab-eu1",
        "compiler_version": "0.1.0",
        "manifest_path": "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "config_dir": config_dir,
        "config_files": sorted(files),
        "config_digest": digest(files),
        "backup_dir": "/var/lib/auditc/backup",
        "flags": [{"name": name, "value": value} for name, value in flags],
        "owned_prefixes": ["audit-"],
        "list_items": [],
        "volumes": [
            volume("auditc-config", config_dir, read_only=True),
            volume("auditc-log", log_dir, read_only=False),
        ],
        "owned_volume_prefix": "auditc-",
        "wait_timeout": 300,
    }
    context.update(overrides)
    return context


def volume(name: str, path: str, *, read_only: bool, kind: str = "DirectoryOrCreate") -> dict[str, Any]:
    return {"name": name, "host_path": path, "mount_path": path, "read_only": read_only, "type": kind}


def render(context: Mapping[str, Any]) -> str:
    return patch_script(dict(context)).decode()


# --- a fake node -------------------------------------------------------------------------------


@dataclass
class Node:
    """A --root directory for the script, and the bundle dir holding the script + config files."""

    tmp: Path
    awk_dir: Path | None
    shell: tuple[str, ...] = ("sh",)
    context: dict[str, Any] = field(default_factory=make_context)

    @property
    def root(self) -> Path:
        return self.tmp / "root"

    @property
    def script(self) -> Path:
        return self.tmp / "bundle" / "apiserver-config.patch.sh"

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    @property
    def manifest(self) -> Path:
        return self.path(self.context["manifest_path"])

    @property
    def config_dir(self) -> Path:
        return self.path(self.context["config_dir"])

    @property
    def backup_dir(self) -> Path:
        return self.path(self.context["backup_dir"])

    def install(self, context: dict[str, Any], files: Mapping[str, str] = CONFIG_FILES) -> None:
        """Render the script for ``context`` into a fresh bundle directory."""
        self.context = context
        bundle = self.script.parent
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir(parents=True)
        self.script.write_text(render(context))
        for name, text in files.items():
            (bundle / name).write_text(text)

    def put_manifest(self, content: bytes, mode: int = 0o600) -> None:
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        self.manifest.write_bytes(content)
        self.manifest.chmod(mode)

    def run(self, *args: str, root: bool = True) -> subprocess.CompletedProcess[str]:
        path = os.environ["PATH"]
        if self.awk_dir is not None:
            path = f"{self.awk_dir}{os.pathsep}{path}"
        command = [*self.shell, str(self.script), *(["--root", str(self.root)] if root else []), *args]
        return subprocess.run(
            command,
            cwd=self.tmp,
            env={**os.environ, "PATH": path, "AUDITC_POLL_INTERVAL": POLL_INTERVAL},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


POLL_INTERVAL = "0.05"  # seconds between readiness checks: the tests' setting


# --- reading manifests -------------------------------------------------------------------------


def real(version: str) -> bytes:
    """A real kubeadm manifest, e.g. ``real("1.30.14")``."""
    return next((DATA / "kube-apiserver-manifests").glob(f"{version}-*.yaml")).read_bytes()


def hard(name: str) -> bytes:
    return (HARD_DIR / f"{name}.yaml").read_bytes()


def load(text: str) -> Any:
    return yaml12.load(text)


def flag_name(arg: str) -> str:
    return arg[2:].split("=", 1)[0] if arg.startswith("--") else ""


def apiserver(doc: Any) -> Any:
    found = [
        c
        for c in doc["spec"]["containers"]
        if c.get("command") and str(c["command"][0]).rsplit("/", 1)[-1] == "kube-apiserver"
    ]
    assert len(found) == 1
    return found[0]


def is_owned_flag(arg: str, context: Mapping[str, Any]) -> bool:
    name = flag_name(arg)
    return bool(name) and (
        any(name.startswith(p) for p in context["owned_prefixes"])
        or name in {f["name"] for f in context["flags"]}
        or name in {i["name"] for i in context["list_items"]}
    )


def strip_owned(doc: Any, context: Mapping[str, Any]) -> Any:
    """``doc`` without everything the script owns: what must be the same before and after."""
    doc = copy.deepcopy(doc)
    prefix = context["owned_volume_prefix"]
    container = apiserver(doc)
    container["command"] = [a for a in container["command"] if not is_owned_flag(str(a), context)]
    for parent, key in ((container, "volumeMounts"), (doc["spec"], "volumes")):
        kept = [v for v in parent.get(key) or [] if not str(v.get("name", "")).startswith(prefix)]
        parent.pop(key, None)
        if kept:
            parent[key] = kept
    annotations = doc["metadata"].pop("annotations", None) or {}
    annotations.pop(DIGEST_KEY, None)
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


def last_line(node: Any) -> int:
    """Last (0-based) line of a round-trip node, from the positions of its keys and items."""
    lines = [node.lc.line]
    if isinstance(node, dict):
        for key, value in node.items():
            lines += [node.lc.key(key)[0], node.lc.value(key)[0]]
            if hasattr(value, "lc"):
                lines.append(last_line(value))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            lines.append(node.lc.item(i)[0])
            if hasattr(value, "lc"):
                lines.append(last_line(value))
    return max(lines)


def owned_lines(text: str, context: Mapping[str, Any]) -> set[int]:
    """0-based numbers of the original lines the script may change or drop."""
    doc = YAML().load(text)
    prefix = context["owned_volume_prefix"]
    lines: set[int] = set()
    container = apiserver(doc)
    command = container["command"]
    lines |= {command.lc.item(i)[0] for i, a in enumerate(command) if i and is_owned_flag(str(a), context)}
    parents = ((container, "volumeMounts"), (doc["spec"], "volumes"), (doc["metadata"], "annotations"))
    for parent, key in parents:
        seq = parent.get(key)
        if seq is not None and len(seq) == 0:  # "key: []" / "key: {}" becomes a block
            lines.add(parent.lc.key(key)[0])
    for seq in (container.get("volumeMounts") or [], doc["spec"].get("volumes") or []):
        for i, item in enumerate(seq):
            if str(item.get("name", "")).startswith(prefix):
                lines |= set(range(seq.lc.item(i)[0], last_line(item) + 1))
    annotations = doc["metadata"].get("annotations") or {}
    if DIGEST_KEY in annotations:
        lines.add(annotations.lc.key(DIGEST_KEY)[0])
    return lines


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    rest = iter(haystack)
    return all(any(line == candidate for candidate in rest) for line in needles)


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# --- checks ------------------------------------------------------------------------------------


def check_patched(original: str, patched: str, context: Mapping[str, Any]) -> None:
    """Everything the brief asks of a patched manifest."""
    before, after = load(original), load(patched)
    container = apiserver(after)
    args = [str(a) for a in container["command"][1:]]
    wanted = {f["name"]: f["value"] for f in context["flags"]}
    for name, value in wanted.items():
        assert [a for a in args if flag_name(a) == name] == [f"--{name}={value}"], name
    stale = [
        a
        for a in args
        if is_owned_flag(a, context)
        and flag_name(a) not in wanted
        and flag_name(a) not in {i["name"] for i in context["list_items"]}
    ]
    assert stale == []

    prefix = context["owned_volume_prefix"]
    mounts = container.get("volumeMounts") or []
    volumes = after["spec"].get("volumes") or []
    for items, key in ((mounts, "name"), (mounts, "mountPath"), (volumes, "name")):
        values = [m[key] for m in items]
        assert len(values) == len(set(values)), f"duplicate {key}: {values}"
    wanted_names = {v["name"] for v in context["volumes"]}
    assert {m["name"] for m in mounts if m["name"].startswith(prefix)} == wanted_names
    assert {v["name"] for v in volumes if v["name"].startswith(prefix)} == wanted_names
    mount_named = {m["name"]: m for m in mounts}
    volume_named = {v["name"]: v for v in volumes}
    for v in context["volumes"]:
        assert mount_named[v["name"]]["mountPath"] == v["mount_path"]
        assert bool(mount_named[v["name"]].get("readOnly", False)) == v["read_only"]
        assert volume_named[v["name"]]["hostPath"] == {"path": v["host_path"], "type": v["type"]}

    owned_mounts = [m for m in mounts if m["name"] in wanted_names]
    for name in ("audit-policy-file", "audit-webhook-config-file", "audit-log-path"):
        if name in wanted:
            covering = [m for m in owned_mounts if within(wanted[name], m["mountPath"])]
            assert covering, f"--{name}={wanted[name]} is not on an auditc mount"
            if name == "audit-log-path":
                assert not any(m.get("readOnly") for m in covering), "the log dir must be writable"

    assert after["metadata"]["annotations"][DIGEST_KEY] == context["config_digest"]
    assert strip_owned(before, context) == strip_owned(after, context)
    owned = owned_lines(original, context)
    kept = [line for i, line in enumerate(original.splitlines()) if i not in owned]
    assert is_subsequence(kept, patched.splitlines()), "a line the script does not own was changed"
    assert original.endswith("\n") == patched.endswith("\n")


@dataclass(frozen=True)
class FileState:
    mode: int
    mtime_ns: int
    content: bytes | None


def snapshot(root: Path) -> dict[str, FileState]:
    """Mode, mtime and content of everything under ``root``."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        state[str(path.relative_to(root))] = FileState(info.st_mode, info.st_mtime_ns, content)
    return state


def assert_applied(
    node: Node, original: bytes, result: subprocess.CompletedProcess[str], replaced: bytes | None = None
) -> None:
    """The run patched ``original`` (by way of ``replaced``, the manifest before this run, if given)."""
    assert result.returncode == 0, result.stderr
    check_patched(original.decode(), node.manifest.read_text(), node.context)
    assert [p.name for p in node.manifest.parent.iterdir()] == [node.manifest.name], "stray files"
    assert stat.S_IMODE(node.manifest.stat().st_mode) == 0o600, "the manifest mode changed"
    for name in node.context["config_files"]:
        installed = node.config_dir / name
        assert installed.read_bytes() == (node.script.parent / name).read_bytes()
        assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    assert stat.S_IMODE(node.config_dir.stat().st_mode) == 0o755
    backups = [
        p
        for p in node.backup_dir.glob(f"*/{node.manifest.name}")
        if p.read_bytes() == (original if replaced is None else replaced)
    ]
    assert backups, "no backup of the replaced manifest"
    assert not backups[0].resolve().is_relative_to(node.manifest.parent.resolve())


def assert_noop(node: Node) -> None:
    """A second run changes nothing: same bytes and mtimes everywhere, exit 0."""
    before = snapshot(node.root)
    result = node.run("--no-wait")
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stdout
    assert snapshot(node.root) == before


def assert_refused(node: Node, original: bytes, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused" in result.stderr
    assert node.manifest.read_bytes() == original
    assert not node.config_dir.exists()
    assert not node.backup_dir.exists()


# --- the rendered script -----------------------------------------------------------------------


def hostile_context() -> dict[str, Any]:
    context = make_context(
        config_dir=f"/etc/kubernetes/audit {HOSTILE}",
        log_dir="/var/log/kube audit;touch PWNED",
        site=HOSTILE,
        compiler_version=HOSTILE,
        backup_dir=f"/var/lib/auditc/{HOSTILE}",
    )
    context["flags"].append({"name": "audit-log-format", "value": HOSTILE})
    return context


# every context a shellcheck test names
SHELLCHECK_CONTEXTS = {
    "normal": make_context(),
    "hostile": hostile_context(),
    "list-items": make_context(list_items=[{"name": "feature-gates", "item": "DynamicAuditing=true"}]),
    "empty-lists": make_context(flags=[], volumes=[], config_files=[], owned_prefixes=[]),
}


@pytest.mark.parametrize("case", sorted(SHELLCHECK_CONTEXTS))
def test_shellcheck_clean(case: str, tmp_path: Path) -> None:
    shellcheck_context(tmp_path, SHELLCHECK_CONTEXTS[case])


def test_help_and_usage_errors(tmp_path: Path) -> None:
    node = Node(tmp_path, None)
    node.install(make_context())
    result = node.run("--help", root=False)
    assert result.returncode == 0
    assert "Exit status" in result.stdout
    assert "lab-eu1" in result.stdout
    for args in (["--bogus"], ["--wait-timeout", "soon"], ["--root"], ["--root", str(tmp_path / "nope")]):
        result = node.run(*args, root=False)
        assert result.returncode == 2, args
        assert result.stderr, args


# --- patching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_patch_and_idempotent(node: Node, manifest: Path) -> None:
    original = manifest.read_bytes()
    node.put_manifest(original)
    assert_applied(node, original, node.run("--no-wait"))
    assert stat.S_IMODE(node.path("/var/log/kubernetes/audit").stat().st_mode) == 0o700
    assert node.awk_dir is not None and (node.awk_dir / "used").exists(), "the awk shim was not used"
    assert_noop(node)


@pytest.mark.parametrize("manifest", sorted(REFUSALS), ids=str)
def test_refuses_unsafe_manifests(node: Node, manifest: str) -> None:
    original = hard(manifest.removesuffix(".yaml"))
    node.put_manifest(original)
    result = node.run("--no-wait")
    assert_refused(node, original, result)
    assert REFUSALS[manifest] in result.stderr


def test_every_refusal_case_is_listed() -> None:
    assert sorted(p.name for p in HARD_DIR.glob("refuse-*.yaml")) == sorted(REFUSALS)


def test_dry_run_changes_nothing(node: Node) -> None:
    original = real("1.30.14")
    node.put_manifest(original)
    before = snapshot(node.root)
    result = node.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert snapshot(node.root) == before
    assert "+    - --audit-policy-file=/etc/kubernetes/audit/audit-policy.yaml" in result.stdout
    assert f"+    {DIGEST_KEY}: " in result.stdout
    for name in CONFIG_FILES:
        assert f"would install {node.config_dir / name}" in result.stdout


def test_spec_change_removes_stale_flag_and_volume(node: Node) -> None:
    original = real("1.22.3")
    node.put_manifest(original)
    assert_applied(node, original, node.run("--no-wait"))

    changed = make_context()
    changed["flags"] = [f for f in changed["flags"] if f["name"] != "audit-webhook-batch-max-wait"]
    changed["volumes"][1]["name"] = "auditc-logs"
    first = node.manifest.read_bytes()
    node.install(changed)
    assert_applied(node, original, node.run("--no-wait"), replaced=first)
    patched = node.manifest.read_text()
    assert "audit-webhook-batch-max-wait" not in patched
    assert "name: auditc-log\n" not in patched
    assert_noop(node)


def test_config_change_rewrites_only_changed_files(node: Node) -> None:
    original = real("1.30.14")
    node.put_manifest(original)
    node.run("--no-wait")
    first = node.manifest.read_text()
    webhook = node.config_dir / "audit-webhook.kubeconfig"
    webhook_state = webhook.stat().st_mtime_ns, webhook.stat().st_ino

    files = {**CONFIG_FILES, "audit-policy.yaml": CONFIG_FILES["audit-policy.yaml"] + "- level: None\n"}
    node.install(make_context(files=files), files)
    assert_applied(node, original, node.run("--no-wait"), replaced=first.encode())
    assert (webhook.stat().st_mtime_ns, webhook.stat().st_ino) == webhook_state
    changed = [
        (a, b)
        for a, b in zip(first.splitlines(), node.manifest.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and DIGEST_KEY in changed[0][1], "only the digest annotation changes"


def test_list_items_are_merged(node: Node) -> None:
    original = hard("unsorted-flags")
    node.put_manifest(original)
    node.install(
        make_context(
            list_items=[
                {"name": "feature-gates", "item": "DynamicAuditing=true"},
                {"name": "runtime-config", "item": "auditregistration.k8s.io/v1alpha1=true"},
            ]
        )
    )
    assert_applied(node, original, node.run("--no-wait"))
    args = apiserver(load(node.manifest.read_text()))["command"]
    assert "--feature-gates=EphemeralContainers=true,DynamicAuditing=true" in args
    assert "--runtime-config=auditregistration.k8s.io/v1alpha1=true" in args
    assert args.index("--feature-gates=EphemeralContainers=true,DynamicAuditing=true") == 4, "moved"
    assert_noop(node)


def test_manifest_option(node: Node) -> None:
    original = real("1.19.0")
    elsewhere = node.path("/srv/kube-apiserver.yaml")
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(original)
    assert node.run("--no-wait", "--manifest", "/srv/kube-apiserver.yaml").returncode == 0
    check_patched(original.decode(), elsewhere.read_text(), node.context)
    assert node.run("--manifest", "srv/kube-apiserver.yaml").returncode == 2


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("backup-in-manifests-dir", "backup_dir"),
        ("config-file-missing", "missing next to the script"),
        ("file-volume-missing", "type File"),
        ("manifest-symlink", "symbolic link"),
        ("manifest-missing", "does not exist"),
        ("crlf-line-endings", "CRLF"),
        ("same-mount-path-twice", "same mount path"),
    ],
)
def test_refuses_unsafe_setups(node: Node, setup: str, message: str) -> None:
    original = real("1.30.14")
    node.put_manifest(original)
    if setup == "backup-in-manifests-dir":
        node.install(make_context(backup_dir="/etc/kubernetes/manifests/backup"))
    elif setup == "config-file-missing":
        (node.script.parent / "audit-policy.yaml").unlink()
    elif setup == "file-volume-missing":
        context = make_context()
        context["volumes"].append(volume("auditc-ca", "/etc/falco/ca.pem", read_only=True, kind="File"))
        node.install(context)
    elif setup == "manifest-symlink":
        target = node.path("/srv/kube-apiserver.yaml")
        target.parent.mkdir(parents=True)
        node.manifest.rename(target)
        node.manifest.symlink_to(target)
    elif setup == "manifest-missing":
        node.manifest.unlink()
    elif setup == "crlf-line-endings":
        node.put_manifest(original.replace(b"\n", b"\r\n"))
    elif setup == "same-mount-path-twice":
        context = make_context()
        context["volumes"].append(volume("auditc-again", context["config_dir"], read_only=True))
        node.install(context)
    before = snapshot(node.root)
    result = node.run("--no-wait")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert snapshot(node.root) == before


# --- waiting and rolling back ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def manifest_on_port(port: int) -> bytes:
    text = real("1.30.14").decode()
    assert "--secure-port=6443\n" in text
    return text.replace("--secure-port=6443\n", f"--secure-port={port}\n").encode()


def test_rollback_when_not_ready(node: Node) -> None:
    original = manifest_on_port(free_port())  # nothing listens there
    node.put_manifest(original)
    result = node.run("--wait-timeout", "1")
    assert result.returncode == 1, result.stderr
    assert "rolling back" in result.stderr
    assert node.manifest.read_bytes() == original
    assert stat.S_IMODE(node.manifest.stat().st_mode) == 0o600
    assert [p.name for p in node.manifest.parent.iterdir()] == [node.manifest.name]
    assert list(node.config_dir.iterdir()) == [], "config files installed by the failed run remain"
    assert [p.read_bytes() for p in node.backup_dir.glob("*/kube-apiserver.yaml")] == [original]


def test_waits_until_ready(node: Node, readyz_server: int) -> None:
    original = manifest_on_port(readyz_server)
    node.put_manifest(original)
    result = node.run("--wait-timeout", "20")
    assert_applied(node, original, result)
    assert "kube-apiserver is ready" in result.stdout


@pytest.mark.parametrize("listening", [True, False], ids=["healthy", "nothing-listens"])
def test_check_health_reads_the_port_and_changes_nothing(
    node: Node, readyz_server: int, listening: bool
) -> None:
    """--check-health (what apply asks before touching a host): one /readyz at the port
    and address the current manifest names; exit 0 or 1, and no file changes either way."""
    original = manifest_on_port(readyz_server if listening else free_port())
    node.put_manifest(original)
    before = snapshot(node.root)
    result = node.run("--check-health")
    assert result.returncode == (0 if listening else 1), result.stderr
    assert ("kube-apiserver is healthy" in result.stdout) is listening
    assert ("kube-apiserver is not healthy" in result.stderr) is not listening
    assert snapshot(node.root) == before


def test_a_dropped_session_leaves_the_manifest_patched_not_half_written(node: Node) -> None:
    """SIGHUP (the ssh session apply runs it in went away) while waiting for readiness: the
    trap ends the run with the manifest and config files in place, the backup beside."""
    original = manifest_on_port(free_port())  # never ready: the script keeps waiting
    node.put_manifest(original)
    command = [*node.shell, str(node.script), "--root", str(node.root), "--wait-timeout", "60"]
    env = {**os.environ, "AUDITC_POLL_INTERVAL": POLL_INTERVAL}
    if node.awk_dir is not None:
        env["PATH"] = f"{node.awk_dir}{os.pathsep}{env['PATH']}"
    process = subprocess.Popen(command, cwd=node.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while node.manifest.read_bytes() == original:  # until the new manifest is in place
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 129, err
    assert b"stays patched" in err
    assert node.manifest.read_bytes() != original
    assert sorted(p.name for p in node.config_dir.iterdir()) == sorted(CONFIG_FILES)
    assert [p.read_bytes() for p in node.backup_dir.glob("*/kube-apiserver.yaml")] == [original]
    assert [p.name for p in node.manifest.parent.iterdir()] == [node.manifest.name]  # no temp file


def test_old_apiserver_does_not_count_as_ready(tmp_path: Path, readyz_server: int) -> None:
    """Without --root the script waits for a NEW kube-apiserver process with the wanted flags.

    The test removes the one line that turns that check off under --root, and plays the
    apiserver with a script named kube-apiserver (its /proc/PID/comm is the script name).
    """
    node = Node(tmp_path, None)
    node.install(make_context(log_dir=f"/var/log/{tmp_path.name}"))  # flags unique to this test
    seam = '[ -z "$ROOT_GIVEN" ] || CHECK_PROCESS=0\n'
    assert node.script.read_text().count(seam) == 1
    node.script.write_text(node.script.read_text().replace(seam, ""))
    fake = tmp_path / "kube-apiserver"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    flags = [f"--{f['name']}={f['value']}" for f in node.context["flags"]]
    original = manifest_on_port(readyz_server)

    def apiserver_process(delay: float) -> subprocess.Popen[bytes]:
        command = f"sleep {delay}; exec {shlex.join([str(fake), *flags])}"
        return subprocess.Popen(["sh", "-c", command], start_new_session=True)

    processes = [apiserver_process(0)]  # already running before the change: the old apiserver
    try:
        time.sleep(0.2)
        node.put_manifest(original)
        result = node.run("--wait-timeout", "1")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "no kube-apiserver process was visible" not in result.stderr
        assert node.manifest.read_bytes() == original

        processes.append(apiserver_process(0.3))  # the kubelet starts a new one after the change
        result = node.run("--wait-timeout", "20")
        assert_applied(node, original, result)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


# --- hostile values ----------------------------------------------------------------------------


def test_hostile_values_are_data(node: Node) -> None:
    files = {**CONFIG_FILES, f"extra {HOSTILE}.yaml": "x: 1\n"}
    context = hostile_context()
    context["config_files"] = sorted(files)
    context["config_digest"] = digest(files)
    node.install(context, files)
    original = real("1.30.14")
    node.put_manifest(original)
    assert_applied(node, original, node.run("--no-wait"))
    assert_noop(node)
    assert not list(node.tmp.rglob("PWNED"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"flags": [{"name": "audit-log-path", "value": "x\n$(touch PWNED)"}]}, "control character"),
        ({"flags": [{"name": "audit-x;touch PWNED", "value": "1"}]}, "flag name"),
        ({"config_dir": "$(touch PWNED)"}, "absolute"),
        ({"config_dir": "/etc/kubernetes/audit/../../../tmp/`touch PWNED`"}, ".."),
        ({"volumes": [volume("auditc-$(touch PWNED)", "/x", read_only=True)]}, "volume name"),
        ({"wait_timeout": "1; touch PWNED"}, "wait_timeout"),
    ],
    ids=["newline-in-value", "flag-name", "relative-dir", "dotdot-dir", "volume-name", "timeout"],
)
def test_hostile_values_are_refused(node: Node, overrides: dict[str, Any], message: str) -> None:
    node.install(make_context(**overrides))
    original = real("1.30.14")
    node.put_manifest(original)
    result = node.run("--no-wait")
    assert_refused(node, original, result)
    assert message in result.stderr
    assert not list(node.tmp.rglob("PWNED"))


# --- other shells ------------------------------------------------------------------------------

SHELLS = {"dash": ("dash",), "bash-posix": ("bash", "--posix"), "busybox-sh": ("busybox", "sh")}


@pytest.fixture(scope="module")
def reference_result(tmp_path_factory: pytest.TempPathFactory, awk_dir: Path) -> bytes:
    """four-space-comments patched under sh and the default awk."""
    node = Node(tmp_path_factory.mktemp("reference"), awk_dir)
    node.install(make_context())
    original = hard("four-space-comments")
    node.put_manifest(original)
    assert_applied(node, original, node.run("--no-wait"))
    return node.manifest.read_bytes()


@pytest.mark.parametrize("awk", sorted(AWKS))
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_shells_and_awks_give_the_same_result(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, reference_result: bytes, shell: str, awk: str
) -> None:
    command = SHELLS[shell]
    require_tool(command[0])
    node = Node(tmp_path, awk_shim(tmp_path_factory, awk), command)
    node.install(make_context())
    original = hard("four-space-comments")
    node.put_manifest(original)
    assert_applied(node, original, node.run("--no-wait"))
    assert_noop(node)
    assert node.manifest.read_bytes() == reference_result
