"""apply with Argo CD or Flux: auditc applies nothing in the cluster, waits until the
controller's object (the HelmRelease or Application of cluster/falco-release.yaml, stored
in the stand-in cluster with the status the controller would write) reports the pinned
chart deployed, then patches the hosts; verify reads the values that object deployed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.rollout.world import World
from tests.tools import yaml12

yaml = yaml12
CHART = "9.1.0"


def _gitops(world: World, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The site under ``engine``; returns its rendered controller object."""
    world.respec({"gitops": {"engine": engine, "repoURL": "https://git.example.com/platform/audit.git"}})
    out = world.tmp / "rendered"
    assert world.cli("render", str(world.spec), "-o", str(out)).exit_code == 0
    documents = list(yaml.load_all((out / "t/cluster/falco-release.yaml").read_text()))
    (release,) = [d for d in documents if d["kind"] in ("HelmRelease", "Application")]
    monkeypatch.setenv("FAKE_WORKLOAD", "present")  # the controller deployed the chart's workload
    namespace = world.cluster / "objects" / "namespace.-.falco.json"  # and synced cluster/
    namespace.parent.mkdir(parents=True, exist_ok=True)
    namespace.write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "falco"}}))
    return dict(release)


def _store(world: World, obj: dict[str, Any], status: dict[str, Any]) -> None:
    meta = obj["metadata"]
    live = {**obj, "status": status}
    live["metadata"] = {**meta, "uid": "uid-1", "resourceVersion": "7", "generation": 1}
    path = world.cluster / "objects" / f"{obj['kind'].lower()}.{meta['namespace']}.{meta['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(live))


def _flux_status(version: str) -> dict[str, Any]:
    return {
        "history": [{"chartName": "falco", "chartVersion": version, "status": "deployed"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "UpgradeSucceeded"}],
    }


def test_flux_deployed_the_pinned_chart_then_the_hosts(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    release = _gitops(world, "flux", monkeypatch)
    _store(world, release, _flux_status(CHART))
    result = world.apply()
    assert result.exit_code == 0, result.output
    assert not [c for c in world.calls() if c.startswith(("kubectl apply", "helm "))], (
        "GitOps: nothing applied"
    )
    assert f"Flux deployed chart {CHART} (HelmRelease flux-system/t-falco)" in world.records()[-1]["cluster"]
    assert [h["outcome"] for h in world.records()[-1]["hosts"]] == ["patched"] * 3
    assert "verify: t: Falco alerted on ConfigMap auditc-probe-" in result.stdout


def test_flux_still_on_an_older_chart_stops_before_any_node(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = _gitops(world, "flux", monkeypatch)
    _store(world, release, _flux_status("9.0.0"))
    before = world.snapshot()
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    assert (
        f"Flux has not deployed chart {CHART} after 0.3s "
        "(HelmRelease flux-system/t-falco: chart version 9.0.0)" in result.stdout
    )
    assert world.snapshot() == before


def test_flux_not_yet_synced_or_reconciled_stops(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A values change at the same chart version: the controller still reports the old
    release Ready at that version, so the spec and the generation decide."""
    release = _gitops(world, "flux", monkeypatch)
    older = json.loads(json.dumps(release))
    del older["spec"]["values"]["customRules"]  # the commit before the probe rule
    _store(world, older, _flux_status(CHART))
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1
    assert "its spec is not the rendered one yet (the controller has not synced the commit)" in result.stdout
    _store(world, release, {**_flux_status(CHART), "observedGeneration": 0})  # synced, not reconciled
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1
    assert "status is of generation 0, the object is at 1" in result.stdout


def test_flux_not_ready_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    release = _gitops(world, "flux", monkeypatch)
    status = _flux_status(CHART)
    status["conditions"] = [{"type": "Ready", "status": "False", "message": "install retries exhausted"}]
    _store(world, release, status)
    result = world.apply(None, "--wait-timeout", "0.3")
    assert result.exit_code == 1
    assert "not ready: install retries exhausted" in result.stdout


@pytest.mark.parametrize(
    ("status", "fine", "missing"),
    [
        ({"sync": {"status": "Synced", "revision": CHART}, "health": {"status": "Healthy"}}, True, ""),
        (
            {"sync": {"status": "OutOfSync", "revision": CHART}, "health": {"status": "Healthy"}},
            False,
            "sync status OutOfSync",
        ),
        ({"sync": {"status": "Synced", "revision": "9.0.0"}}, False, "revision 9.0.0"),
        (
            {"sync": {"status": "Synced", "revision": CHART, "comparedTo": {"source": {"chart": "falco"}}}},
            False,
            "sync status was compared against an older source",
        ),
        (
            {"sync": {"status": "Synced", "revision": CHART}, "health": {"status": "Progressing"}},
            False,
            "health Progressing",
        ),
    ],
)
def test_argocd_application_status(
    world: World, monkeypatch: pytest.MonkeyPatch, status: dict[str, Any], fine: bool, missing: str
) -> None:
    application = _gitops(world, "argocd", monkeypatch)
    _store(world, application, status)
    before = world.snapshot()
    result = world.apply(None, "--wait-timeout", "0.3", "--no-verify")
    assert (result.exit_code == 0) == fine, result.output
    if fine:
        assert world.snapshot() != before
    else:
        assert (
            f"Argo CD has not deployed chart {CHART} after 0.3s (Application argocd/t-falco: {missing})"
            in result.stdout
        )
        assert world.snapshot() == before
