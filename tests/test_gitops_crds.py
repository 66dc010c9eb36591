"""The Argo CD and Flux objects auditc writes, against the real CRD schemas (tests/data/
gitops-crds): each object validates against its version's openAPIV3Schema with unknown
fields refused (as the API server prunes them), and Argo CD deploys Falco without a manual
sync."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from compiler.api import compile_site
from tests.sites import example_specs, spec_data, write_spec
from tests.tools import yaml12

yaml = yaml12
CRDS = Path(__file__).resolve().parent / "data" / "gitops-crds"
ARGO_VERSIONS = ("v2.8.0", "v3.5.1")  # the first with valuesObject, and a current one


def _strict(schema: Any) -> Any:
    """Unknown fields are errors unless the schema preserves them, as in a structural CRD."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _schemas(crd_file: str) -> tuple[str, str, dict[str, dict[str, Any]]]:
    crd = yaml.load((CRDS / crd_file).read_text())
    versions = {v["name"]: _strict(v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]}
    return crd["spec"]["group"], crd["spec"]["names"]["kind"], versions


def crd_errors(obj: dict[str, Any], crd_file: str) -> list[str]:
    group, kind, versions = _schemas(crd_file)
    api_group, _, version = obj["apiVersion"].partition("/")
    assert (api_group, obj["kind"]) == (group, kind)
    assert version in versions, f"{crd_file} has no version {version}"
    validator = jsonschema.Draft7Validator(versions[version])
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj))


CRD_FILES = {
    "HelmRelease": "flux-helm-controller-v1.6.0-helmreleases.yaml",
    "HelmRepository": "flux-source-controller-v1.9.0-helmrepositories.yaml",
    "GitRepository": "flux-source-controller-v1.9.0-gitrepositories.yaml",
    "Kustomization": "flux-kustomize-controller-v1.9.0-kustomizations.yaml",
}


def _gitops_objects(spec: Path, only: str = "") -> list[dict[str, Any]]:
    files = {a.path: a.content for a in compile_site(spec).artifacts}
    out = []
    for path in ("cluster/falco-release.yaml", "plan/gitops-bootstrap.yaml"):
        if path in files and path.startswith(only):
            out += [doc for doc in yaml.load_all(files[path]) if doc]
    return out


# the examples that deploy through a GitOps controller (read, not compiled: this runs at
# collection, in every worker)
GITOPS_SPECS = [s for s in example_specs() if spec_data(s)["spec"].get("gitops")]


def test_the_gitops_examples_are_those_that_write_gitops_objects() -> None:
    assert [s for s in example_specs() if _gitops_objects(s)] == GITOPS_SPECS


def test_the_check_refuses_what_the_api_server_would_prune() -> None:
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "x"},
        "spec": {"project": "default", "source": {"repoURL": "u", "helm": {"value": "x"}}, "destination": {}},
    }
    errors = crd_errors(app, "argocd-v3.5.1-application-crd.yaml")
    assert any("'value' was unexpected" in e for e in errors)


@pytest.mark.parametrize("argo", ARGO_VERSIONS)
@pytest.mark.parametrize("spec", GITOPS_SPECS, ids=lambda p: p.stem)
def test_objects_validate_against_the_real_crds(spec: Path, argo: str) -> None:
    objects = _gitops_objects(spec)
    for obj in objects:
        crd_file = (
            f"argocd-{argo}-application-crd.yaml" if obj["kind"] == "Application" else CRD_FILES[obj["kind"]]
        )
        assert crd_errors(obj, crd_file) == [], f"{obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize("engine", ["argocd", "flux"])
def test_the_engine_deploys_falco_on_its_own(tmp_path: Path, engine: str) -> None:
    """No manual sync: Argo CD's Application syncs automatically, Flux reconciles on its interval."""
    gitops = {"engine": engine, "repoURL": "https://git.example.com/audit.git"}
    objects = _gitops_objects(write_spec(tmp_path, {"gitops": gitops}), only="cluster/")
    (release,) = [o for o in objects if o["kind"] in ("Application", "HelmRelease")]
    if engine == "argocd":
        assert release["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        helm = release["spec"]["source"]["helm"]
        # a string: Argo CD < 2.8 prunes valuesObject silently and installs the chart's defaults
        assert "valuesObject" not in helm and isinstance(helm["values"], str)
        values = yaml.load(helm["values"])
        assert values["falco"]["plugins"][0]["name"] == "k8saudit"
    else:
        assert release["spec"]["interval"] and release["spec"]["chart"]["spec"]["version"] == "9.1.0"


# ---- auditc fleet: one engine's objects for the whole fleet ----------------------------------


def _fleet(engine: str, *specs: Path) -> list[dict[str, Any]]:
    from compiler import api

    return [d for d in yaml.load_all(api.fleet_gitops(list(specs), engine).decode()) if d]


@pytest.mark.parametrize("version", ARGO_VERSIONS)
def test_the_fleet_applicationset_validates_and_makes_each_sites_application(version: str) -> None:
    """One ApplicationSet for the Argo CD sites; its git generator lists their cluster/
    directories, and the go template gives each the Application name its own bootstrap
    would have, deployed to the Argo CD cluster named after the site."""
    from tests.sites import ROOT

    (appset,) = _fleet("argocd", ROOT / "specs")
    assert crd_errors(appset, f"argocd-{version}-applicationset-crd.yaml") == []
    argocd_sites = sorted(
        s.stem
        for s in example_specs()
        if (spec_data(s)["spec"].get("gitops") or {}).get("engine") == "argocd"
    )
    directories = [d["path"] for d in appset["spec"]["generators"][0]["git"]["directories"]]
    assert directories == [f"output/{site}/cluster" for site in argocd_sites]
    template = appset["spec"]["template"]
    for path in directories:  # what Argo CD's go template makes of each directory
        segments = path.split("/")
        name = template["metadata"]["name"].replace("{{index .path.segments 1}}", segments[1])
        assert name == f"auditc-{segments[1]}"
        assert template["spec"]["destination"]["name"] == "{{index .path.segments 1}}"
        assert template["spec"]["source"]["path"] == "{{.path.path}}"


def test_the_fleet_flux_objects_share_one_source() -> None:
    from tests.sites import ROOT

    objects = _fleet("flux", ROOT / "specs")
    source, *syncs = objects
    assert source["kind"] == "GitRepository" and crd_errors(source, CRD_FILES["GitRepository"]) == []
    assert syncs and all(crd_errors(s, CRD_FILES["Kustomization"]) == [] for s in syncs)
    assert {s["spec"]["sourceRef"]["name"] for s in syncs} == {source["metadata"]["name"]}
    for sync in syncs:
        site = sync["metadata"]["name"].removeprefix("auditc-")
        assert sync["spec"]["path"] == f"./output/{site}/cluster"
        assert sync["spec"]["kubeConfig"]["secretRef"]["name"] == f"auditc-{site}-kubeconfig"


def test_sites_that_cannot_share_a_fleet_object_are_named(tmp_path: Path) -> None:
    from compiler import api
    from compiler.errors import UserError

    gitops = {"engine": "flux", "repoURL": "https://git.example.com/a.git"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_spec(tmp_path / "a", {"gitops": gitops}, metadata={"name": "a"})
    other = {**gitops, "repoURL": "https://git.example.com/b.git"}
    second = write_spec(tmp_path / "b", {"gitops": other}, metadata={"name": "b"})
    with pytest.raises(UserError, match="these differ from a: b"):
        api.fleet_gitops([first, second], "flux")
    with pytest.raises(UserError, match=r"no site deploys with gitops\.engine argocd"):
        api.fleet_gitops([first], "argocd")
