"""Live diffs: hand-written API-server-shaped objects, node files produced by the real patch
script, and the ssh transport against a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.api import compile_site, live_diff
from compiler.cli import app
from compiler.live.compare import strip_ignored
from compiler.live.snapshot import Snapshot, load, save
from compiler.transport import NodeAccess
from tests.paths import DATA
from tests.sites import write_spec, write_tree
from tests.tools import ssh_options

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
CONFIG = "/etc/kubernetes/audit"
REAL_MANIFEST = DATA / "kube-apiserver-manifests/1.30.14-kubeadm.yaml"

# What a Kubernetes 1.30 API server returns for the objects the site renders: written by
# hand from the API reference (server-set metadata, defaulted fields, status), not
# captured from auditc's own output.
NAMESPACE_1_30: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1","kind":"Namespace"}'
        },
        "creationTimestamp": "2026-11-20T09:14:02Z",
        "labels": {
            "app.kubernetes.io/managed-by": "auditc",
            "env": "prod",
            "kubernetes.io/metadata.name": "falco",
        },
        "managedFields": [
            {
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:env": {}}}},
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "time": "2026-11-20T09:14:02Z",
            }
        ],
        "name": "falco",
        "resourceVersion": "48213",
        "uid": "5b6f7f0e-3c1a-4a59-9d8e-2f4c1b7a9e10",
    },
    "spec": {"finalizers": ["kubernetes"]},
    "status": {"phase": "Active"},
}
SERVICE_ACCOUNT_1_30: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": {
        "creationTimestamp": "2026-11-20T09:14:03Z",
        "labels": {"app.kubernetes.io/managed-by": "auditc", "env": "prod"},
        "name": "falco",
        "namespace": "falco",
        "resourceVersion": "48217",
        "uid": "0d2c6a4e-8b7f-4f3e-a1c2-6e5d4c3b2a19",
    },
}


def _spec(tmp: Path, hosts: list[dict[str, Any]] | None = None) -> Path:
    kubeadm = {"controlPlanes": hosts or [{"host": "10.0.0.1"}]}
    return write_spec(tmp, {"platform": {"kubeadm": kubeadm}}, metadata={"labels": {"env": "prod"}})


def _applied_node(tmp: Path, spec: Path, root: Path) -> None:
    """A node as the real patch script leaves it: manifest patched, files installed."""
    out = write_tree(compile_site(spec), tmp / "rendered")
    (root / MANIFEST.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST.lstrip("/")).write_bytes(REAL_MANIFEST.read_bytes())
    script = out / "node/apiserver-config.patch.sh"
    subprocess.run(["sh", str(script), "--root", str(root), "--no-wait"], check=True, capture_output=True)


def _snapshot(tmp: Path, spec: Path, root: Path) -> Snapshot:
    snapshot = Snapshot(
        "t", {"v1/Namespace/-/falco": NAMESPACE_1_30, "v1/ServiceAccount/falco/falco": SERVICE_ACCOUNT_1_30}
    )
    snapshot.nodes["10.0.0.1"] = {
        path: (root / path.lstrip("/")).read_bytes()
        for path in (MANIFEST, f"{CONFIG}/audit-policy.yaml", f"{CONFIG}/audit-webhook.kubeconfig")
    }
    return snapshot


def _diff(tmp: Path, spec: Path, snapshot: Snapshot) -> Any:
    directory = tmp / "snap"
    shutil.rmtree(directory, ignore_errors=True)
    save(snapshot, directory)
    return live_diff(spec, snapshot_dir=directory, access=NodeAccess())


@pytest.fixture
def applied(tmp_path: Path) -> tuple[Path, Snapshot]:
    spec = _spec(tmp_path)
    root = tmp_path / "node"
    _applied_node(tmp_path, spec, root)
    return spec, _snapshot(tmp_path, spec, root)


def test_a_site_just_applied_shows_no_difference(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    result = _diff(tmp_path, spec, snapshot)
    assert result.changes == []
    cli = CliRunner().invoke(app, ["diff", str(spec), "--live-dir", str(tmp_path / "snap")])
    assert cli.exit_code == 0, cli.stdout + cli.stderr
    assert "matches what is rendered" in cli.stdout


def test_each_meaningful_change_is_reported_once(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    namespace = copy.deepcopy(NAMESPACE_1_30)
    namespace["metadata"]["labels"]["env"] = "dev"
    namespace["metadata"]["resourceVersion"] = "99999"  # server noise: never a difference
    snapshot.objects["v1/Namespace/-/falco"] = namespace
    snapshot.objects["v1/ServiceAccount/falco/falco"] = None
    node = snapshot.nodes["10.0.0.1"]
    manifest = node[MANIFEST] or b""
    node[MANIFEST] = manifest.replace(b"--audit-log-maxage=30", b"--audit-log-maxage=7").replace(
        b"- --audit-log-format=json\n",
        b"- --audit-log-format=json\n    - --audit-log-version=audit.k8s.io/v1\n",
    )
    node[f"{CONFIG}/audit-webhook.kubeconfig"] = None
    result = _diff(tmp_path, spec, snapshot)
    found = sorted((c.where, c.subject, c.path, c.kind) for c in result.changes)
    assert found == sorted(
        [
            ("10.0.0.1", MANIFEST, "--audit-log-maxage", "changed"),
            ("10.0.0.1", MANIFEST, "--audit-log-version", "unexpected"),
            ("10.0.0.1", f"{CONFIG}/audit-webhook.kubeconfig", "", "absent"),
            ("v1/Namespace/-/falco", "", "metadata.labels.env", "changed"),
            ("v1/ServiceAccount/falco/falco", "", "", "absent"),
        ]
    )
    maxage = next(c for c in result.changes if c.path == "--audit-log-maxage")
    assert (maxage.wanted, maxage.live) == ("30", "7")
    cli = CliRunner().invoke(
        app, ["diff", str(spec), "--live-dir", str(tmp_path / "snap"), "--format", "json"]
    )
    assert cli.exit_code == 1
    assert len(json.loads(cli.stdout)["changes"]) == 5


def test_flag_order_and_quoting_do_not_matter(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    lines = (snapshot.nodes["10.0.0.1"][MANIFEST] or b"").decode().splitlines()
    flags = [i for i, line in enumerate(lines) if line.strip().startswith("- --")]
    reordered = [lines[i] for i in reversed(flags)]
    for index, line in zip(flags, reordered, strict=True):
        lines[index] = line.replace("- --audit-log-path=", '- "--audit-log-path=') + (
            '"' if "--audit-log-path=" in line else ""
        )
    snapshot.nodes["10.0.0.1"][MANIFEST] = ("\n".join(lines) + "\n").encode()
    assert _diff(tmp_path, spec, snapshot).changes == []


def test_ignored_paths_each_drop_out() -> None:
    live = strip_ignored(NAMESPACE_1_30)
    assert "status" not in live
    for key in ("managedFields", "uid", "resourceVersion", "creationTimestamp"):
        assert key not in live["metadata"], key
    assert "kubectl.kubernetes.io/last-applied-configuration" not in live["metadata"]["annotations"]
    assert live["metadata"]["labels"] == NAMESPACE_1_30["metadata"]["labels"]


def test_secret_values_are_never_printed(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    kubeconfig = (snapshot.nodes["10.0.0.1"][f"{CONFIG}/audit-webhook.kubeconfig"] or b"").decode()
    kubeconfig = kubeconfig.replace("  user: {}\n", "  user:\n    token: live-s3cret-token\n")
    snapshot.nodes["10.0.0.1"][f"{CONFIG}/audit-webhook.kubeconfig"] = kubeconfig.encode()
    for fmt in ("text", "markdown", "json"):
        save_dir = tmp_path / f"s-{fmt}"
        save(snapshot, save_dir)
        cli = CliRunner().invoke(app, ["diff", str(spec), "--live-dir", str(save_dir), "--format", fmt])
        assert cli.exit_code == 1
        assert "live-s3cret-token" not in cli.stdout
        assert "<hidden, old value>" in cli.stdout


def test_snapshot_round_trips(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    _, snapshot = applied
    save(snapshot, tmp_path / "rt")
    again = load(tmp_path / "rt")
    assert again.objects == snapshot.objects and again.nodes == snapshot.nodes


# ---- the ssh transport against a real OpenSSH server ------------------------------------------


def test_snapshot_over_ssh_then_a_flag_edited_on_one_host(tmp_path: Path, sshd: tuple[int, Path]) -> None:
    port, key = sshd
    hosts = [
        {"host": "127.0.0.1", "port": port, "user": "root"},
        {"host": "localhost", "port": port, "user": "root"},
    ]
    spec = _spec(tmp_path, hosts)
    nodes = tmp_path / "nodes"
    for host in ("127.0.0.1", "localhost"):
        _applied_node(tmp_path / host, spec, nodes / host)
    options = [
        *ssh_options(key),
        "--node-root",
        f"{nodes}/{{host}}",
    ]
    env_kubectl = tmp_path / "bin"
    env_kubectl.mkdir()
    # the cluster side is not under test here: a kubectl that reports every object as absent
    (env_kubectl / "kubectl").write_text("#!/bin/sh\nexit 0\n")
    (env_kubectl / "kubectl").chmod(0o755)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{env_kubectl}{os.pathsep}{old_path}"
    try:
        saved = CliRunner().invoke(app, ["snapshot", str(spec), "-o", str(tmp_path / "snap"), *options])
        assert saved.exit_code == 0, saved.stderr
        index = json.loads((tmp_path / "snap/snapshot.json").read_text())
        assert sorted(index["nodes"]) == ["127.0.0.1", "localhost"]
        assert all(name for files in index["nodes"].values() for name in files.values())

        manifest = nodes / "localhost" / MANIFEST.lstrip("/")
        manifest.write_text(
            manifest.read_text().replace(
                "--audit-webhook-batch-max-wait=5s", "--audit-webhook-batch-max-wait=30s"
            )
        )
        live = CliRunner().invoke(app, ["diff", str(spec), "--live", *options])
    finally:
        os.environ["PATH"] = old_path
    assert live.exit_code == 1, live.stdout + live.stderr
    node_lines = [line for line in live.stdout.splitlines() if "kube-apiserver.yaml" in line]
    assert node_lines == [
        f"  changed    localhost {MANIFEST} --audit-webhook-batch-max-wait: rendered 5s, live 30s"
    ]


@pytest.mark.parametrize(
    "entry",
    __import__("compiler.datafiles", fromlist=["load_data"]).load_data("live-ignore.yaml"),
    ids=lambda e: ".".join(e["path"]),
)
def test_each_ignored_path_is_never_a_difference(tmp_path: Path, entry: dict[str, Any]) -> None:
    """A value the server put at an ignored path is never a difference; a change to a field
    auditc owns, next to it, is."""
    from compiler.live.compare import _document_changes

    wanted = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "falco", "labels": {"a": "b"}}}
    live: dict[str, Any] = copy.deepcopy(wanted)
    *parents, last = entry["path"]
    node = live
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = "set-by-the-server"
    target = wanted
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = "rendered-value"
    wanted_without = copy.deepcopy(wanted)
    node_w = wanted_without
    for part in parents:
        node_w = node_w[part]
    node_w.pop(last)
    assert _document_changes("k", "", wanted_without, strip_ignored(live)) == []
    live["metadata"]["labels"]["a"] = "c"
    assert [c.path for c in _document_changes("k", "", wanted_without, strip_ignored(live))] == [
        "metadata.labels.a"
    ]


# Objects of the other rendered kinds, as a 1.30 API server (and the Flux / Argo CD CRDs)
# return them: server metadata, defaulted fields and status written by hand.
def _server_meta(
    name: str, namespace: str | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": "7e1c9d2a-1b3c-4d5e-8f90-a1b2c3d4e5f6",
        "resourceVersion": "51234",
        "creationTimestamp": "2026-11-20T09:14:05Z",
        "managedFields": [{"manager": "kustomize-controller", "operation": "Apply", "apiVersion": "v1"}],
        "labels": labels or {},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def test_every_kind_a_legacy_and_a_flux_site_render_matches_its_live_form(tmp_path: Path) -> None:
    from compiler.datafiles import yaml_documents
    from compiler.live.cluster import object_key
    from compiler.live.compare import compare

    labels = {"app.kubernetes.io/managed-by": "auditc"}
    (tmp_path / "legacy").mkdir()
    (tmp_path / "flux").mkdir()
    legacy = write_spec(tmp_path / "legacy", {"falco": {"version": "0.31.1"}})
    flux = write_spec(
        tmp_path / "flux", {"gitops": {"engine": "flux", "repoURL": "https://git.example.com/a.git"}}
    )
    for spec in (legacy, flux):
        site = compile_site(spec)
        artifacts = {a.path: a.content for a in site.artifacts}
        snapshot = Snapshot(site.name)
        for path in sorted(artifacts):
            if not path.startswith("cluster/") or path.endswith("kustomization.yaml"):
                continue
            for obj in yaml_documents(artifacts[path]):
                live = copy.deepcopy(obj)
                meta = obj["metadata"]
                live["metadata"] = {**_server_meta(meta["name"], meta.get("namespace"), {**labels}), **meta}
                kind = obj["kind"]
                if kind == "Service":
                    live["spec"] |= {
                        "clusterIPs": [obj["spec"].get("clusterIP", "10.96.0.50")],
                        "ipFamilies": ["IPv4"],
                        "ipFamilyPolicy": "SingleStack",
                        "sessionAffinity": "None",
                        "internalTrafficPolicy": "Cluster",
                    }
                    live["spec"]["ports"] = [
                        p | {"targetPort": p.get("targetPort", p["port"])} for p in obj["spec"]["ports"]
                    ]
                    live["status"] = {"loadBalancer": {}}
                elif kind == "HelmRelease":
                    live["spec"] |= {"timeout": "5m0s", "driftDetection": {"mode": "disabled"}}
                    live["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
                elif kind == "HelmRepository":
                    live["spec"] |= {"timeout": "1m0s"}
                    live["status"] = {"artifact": {"revision": "sha256:abc"}}
                snapshot.objects[object_key(obj)] = live
        from compiler.build import build
        from compiler.pipeline import load

        built = build(load(spec))
        result = compare(site.name, artifacts, snapshot, built.change, built.resolved, [])
        assert [c for c in result.changes if c.where in snapshot.objects] == [], site.name
        kinds = {key.split("/")[-3] for key in snapshot.objects}
        assert kinds >= (
            {"Service", "ClusterRole", "ClusterRoleBinding"}
            if spec == legacy
            else {"HelmRepository", "HelmRelease"}
        )


def test_missing_hosts_volumes_and_two_argument_flags(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    node = snapshot.nodes["10.0.0.1"]
    text = (node[MANIFEST] or b"").decode()
    text = text.replace("    - --audit-log-maxage=30\n", "    - --audit-log-maxage\n    - '30'\n")
    text = text.replace("      name: auditc-log\n", "      name: auditc-log\n      readOnly: true\n")
    node[MANIFEST] = text.encode()
    result = _diff(tmp_path, spec, snapshot)
    assert [(c.path, c.kind) for c in result.changes] == [("volumeMount auditc-log", "changed")]
    del snapshot.nodes["10.0.0.1"]
    assert [(c.where, c.kind) for c in _diff(tmp_path, spec, snapshot).changes] == [("10.0.0.1", "absent")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "snapshot.json").write_text("[]"),
        lambda d: (d / "snapshot.json").write_text("{not json"),
        lambda d: (d / "snapshot.json").write_text(
            '{"site": "t", "objects": {"x": "../../../etc/passwd"}, "nodes": {}}'
        ),
        lambda d: shutil.rmtree(d / "cluster"),
    ],
)
def test_a_damaged_snapshot_is_a_user_error(
    tmp_path: Path, applied: tuple[Path, Snapshot], damage: Any
) -> None:
    spec, snapshot = applied
    save(snapshot, tmp_path / "snap")
    damage(tmp_path / "snap")
    result = CliRunner().invoke(app, ["diff", str(spec), "--live-dir", str(tmp_path / "snap")])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "root:" not in result.stdout + result.stderr


def test_an_inserted_policy_rule_is_one_change(tmp_path: Path, applied: tuple[Path, Snapshot]) -> None:
    spec, snapshot = applied
    path = f"{CONFIG}/audit-policy.yaml"
    policy = (snapshot.nodes["10.0.0.1"][path] or b"").decode()
    policy = policy.replace("rules:\n", "rules:\n- level: None\n  users:\n  - system:kube-proxy\n", 1)
    snapshot.nodes["10.0.0.1"][path] = policy.encode()
    (change,) = _diff(tmp_path, spec, snapshot).changes
    assert change.subject == path and change.kind == "changed"
    lines = change.diff.splitlines()
    assert "-- level: None" in lines
    assert not [line for line in lines if line.startswith("+") and not line.startswith("+++")]
