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
    for path in ("cluster/falco-release.yaml", "management/falco-release.yaml", "plan/gitops-bootstrap.yaml"):
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
    """One GitRepository; the HelmRepositories the management-cluster sites share, once; a
    Kustomization per site through its kubeconfig, and for a management-cluster site one
    more for management/, after the site's."""
    from tests.sites import ROOT

    source, *rest = _fleet("flux", ROOT / "specs")
    repositories = [o for o in rest if o["kind"] == "HelmRepository"]
    syncs = [o for o in rest if o["kind"] == "Kustomization"]
    assert source["kind"] == "GitRepository" and crd_errors(source, CRD_FILES["GitRepository"]) == []
    assert len(rest) == len(repositories) + len(syncs)
    assert [r["metadata"]["name"] for r in repositories] == ["falcosecurity"]  # branch-office's
    assert all(crd_errors(o, CRD_FILES[o["kind"]]) == [] for o in rest)
    assert {s["spec"]["sourceRef"]["name"] for s in syncs} == {source["metadata"]["name"]}
    own = {s["metadata"]["name"]: s for s in syncs if s["metadata"]["name"].endswith("-management")}
    assert list(own) == ["auditc-branch-office-management"]
    for sync in syncs:
        site = sync["metadata"]["name"].removeprefix("auditc-").removesuffix("-management")
        if sync["metadata"]["name"] in own:
            assert sync["spec"]["path"] == f"./output/{site}/management"
            assert sync["spec"]["dependsOn"] == [{"name": f"auditc-{site}"}]
            assert "kubeConfig" not in sync["spec"]  # applied into the management cluster
        else:
            assert sync["spec"]["path"] == f"./output/{site}/cluster"
            assert sync["spec"]["kubeConfig"]["secretRef"]["name"] == f"auditc-{site}-kubeconfig"


# ---- gitops.engineCluster: management --------------------------------------------------------


def _managed(tmp_path: Path, engine: str, **gitops: Any) -> Path:
    settings = {
        "engine": engine,
        "repoURL": "https://git.example.com/audit.git",
        "engineCluster": "management",
    }
    return write_spec(tmp_path, {"gitops": {**settings, **gitops}}, metadata={"name": "edge-7"})


def _files(spec: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        a.path: [d for d in yaml.load_all(a.content) if d]
        for a in compile_site(spec).artifacts
        if a.path.endswith(".yaml")
    }


@pytest.mark.parametrize("argo", ARGO_VERSIONS)
def test_argo_cd_in_a_management_cluster_deploys_to_the_site(tmp_path: Path, argo: str) -> None:
    """cluster/ holds the site's own objects only; the release Application lives in the
    management cluster and deploys to the cluster Argo CD knows by the site's name; the
    bootstrap syncs cluster/ there too, and management/ into Argo CD's own namespace."""
    files = _files(_managed(tmp_path, "argocd"))
    kinds = {d["kind"] for path, docs in files.items() if path.startswith("cluster/") for d in docs}
    assert kinds.isdisjoint({"Application", "HelmRelease", "HelmRepository"})
    (release,) = files["management/falco-release.yaml"]
    assert release["metadata"]["namespace"] == "argocd"
    assert release["spec"]["destination"] == {"name": "edge-7", "namespace": "falco"}
    assert release["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
    site, own = files["plan/gitops-bootstrap.yaml"]
    assert (site["spec"]["source"]["path"], site["spec"]["destination"]) == (
        "output/edge-7/cluster",
        {"name": "edge-7"},
    )
    assert (own["spec"]["source"]["path"], own["spec"]["destination"]) == (
        "output/edge-7/management",
        {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
    )
    for obj in (release, site, own):
        assert crd_errors(obj, f"argocd-{argo}-application-crd.yaml") == [], obj["metadata"]["name"]


def test_the_in_cluster_server_written_out_still_means_the_sites_cluster(tmp_path: Path) -> None:
    """From a management cluster, Argo CD's own server is never the site's: writing the
    default destinationServer out deploys to the cluster named after the site, as leaving it out does."""
    for written in (
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc/",
        "https://kubernetes.default.svc:443",
    ):
        spec = _managed(tmp_path, "argocd", argocd={"destinationServer": written})
        (release,) = _files(spec)["management/falco-release.yaml"]
        assert release["spec"]["destination"] == {"name": "edge-7", "namespace": "falco"}, written


def test_sites_of_two_chart_mirrors_keep_a_helm_repository_each(tmp_path: Path) -> None:
    specs = []
    for name, region in (("m-eu", "eu"), ("m-us", "us")):
        (tmp_path / name).mkdir()
        chart = {"repository": f"https://charts.{region}.example.com/falco"}
        gitops = {"engine": "flux", "repoURL": "https://git.example.com/a.git", "engineCluster": "management"}
        specs.append(
            write_spec(
                tmp_path / name, {"gitops": gitops, "falco": {"chart": chart}}, metadata={"name": name}
            )
        )
    objects = _fleet("flux", *specs)
    repositories = {o["metadata"]["name"]: o["spec"]["url"] for o in objects if o["kind"] == "HelmRepository"}
    assert sorted(repositories.values()) == [
        "https://charts.eu.example.com/falco",
        "https://charts.us.example.com/falco",
    ]
    for spec in specs:
        (release,) = _files(spec)["management/falco-release.yaml"]
        reference = release["spec"]["chart"]["spec"]["sourceRef"]["name"]
        assert reference in repositories and reference.startswith("falco-charts-")
        assert repositories[reference] in spec.read_text()


def test_a_destination_server_given_is_kept_from_a_management_cluster(tmp_path: Path) -> None:
    server = "https://edge-7.example.com:6443"
    files = _files(_managed(tmp_path, "argocd", argocd={"destinationServer": server}))
    (release,) = files["management/falco-release.yaml"]
    assert release["spec"]["destination"] == {"server": server, "namespace": "falco"}
    assert files["plan/gitops-bootstrap.yaml"][0]["spec"]["destination"] == {"server": server}


def test_flux_in_a_management_cluster_reaches_the_site_through_its_kubeconfig(tmp_path: Path) -> None:
    """The HelmRelease reconciles on the site through the kubeconfig Secret and keeps Helm's
    records in the Falco namespace there (flux-system may not exist on the site); the
    HelmRepository is the bootstrap's, shared; management/ waits for cluster/."""
    files = _files(_managed(tmp_path, "flux"))
    (release,) = files["management/falco-release.yaml"]
    assert release["kind"] == "HelmRelease" and crd_errors(release, CRD_FILES["HelmRelease"]) == []
    assert release["spec"]["kubeConfig"] == {"secretRef": {"name": "auditc-edge-7-kubeconfig"}}
    assert release["spec"]["storageNamespace"] == release["spec"]["targetNamespace"] == "falco"
    source, repository, site, own = files["plan/gitops-bootstrap.yaml"]
    assert all(crd_errors(o, CRD_FILES[o["kind"]]) == [] for o in (source, repository, site, own))
    reference = release["spec"]["chart"]["spec"]["sourceRef"]
    assert (reference["name"], reference["namespace"]) == (
        repository["metadata"]["name"],
        repository["metadata"]["namespace"],
    )
    assert site["spec"]["kubeConfig"] == release["spec"]["kubeConfig"]
    assert site["spec"]["path"] == "./output/edge-7/cluster"
    assert own["spec"]["path"] == "./output/edge-7/management" and "kubeConfig" not in own["spec"]
    assert own["spec"]["dependsOn"] == [{"name": site["metadata"]["name"]}]


@pytest.mark.parametrize("engine", ["argocd", "flux"])
def test_the_management_folder_builds_with_kubectl_kustomize(tmp_path: Path, engine: str) -> None:
    import subprocess

    from tests.sites import write_tree

    root = write_tree(compile_site(_managed(tmp_path, engine)), tmp_path / "out")
    built = subprocess.run(
        ["kubectl", "kustomize", str(root / "management")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    assert [d["kind"] for d in yaml.load_all(built.stdout) if d] == [
        "Application" if engine == "argocd" else "HelmRelease"
    ]


@pytest.mark.parametrize("version", ARGO_VERSIONS)
def test_the_fleet_syncs_each_management_folder_into_the_management_cluster(
    tmp_path: Path, version: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    managed = _managed(tmp_path / "a", "argocd")
    gitops = {"engine": "argocd", "repoURL": "https://git.example.com/audit.git"}
    own_engine = write_spec(tmp_path / "b", {"gitops": gitops}, metadata={"name": "core"})
    sites, management = _fleet("argocd", managed, own_engine)
    for appset in (sites, management):
        assert crd_errors(appset, f"argocd-{version}-applicationset-crd.yaml") == []
    listed = [d["path"] for d in sites["spec"]["generators"][0]["git"]["directories"]]
    assert listed == ["output/core/cluster", "output/edge-7/cluster"]
    assert management["metadata"]["name"] == "auditc-fleet-management"
    assert management["spec"]["generators"][0]["git"]["directories"] == [{"path": "output/edge-7/management"}]
    template = management["spec"]["template"]
    assert template["metadata"]["name"] == "auditc-{{index .path.segments 1}}-management"
    assert template["spec"]["destination"] == {
        "server": "https://kubernetes.default.svc",
        "namespace": "argocd",
    }


def test_the_fleet_refuses_a_management_site_with_its_own_destination_server(tmp_path: Path) -> None:
    from compiler import api
    from compiler.errors import UserError

    spec = _managed(tmp_path, "argocd", argocd={"destinationServer": "https://edge-7.example.com:6443"})
    with pytest.raises(UserError, match="the cluster registered in Argo CD under its name") as raised:
        api.fleet_gitops([spec], "argocd")
    assert raised.value.diagnostics[0].field == "spec.gitops.argocd.destinationServer"
    base = "apiVersion: auditc.dev/v1alpha1\nkind: SiteDefaults\nspec:\n  gitops:\n    argocd:\n"
    (tmp_path / "specs" / "bases").mkdir(parents=True)
    (tmp_path / "specs" / "bases" / "base.yaml").write_text(
        base + "      destinationServer: https://hub.example.com\n"
    )
    shared = []
    for name in ("edge-8", "edge-9"):
        (tmp_path / name).mkdir()
        text = _managed(tmp_path / name, "argocd").read_text().replace("edge-7", name)
        site = tmp_path / "specs" / f"{name}.yaml"
        site.write_text("bases: [bases/base.yaml]\n" + text)
        shared.append(site)
    with pytest.raises(UserError) as raised:
        api.fleet_gitops(shared, "argocd")
    (once,) = raised.value.diagnostics  # written once, in the base: said once
    assert once.message.endswith("(2 sites)") and once.location and once.location.file.endswith("base.yaml")


def test_a_management_cluster_needs_an_engine(tmp_path: Path) -> None:
    from compiler.errors import UserError

    spec = write_spec(tmp_path, {"gitops": {"engineCluster": "management"}})
    with pytest.raises(UserError) as raised:
        compile_site(spec)
    (error,) = raised.value.diagnostics
    assert "spec.gitops.engineCluster" in str(error) and "engine argocd or flux" in str(error)
    assert error.location is not None and error.location.line > 0


def test_sites_that_cannot_share_a_fleet_object_are_named(tmp_path: Path) -> None:
    from compiler import api
    from compiler.errors import UserError

    gitops = {"engine": "flux", "repoURL": "https://git.example.com/a.git"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_spec(tmp_path / "a", {"gitops": gitops}, metadata={"name": "a"})
    other = {**gitops, "repoURL": "https://git.example.com/b.git"}
    second = write_spec(tmp_path / "b", {"gitops": other}, metadata={"name": "b"})
    with pytest.raises(UserError) as raised:
        api.fleet_gitops([first, second], "flux")
    (error,) = raised.value.diagnostics
    assert error.field == "spec.gitops.repoURL" and error.location is not None
    assert error.location.file == str(second) and error.location.line and error.location.col
    written = second.read_text().splitlines()[error.location.line - 1][error.location.col - 1 :]
    assert written.startswith("https://git.example.com/b.git"), str(error)
    assert "https://git.example.com/b.git differs from site a's https://git.example.com/a.git" in str(error)
    with pytest.raises(UserError, match=r"no site deploys with gitops\.engine argocd"):
        api.fleet_gitops([first], "argocd")
