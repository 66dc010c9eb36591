"""apply with Argo CD or Flux: auditc applies nothing in the cluster, waits until the
controller's object (the HelmRelease or Application of cluster/falco-release.yaml, stored
in the stand-in cluster with the status the controller would write) reports the pinned
chart deployed, then patches the hosts; verify reads the values that object deployed.
With gitops.engineCluster: management the object is management/falco-release.yaml, read
from the management cluster (a second stand-in cluster behind its own kubectl context)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.rollout.world import World
from tests.tools import yaml12

yaml = yaml12
CHART = "9.1.0"


def _gitops(
    world: World, engine: str, monkeypatch: pytest.MonkeyPatch, where: str = "site"
) -> dict[str, Any]:
    """The site under ``engine`` run from ``where``; returns its rendered controller object."""
    gitops = {
        "engine": engine,
        "repoURL": "https://git.example.com/platform/audit.git",
        "engineCluster": where,
    }
    world.respec({"gitops": gitops})
    out = world.tmp / "rendered"
    assert world.cli("render", str(world.spec), "-o", str(out)).exit_code == 0
    folder = "cluster" if where == "site" else "management"
    documents = list(yaml.load_all((out / f"t/{folder}/falco-release.yaml").read_text()))
    (release,) = [d for d in documents if d["kind"] in ("HelmRelease", "Application")]
    monkeypatch.setenv("FAKE_WORKLOAD", "present")  # the controller deployed the chart's workload
    namespace = world.cluster / "objects" / "namespace.-.falco.json"  # and synced cluster/
    namespace.parent.mkdir(parents=True, exist_ok=True)
    namespace.write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "falco"}}))
    return dict(release)


def _store(world: World, obj: dict[str, Any], status: dict[str, Any], cluster: Path | None = None) -> None:
    meta = obj["metadata"]
    live = {**obj, "status": status}
    live["metadata"] = {**meta, "uid": "uid-1", "resourceVersion": "7", "generation": 1}
    path = (
        (cluster or world.cluster)
        / "objects"
        / f"{obj['kind'].lower()}.{meta['namespace']}.{meta['name']}.json"
    )
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


# ---- gitops.engineCluster: management ----------------------------------------------------------


def _management(world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A second stand-in cluster, the one Flux or Argo CD runs in, behind the context ``hub``."""
    hub = world.tmp / "hub"
    hub.mkdir()
    monkeypatch.setenv("FAKE_MANAGEMENT_CONTEXT", "hub")
    monkeypatch.setenv("FAKE_MANAGEMENT_CLUSTER", str(hub))
    return hub


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_from_a_management_cluster_apply_waits_there(
    world: World, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    hub = _management(world, monkeypatch)
    release = _gitops(world, engine, monkeypatch, where="management")
    status = (
        _flux_status(CHART)
        if engine == "flux"
        else {"sync": {"status": "Synced", "revision": CHART}, "health": {"status": "Healthy"}}
    )
    _store(world, release, status, cluster=hub)
    result = world.apply(None, "--management-context", "hub", "--wait-timeout", "5")
    assert result.exit_code == 0, result.output
    kind = "HelmRelease" if engine == "flux" else "Application"
    read = [c for c in world.calls() if c.startswith("kubectl get") and f"{kind.lower()}." in c.lower()]
    assert read and all("--context hub" in c for c in read), read
    assert [h["outcome"] for h in world.records()[-1]["hosts"]] == ["patched"] * 3
    assert "verify: t: Falco alerted on ConfigMap auditc-probe-" in result.stdout


def test_from_a_management_cluster_the_site_cluster_is_not_where_to_look(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release stored in the site's cluster only (where a management site's is not):
    apply, asking the management cluster, finds nothing and touches no node."""
    _management(world, monkeypatch)
    release = _gitops(world, "flux", monkeypatch, where="management")
    _store(world, release, _flux_status(CHART))
    before = world.snapshot()
    result = world.apply(None, "--management-context", "hub", "--wait-timeout", "0.3")
    assert result.exit_code == 1, result.output
    assert "(HelmRelease flux-system/t-falco: it does not exist yet)" in result.stdout
    assert world.snapshot() == before


def test_from_a_management_cluster_plan_and_live_diff_read_the_release_there(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of the release's values alone is an update of the HelmRelease in the
    management cluster: plan lists it, diff --live shows it, apply waits for Flux."""
    hub = _management(world, monkeypatch)
    release = _gitops(world, "flux", monkeypatch, where="management")
    _store(world, release, _flux_status(CHART), cluster=hub)
    assert world.apply(None, "--management-context", "hub", "--wait-timeout", "5").exit_code == 0
    key = "management:helm.toolkit.fluxcd.io/v2/HelmRelease/flux-system/t-falco"
    assert re.search(rf"unchanged +object {key}\n", world.plan("--management-context", "hub").stdout)
    gitops = {"engine": "flux", "repoURL": "https://git.example.com/platform/audit.git"}
    lists = {"rules": {"lists": {"x": ["y"]}}}
    world.respec({"gitops": {**gitops, "engineCluster": "management"}, "falco": lists})
    planned = world.plan("--management-context", "hub")
    assert planned.exit_code == 1, planned.output
    assert re.search(rf"update +object {key} \(Flux applies it\)\n", planned.stdout), planned.stdout
    live = world.cli("diff", str(world.spec), "--live", "--management-context", "hub", *world.node_args())
    assert live.exit_code == 1 and key in live.stdout and "spec.values" in live.stdout, live.stdout
    saved = world.tmp / "snapshot"
    taken = world.cli(
        "snapshot", str(world.spec), "-o", str(saved), "--management-context", "hub", *world.node_args()
    )
    assert taken.exit_code == 0, taken.output
    again = world.cli("diff", str(world.spec), "--live-dir", str(saved))
    assert again.exit_code == 1 and again.stdout == live.stdout, "a saved snapshot holds the release too"
    waited = world.apply(None, "--management-context", "hub", "--wait-timeout", "0.3")
    assert waited.exit_code == 1
    assert "its spec is not the rendered one yet" in waited.stdout


def test_from_a_management_cluster_apply_asks_for_its_context(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gitops(world, "argocd", monkeypatch, where="management")
    before = world.snapshot()
    for result in (world.apply(), world.apply(None, "--dry-run"), world.plan()):
        assert result.exit_code == 2
        assert f"{world.spec}:" in result.output and "spec.gitops.engineCluster" in result.output
        assert "Argo CD deploys site t from a management cluster: give --management-context" in result.output
    assert world.snapshot() == before and world.records() == []
