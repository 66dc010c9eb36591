"""auditc verify against the stand-in cluster of tests/standins.py: a Falco whose log gets
the output of the release's own customRules when a ConfigMap create matches them (the
rendered probe rule, evaluated), a receiver that may never be ready, and an apiserver that
may send nothing. The hosts are the directories of tests/rollout/world.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rollout.world import REAL_MANIFEST, World


def _applied(world: World) -> None:
    world.applied()  # a real apply --no-verify once per spec, a copy of its result after that


def _verify(world: World, *args: str) -> object:
    return world.cli("verify", str(world.spec), *world.node_args(), "--timeout", "0.5", *args)


def _configmaps(world: World) -> list[str]:
    objects = world.cluster / "objects"
    return sorted(p.name for p in objects.glob("configmap.*")) if objects.is_dir() else []


def test_the_alert_arrives_and_the_probe_is_deleted(world: World) -> None:
    _applied(world)
    result = _verify(world)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("verify: t: Falco alerted on ConfigMap auditc-probe-")
    name = lines[0].split("ConfigMap ")[1].split()[0]
    latency = float(lines[0].split(name + " ")[1].split("s after")[0])
    assert 0 <= latency < 5
    assert f"auditc probe seen (configmap={name} namespace=falco user=kubernetes-admin)" in lines[1]
    assert _configmaps(world) == []  # deleted again
    created = [c for c in world.calls() if c.startswith("kubectl create")]
    assert created == ["kubectl create -f - -o name"] * 2  # the lock of apply, then the probe


def test_json_output(world: World) -> None:
    _applied(world)
    result = _verify(world, "--format", "json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    document = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert document["ok"] is True and document["probe"].startswith("auditc-probe-")
    assert document["causes"] == [] and document["latency"] >= 0


def test_no_alert_when_everything_looks_right_says_where_to_look(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _applied(world)
    monkeypatch.setenv("FAKE_PROBE", "never")
    result = _verify(world)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "FAILED for ConfigMap auditc-probe-" in out
    assert "  - no alert for the probe in Falco's log within 0.5s" in out
    assert "everything auditc can see matches the rendered site" in out
    assert "webhook errors reaching http://10.0.0.1:30007/k8s-audit" in out
    assert _configmaps(world) == []


def test_a_receiver_that_is_never_ready(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _applied(world)
    monkeypatch.setenv("FAKE_FALCO", "unavailable")
    result = _verify(world)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "Falco's receiver deployment/falco is not available: error: timed out" in out
    assert "the receiver Service falco/falco-k8saudit-webhook has no ready endpoints" in out
    assert "everything auditc can see" not in out


def test_a_host_not_patched_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _applied(world)
    world.manifest("cp-2").write_bytes(REAL_MANIFEST.read_bytes())  # someone put the old one back
    monkeypatch.setenv("FAKE_PROBE", "never")
    result = _verify(world)
    assert result.exit_code == 1
    out = result.stdout  # type: ignore[attr-defined]
    assert "  - cp-2: the rendered apiserver flags or audit files are not live there" in out
    assert "cp-1:" not in out and "cp-3:" not in out


def test_a_policy_that_drops_the_probe_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    drop = {"level": "None", "namespaces": ["falco"], "resources": [{"resources": ["configmaps"]}]}
    world.respec({"audit": {"policy": {"preset": "falco", "rules": [drop]}}})
    _applied(world)
    monkeypatch.setenv("FAKE_PROBE", "never")  # the apiserver drops it, as the policy says
    result = _verify(world)
    assert result.exit_code == 1
    out = result.stdout  # type: ignore[attr-defined]
    assert "the rendered audit policy does not send a create of a ConfigMap in falco (level None" in out


def test_apply_ends_with_verify_and_fails_without_an_alert(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROBE", "never")
    result = world.apply(None, "--verify-timeout", "0.5")
    assert result.exit_code == 1, result.output
    assert "verify: t: FAILED" in result.stdout
    assert "auditc: t: stopped: applied, but verify saw no alert from Falco" in result.stdout
    record = world.records()[-1]
    assert [h["outcome"] for h in record["hosts"]] == ["patched"] * 3
    assert record["verify"]["ok"] is False and record["verify"]["causes"]


def test_verify_refuses_without_the_probe_rule(world: World) -> None:
    world.respec({"falco": {"probe": False}})
    result = _verify(world)
    assert result.exit_code == 1
    assert "falco.probe is false" in result.output  # type: ignore[attr-defined]
    assert not Path(world.cluster / "falco.log").exists()
    assert [c for c in world.calls() if "create" in c.split()] == []  # no probe was made


def test_a_cluster_without_falco_fails_at_the_create(world: World) -> None:
    """Nothing applied yet: the Falco namespace does not exist, so the probe cannot be made."""
    result = _verify(world)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert (
        "cannot create the probe ConfigMap in namespace falco: "
        'Error from server (NotFound): namespaces "falco" not found' in result.stdout  # type: ignore[attr-defined]
    )


def test_falco_up_but_no_apiserver_pointed_at_it(world: World) -> None:
    """The cluster layer went through, every host stayed as it was (the first apiserver was
    unhealthy): the stand-in Falco gets no event, and verify names every host."""
    world.apiservers["cp-1"].never_ready = True
    assert world.apply(None, "--no-verify").exit_code == 1
    world.apiservers["cp-1"].never_ready = False
    result = _verify(world)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    for host in ("cp-1", "cp-2", "cp-3"):
        assert f"  - {host}: the rendered apiserver flags or audit files are not live there" in out


def test_apply_with_the_probe_off_does_not_verify(world: World) -> None:
    world.respec({"falco": {"probe": False}})
    result = world.apply()
    assert result.exit_code == 0, result.output
    assert "verify:" not in result.stdout
    assert world.records()[-1]["verify"] is None
