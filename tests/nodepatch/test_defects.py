"""The whole patch script on the manifests that showed its defects (found running it over
real manifests under dash, bash and busybox sh with mawk, gawk --posix and busybox awk): each
test failed before the fix. The awk-level cases are in tests/data/nodepatch (run under every
awk by tests/nodepatch/test_awk.py); here the script's flow around them: exit codes,
messages, what is left on disk, and that a second run changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from compiler.nodepatch.flags import apiserver_flags, apiserver_mounts
from tests.nodepatch.test_patch_script import (
    POLL_INTERVAL,
    Node,
    apiserver,
    assert_noop,
    assert_refused,
    load,
    make_context,
    snapshot,
)
from tests.paths import DATA, ROOT

CASES = DATA / "nodepatch"


def case_input(name: str) -> bytes:
    return (CASES / name / "input").read_bytes()


def wanted_flags(node: Node) -> dict[str, str]:
    return {f["name"]: f["value"] for f in node.context["flags"]}


def test_a_split_value_starting_with_a_dash_is_removed_too(node: Node) -> None:
    """`--audit-log-path` then "-": left behind, "-" would be a positional argument."""
    node.put_manifest(case_input("split-dash-value"))
    result = node.run("--no-wait")
    assert result.returncode == 0, result.stderr
    command = [str(a) for a in apiserver(load(node.manifest.read_text()))["command"]]
    assert not [a for a in command if not a.startswith("-") or a in ("-", "-1")][1:], command
    flags = apiserver_flags(node.manifest.read_bytes())
    assert flags is not None
    assert {n: v for n, v in flags.items() if n.startswith("audit-")} == wanted_flags(node)
    assert_noop(node)


def test_every_feature_gates_occurrence_is_merged(node: Node) -> None:
    """A later --feature-gates=DynamicAuditing=false no longer overrides the merged one."""
    node.install(make_context(list_items=[{"name": "feature-gates", "item": "DynamicAuditing=true"}]))
    node.put_manifest(case_input("feature-gates-twice"))
    assert node.run("--no-wait").returncode == 0
    command = [str(a) for a in apiserver(load(node.manifest.read_text()))["command"]]
    assert [a for a in command if a.startswith("--feature-gates")] == [
        "--feature-gates=EphemeralContainers=true,DynamicAuditing=true"
    ]
    assert_noop(node)


def test_mount_paths_are_compared_normalized(node: Node) -> None:
    """/var/log//kubernetes/audit/ is auditc's /var/log/kubernetes/audit: refused, not doubled."""
    original = case_input("mount-path-unnormalized")
    node.put_manifest(original)
    result = node.run("--no-wait")
    assert_refused(node, original, result)
    assert "already mounts /var/log/kubernetes/audit" in result.stderr


def test_the_same_mount_path_twice_in_the_context_is_refused_normalized(node: Node) -> None:
    context = make_context()
    context["volumes"][1]["mount_path"] = "/etc/kubernetes//audit/"
    node.install(context)
    node.put_manifest(case_input("real-1.30"))
    before = snapshot(node.root)
    result = node.run("--no-wait")
    assert result.returncode == 2
    assert "same mount path" in result.stderr
    assert snapshot(node.root) == before


def test_static_pod_mode_of_the_bpm_layout_script(tmp_path: Path, awk_dir: Path) -> None:
    """The script auditc renders for a bpm site (output/tkgi-prod), run with --mode
    static-pod: its default is the static pod manifest, it mounts the config dir, and a
    second run is a no-op (it added empty volume keys and a blank line every run)."""
    node = Node(tmp_path, awk_dir)
    bundle = node.script.parent
    shutil.copytree(ROOT / "output" / "tkgi-prod" / "node", bundle)
    manifest = node.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes((ROOT / "tests" / "data" / "kube-apiserver-hard" / "no-volumes.yaml").read_bytes())
    result = node.run("--mode", "static-pod", "--no-wait")
    assert result.returncode == 0, result.stderr
    patched = manifest.read_bytes()
    mounts = {m.mount_path: m for m in apiserver_mounts(patched)}
    config = mounts["/var/vcap/jobs/kube-apiserver/config"]
    assert config.read_only and config.host_path == "/var/vcap/jobs/kube-apiserver/config"
    assert b"volumeMounts: \n" not in patched and b"\n\n" not in patched
    before = snapshot(node.root)
    again = node.run("--mode", "static-pod", "--no-wait")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr
    assert snapshot(node.root) == before


def failing_mv(tmp: Path, target: Path) -> str:
    """A PATH whose mv fails for ``target`` only, as for an immutable (chattr +i) file."""
    bin_dir = tmp / "mv-bin"
    bin_dir.mkdir()
    real = shutil.which("mv")
    (bin_dir / "mv").write_text(
        f'#!/bin/sh\nfor a; do last=$a; done\n[ "$last" = \'{target}\' ] && exit 1\nexec {real} "$@"\n'
    )
    (bin_dir / "mv").chmod(0o755)
    return str(bin_dir)


def test_a_manifest_that_cannot_be_replaced_is_refused_cleanly(node: Node) -> None:
    original = case_input("real-1.30")
    node.put_manifest(original)
    path = os.pathsep.join([failing_mv(node.tmp, node.manifest), str(node.awk_dir), os.environ["PATH"]])
    result = subprocess.run(
        ["sh", str(node.script), "--root", str(node.root), "--no-wait"],
        env={**os.environ, "PATH": path, "AUDITC_POLL_INTERVAL": POLL_INTERVAL},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_refused(node, original, result)
    assert "cannot replace" in result.stderr and "nothing was changed" in result.stderr
    assert "RESTORE FAILED" not in result.stderr
    assert [p.name for p in node.manifest.parent.iterdir()] == [node.manifest.name]
    assert sorted(p.name for p in node.root.rglob("*")) == sorted(
        ["etc", "kubernetes", "manifests", "kube-apiserver.yaml"]
    ), "a directory the run created was left behind"


def test_a_hand_made_audit_mount_is_adopted(node: Node) -> None:
    """kubernetes.io's audit-log hostPath at /var/log/kubernetes/audit/: used, not doubled."""
    node.put_manifest(case_input("adopt-audit-mount"))
    result = node.run("--no-wait")
    assert result.returncode == 0, result.stderr
    mounts = apiserver_mounts(node.manifest.read_bytes())
    paths = [m.mount_path for m in mounts]
    assert len(paths) == len(set(paths)), paths
    assert "auditc-log" not in {m.name for m in mounts}
    assert {m.name for m in mounts if m.mount_path == "/var/log/kubernetes/audit"} == {"audit-log"}
    assert_noop(node)


def test_a_byte_order_mark_is_accepted_and_kept(node: Node) -> None:
    node.put_manifest(case_input("bom"))
    result = node.run("--no-wait")
    assert result.returncode == 0, result.stderr
    assert node.manifest.read_bytes().startswith(b"\xef\xbb\xbf")
    assert node.manifest.read_bytes().count(b"\xef\xbb\xbf") == 1
    assert_noop(node)


def test_a_json_manifest_is_refused_by_name(node: Node) -> None:
    original = case_input("json")
    node.put_manifest(original)
    result = node.run("--no-wait")
    assert_refused(node, original, result)
    assert "JSON manifests are not supported; convert the manifest to YAML" in result.stderr
    assert "kind: Pod not found" not in result.stderr


def test_the_flow_command_hint_leads_to_a_patch(node: Node) -> None:
    """Flow command plus args: the hint names both, and doing what it says works."""
    original = case_input("flow-command-args")
    node.put_manifest(original)
    result = node.run("--no-wait")
    assert_refused(node, original, result)
    assert "one block list under command: (and remove args:)" in result.stderr
    text = original.decode()
    start = text.index("  - command:")
    end = text.index("    image:")
    block = (
        "  - command:\n    - kube-apiserver\n    - --advertise-address=10.20.0.22\n"
        "    - --etcd-servers=https://127.0.0.1:2379\n    - --secure-port=6443\n"
    )
    node.put_manifest((text[:start] + block + text[end:]).encode())
    result = node.run("--no-wait")
    assert result.returncode == 0, result.stderr


def test_a_bpm_yml_that_cannot_be_replaced_is_refused_cleanly(tmp_path: Path, awk_dir: Path) -> None:
    """The same in bpm mode: nothing restarted, nothing left behind."""
    from tests.nodepatch.test_patch_script_bpm import fixture, new_master

    master = new_master(tmp_path, awk_dir)
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    before = {str(p.relative_to(master.root)) for p in master.root.rglob("*")}
    path = os.pathsep.join(
        [failing_mv(tmp_path, master.bpm), str(awk_dir), str(master.bin_dir), os.environ["PATH"]]
    )
    result = master.run_bpm("--no-wait", path=path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot replace" in result.stderr and "RESTORE FAILED" not in result.stderr
    assert master.bpm.read_bytes() == original
    assert {str(p.relative_to(master.root)) for p in master.root.rglob("*")} == before
    assert master.monit_calls() == []
