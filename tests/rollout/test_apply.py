"""auditc plan and apply, end to end: three control-plane hosts as directories holding the
real kubeadm 1.30 kube-apiserver manifest, each with a stand-in apiserver (an HTTPS /readyz
on the port its manifest names, following the documented readiness contract), the real
patch script run on them with --root (apply --local --node-root), and a stand-in
kubectl/helm over a state directory (tests/standins.py): the world of tests/rollout/world.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.rollout.world import HOSTS, MANIFEST, World


def _patch_by_hand(world: World, host: str) -> None:
    """One host already as the rendered site wants it: the real patch script, run there."""
    out = world.tmp / "rendered"
    if not out.exists():
        assert world.cli("render", str(world.spec), "-o", str(out)).exit_code == 0
    script = out / "t/node/apiserver-config.patch.sh"
    subprocess.run(["sh", str(script), "--root", str(world.nodes / host), "--no-wait"], check=True)


def test_plan_lists_exactly_what_differs(world: World) -> None:
    _patch_by_hand(world, "cp-2")
    result = world.plan()
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    hosts = [line.split()[:3] for line in lines if " host " in line]
    assert hosts == [["update", "host", "cp-1"], ["unchanged", "host", "cp-2"], ["update", "host", "cp-3"]]
    assert "  create     chart release falco (install chart version 9.1.0)" in lines
    assert "  create     object v1/Namespace/-/falco" in lines
    assert lines[-1] == "apply: the cluster layer, then 2 host(s) one at a time: cp-1, cp-3"
    assert [c for c in world.calls() if not c.startswith(("kubectl get", "helm list"))] == []


def test_apply_rolls_out_in_order_and_a_second_plan_is_empty(world: World) -> None:
    before = world.snapshot()
    result = world.apply()
    assert result.exit_code == 0, result.output
    calls = world.calls()
    writes = [c for c in calls if {"apply", "upgrade", "rollout", "create", "delete"} & set(c.split()[:4])]
    assert [c.split()[:2] for c in writes] == [
        ["kubectl", "create"],  # the lock
        ["kubectl", "apply"],
        ["helm", "upgrade"],
        ["kubectl", "-n"],  # rollout status, after the workload appeared
        ["kubectl", "create"],  # verify: the probe ConfigMap
        ["kubectl", "-n"],  # verify: the probe deleted
        ["kubectl", "delete"],  # the lock released
    ]
    assert "--server-side --field-manager=auditc -k cluster/" in writes[1]
    assert "delete configmap auditc-probe-" in writes[5]
    assert "verify: t: Falco alerted on ConfigMap auditc-probe-" in result.stdout
    record = world.records()[-1]
    assert record["ok"] and [(h["host"], h["outcome"]) for h in record["hosts"]] == [
        ("cp-1", "patched"),
        ("cp-2", "patched"),
        ("cp-3", "patched"),
    ]
    after = world.snapshot()
    for host in HOSTS:
        assert after[f"{host}/{MANIFEST}"] != before[f"{host}/{MANIFEST}"]
        assert f"{host}/etc/kubernetes/audit/audit-policy.yaml" in after
    again = world.plan()
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == "== t: nothing to do"
    live = world.cli("diff", str(world.spec), "--live", *world.node_args())  # the same view as plan
    assert live.exit_code == 0, live.output
    third = world.apply()
    assert third.exit_code == 0 and "nothing to do" in third.stdout


def test_a_host_that_does_not_come_back_is_restored_and_the_rollout_stops(world: World) -> None:
    world.apiservers["cp-2"].breaks = True
    before = world.snapshot()
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    after = world.snapshot()
    assert after[f"cp-1/{MANIFEST}"] != before[f"cp-1/{MANIFEST}"]  # patched
    for host in ("cp-2", "cp-3"):  # restored, untouched
        assert {k: v for k, v in after.items() if k.startswith(host)} == {
            k: v for k, v in before.items() if k.startswith(host)
        }, host
    assert "  restored     cp-2: the apiserver did not come back" in result.stdout
    assert "  untouched    cp-3" in result.stdout
    assert "stopped: cp-2 restored; rollout stopped, not touched: cp-3" in result.stdout
    record = world.records()[-1]
    assert not record["ok"] and [h["outcome"] for h in record["hosts"]] == ["patched", "restored"]
    world.apiservers["cp-2"].breaks = False
    assert [line.split()[2] for line in world.plan().stdout.splitlines() if "update     host" in line] == [
        "cp-2",
        "cp-3",
    ]


def test_an_unhealthy_apiserver_is_not_touched(world: World) -> None:
    world.apiservers["cp-1"].never_ready = True
    before = world.snapshot()
    result = world.apply()
    assert result.exit_code == 1, result.output
    assert world.snapshot() == before
    assert "cp-1: the apiserver is not healthy before the change" in result.stdout


def test_a_stale_plan_is_refused_and_nothing_is_touched(world: World) -> None:
    plan_file = world.tmp / "plan.json"
    made = world.plan("-o", str(plan_file))
    assert made.exit_code == 1, made.output
    manifest = world.manifest("cp-3")
    manifest.write_text(manifest.read_text().replace("--secure-port=", "--v=2\n    - --secure-port="))
    before, calls = world.snapshot(), len(world.calls())
    result = world.apply(plan_file)
    assert result.exit_code == 1, result.output
    assert "auditc: the plan is stale, nothing was touched" in result.stderr
    assert "auditc: host cp-3 changed since the plan was made" in result.stderr
    assert world.snapshot() == before
    assert [c for c in world.calls()[calls:] if c.split()[1] in ("apply", "upgrade")] == []


def test_a_fresh_plan_file_applies(world: World) -> None:
    plan_file = world.tmp / "plan.json"
    assert world.plan("-o", str(plan_file)).exit_code == 1
    result = world.apply(plan_file)
    assert result.exit_code == 0, result.output
    assert world.plan().exit_code == 0


def test_a_spec_changed_after_the_plan_makes_it_stale(world: World) -> None:
    plan_file = world.tmp / "plan.json"
    assert world.plan("-o", str(plan_file)).exit_code == 1
    world.spec.write_text(world.spec.read_text().replace("env: lab", "env: prod"))
    result = world.apply(plan_file)
    assert result.exit_code == 1
    assert "the spec (or a file it names) changed since the plan was made" in result.stderr


def test_a_second_apply_refuses_while_the_lock_is_held(world: World) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "auditc-apply-t", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "alice@laptop pid 4242 0badcafe",
            "acquireTime": "2026-12-02T10:00:00.000000Z",
        },
    }
    subprocess.run(["kubectl", "create", "-f", "-"], input=json.dumps(lease), text=True, check=True)
    before = world.snapshot()
    result = world.apply()
    assert result.exit_code == 1, result.output
    assert (
        "another apply of site t holds the lock: alice@laptop pid 4242 0badcafe, "
        "since 2026-12-02T10:00:00.000000Z" in result.stderr
    )
    assert world.snapshot() == before
    assert "alice@laptop" in world.cli("apply", str(world.spec), "--force-unlock").stderr
    assert world.apply().exit_code == 0


def test_two_applies_at_once_the_second_refuses(world: World) -> None:
    """Two real processes: while the first holds the Lease (waiting for cp-1, whose
    apiserver does not come back), the second refuses at once and touches nothing."""
    world.apiservers["cp-1"].breaks = True
    argv = [sys.executable, "-m", "compiler", "apply", str(world.spec), "--yes", *world.node_args()]
    first = subprocess.Popen(
        [*argv, "--wait-timeout", "1.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lease = world.cluster / "objects" / "lease.kube-system.auditc-apply-t.json"
    deadline = time.monotonic() + 60
    while b"--audit-webhook-config-file" not in world.manifest("cp-1").read_bytes():
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.02)
    assert lease.exists()
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    _, first_err = first.communicate(timeout=120)
    assert second.returncode == 1, second.stderr
    assert "another apply of site t holds the lock" in second.stderr
    assert first.returncode == 1, first_err  # cp-1 restored, the rollout stopped
    assert not lease.exists()  # released on that exit path too


def test_without_a_terminal_and_without_yes_nothing_is_touched(world: World) -> None:
    before = world.snapshot()
    result = world.cli("apply", str(world.spec), *world.node_args())
    assert result.exit_code == 1
    assert "not a terminal: pass --yes" in result.stderr
    assert world.snapshot() == before


def test_falco_not_available_stops_before_any_node(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FALCO", "unavailable")
    before = world.snapshot()
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    assert "is not available" in result.stdout and "no node was touched" in result.stdout
    assert world.snapshot() == before


def test_a_receiver_service_without_endpoints_stops_before_any_node(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workload is available, but its Service selects no ready pod: no apiserver is
    pointed at it."""
    monkeypatch.setenv("FAKE_ENDPOINTS", "none")
    before = world.snapshot()
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    assert (
        "the receiver Service falco/falco-k8saudit-webhook has no ready endpoints after 0.3s" in result.stdout
    )
    assert world.snapshot() == before


def test_an_interrupt_leaves_the_host_patched_or_restored(world: World) -> None:
    """Ctrl-C while the patch script waits for cp-1's apiserver: the script's trap decides
    (the manifest is in place: it stays patched, the backup beside it), apply records it."""
    world.apiservers["cp-1"].breaks = True
    before = world.snapshot()
    argv = [sys.executable, "-m", "compiler", "apply", str(world.spec), "--yes", *world.node_args()]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while b"--audit-webhook-config-file" not in world.manifest("cp-1").read_bytes():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    after = world.snapshot()
    cp1 = {k: v for k, v in after.items() if k.startswith("cp-1/")}
    restored = cp1 == {k: v for k, v in before.items() if k.startswith("cp-1/")}
    record = world.records()[-1]
    assert record["reason"] == "interrupted"
    (host,) = record["hosts"]
    assert host["outcome"] == "interrupted"
    assert host["detail"].startswith("restored" if restored else "patched"), host
    for other in ("cp-2", "cp-3"):
        assert {k: v for k, v in after.items() if k.startswith(other)} == {
            k: v for k, v in before.items() if k.startswith(other)
        }


def test_dry_run_shows_the_plan_and_touches_nothing(world: World) -> None:
    before = world.snapshot()
    result = world.apply(None, "--dry-run")
    assert result.exit_code == 1, result.output  # changes planned
    assert "update     host cp-1" in result.stdout and "dry run: nothing was touched" in result.output
    assert world.snapshot() == before
    assert [c for c in world.calls() if not c.startswith(("kubectl get", "helm list"))] == []


def test_plan_as_json(world: World) -> None:
    result = world.plan("--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["site"] == "t" and document["changes"] is True
    hosts = [(i["name"], i["action"]) for i in document["items"] if i["kind"] == "host"]
    assert hosts == [(h, "update") for h in HOSTS]
    assert {i["kind"] for i in document["items"]} == {"object", "release", "host"}
