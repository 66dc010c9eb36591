"""The Falco chart release for Argo CD or Flux (cluster/falco-release.yaml, or
management/falco-release.yaml when the engine runs in a management cluster), the bootstrap
objects that make the engine sync output/<site>/, and the fleet's objects."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from compiler.artifacts.cluster import labels
from compiler.emit import yaml_bytes
from compiler.errors import Diagnostic, UserError, format_path
from compiler.order import site_order
from compiler.resolve import Resolved

# Flux HelmRepository names for the chart repositories auditc knows; a mirror gets the last,
# with a digest of its URL (sites of two mirrors that share a management cluster keep two)
HELM_REPOSITORY_NAMES = {"falcosecurity": "falcosecurity", "stable": "helm-stable", None: "falco-charts"}
# where Argo CD puts the objects of its own cluster (the management cluster's Applications)
IN_CLUSTER = "https://kubernetes.default.svc"
MANAGEMENT = "management"  # output/<site>/management: what the management cluster applies
ENGINE_NAMES = {"argocd": "Argo CD", "flux": "Flux"}  # gitops.engine as people write it


def from_management(resolved: Resolved) -> bool:
    """The engine runs in a management cluster and deploys to the site's: the release
    object lives there (output/<site>/management), cluster/ holds the site's objects only."""
    gitops = resolved.site.spec.gitops
    return gitops.engine != "none" and gitops.engine_cluster == MANAGEMENT


def kubeconfig_secret(site: str) -> str:
    """Flux in a management cluster: the Secret (in Flux's namespace) holding the site's kubeconfig."""
    return f"auditc-{site}-kubeconfig"


def falco_release(resolved: Resolved, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The object(s) that deploy the chart. From a management cluster, Flux's HelmRepository
    is not among them: every site there shares it (one index download, not one a site),
    and the bootstrap or the fleet's objects carry it."""
    engine = resolved.site.spec.gitops.engine
    if engine == "argocd":
        return [_argocd(resolved, values)]
    if engine == "flux":
        repository, release = _flux(resolved, values)
        return [release] if from_management(resolved) else [repository, release]
    return []


def in_cluster(server: str) -> bool:
    """``server`` is Argo CD's own cluster, however written (Argo CD trims a trailing slash,
    argoproj/argo-cd#4037; 443 is https's port)."""
    url = server.rstrip("/").lower()
    return url.removesuffix(":443") == IN_CLUSTER


def _site_destination(resolved: Resolved) -> dict[str, str]:
    """Where Argo CD deploys the site's objects and the chart: its destinationServer, or,
    from a management cluster, unless destinationServer names another cluster than Argo
    CD's own, the cluster registered in Argo CD under the site's name."""
    server = resolved.site.spec.gitops.argocd.destination_server
    if from_management(resolved) and in_cluster(server):
        return {"name": resolved.name}
    return {"server": server}


def _argocd(resolved: Resolved, values: dict[str, Any]) -> dict[str, Any]:
    falco = resolved.site.spec.falco
    argo = resolved.site.spec.gitops.argocd
    chart = resolved.target.chart
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": f"{resolved.name}-{falco.release_name}",
            "namespace": argo.namespace,
            "labels": labels(resolved),
        },
        "spec": {
            "project": argo.project,
            "source": {
                "repoURL": chart.repository,
                "chart": chart.name,
                "targetRevision": chart.version,
                # `values` (a string) works on every Argo CD; `valuesObject` exists only from
                # v2.8.0, and older CRDs prune it silently (the chart then installs its defaults)
                "helm": {"releaseName": falco.release_name, "values": yaml_bytes(values).decode("utf-8")},
            },
            "destination": {**_site_destination(resolved), "namespace": falco.namespace},
            "syncPolicy": _sync_policy(resolved),
        },
    }


def _sync_policy(resolved: Resolved) -> dict[str, Any]:
    # without automated sync the Application waits for someone to press sync
    policy: dict[str, Any] = {"automated": {"prune": True, "selfHeal": True}}
    if from_management(resolved):
        # the Application syncing cluster/ (the namespace) runs beside this one, in no order
        policy["syncOptions"] = ["CreateNamespace=true"]
    return policy


def _flux(resolved: Resolved, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    falco = resolved.site.spec.falco
    flux = resolved.site.spec.gitops.flux
    chart = resolved.target.chart
    repo_name = HELM_REPOSITORY_NAMES[chart.repository_key]
    if chart.repository_key is None:
        repo_name += "-" + hashlib.sha256(chart.repository.encode("utf-8")).hexdigest()[:8]
    repository = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": repo_name, "namespace": flux.namespace, "labels": labels(resolved)},
        "spec": {"url": chart.repository, "interval": flux.interval},
    }
    release: dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": f"{resolved.name}-{falco.release_name}",
            "namespace": flux.namespace,
            "labels": labels(resolved),
        },
        "spec": {
            "interval": flux.interval,
            "releaseName": falco.release_name,
            "targetNamespace": falco.namespace,
            "chart": {
                "spec": {
                    "chart": chart.name,
                    "version": chart.version,
                    "sourceRef": {"kind": "HelmRepository", "name": repo_name, "namespace": flux.namespace},
                }
            },
            "values": values,
        },
    }
    if from_management(resolved):
        # Helm keeps its release records in the site's cluster, in the HelmRelease's own
        # namespace unless told: flux-system, which the site's cluster may not have
        release["spec"] |= {
            "kubeConfig": {"secretRef": {"name": kubeconfig_secret(resolved.name)}},
            "storageNamespace": falco.namespace,
        }
    return repository, release


def helm_repository(resolved: Resolved) -> dict[str, Any]:
    """Flux's HelmRepository of the site's chart, without the site's labels (shared)."""
    repository = _flux(resolved, {})[0]
    return {**repository, "metadata": {k: v for k, v in repository["metadata"].items() if k != "labels"}}


def sync_path(resolved: Resolved) -> str:
    """The path in gitops.repoURL the engine syncs into the site's cluster."""
    return resolved.site.spec.gitops.path or f"output/{resolved.name}/cluster"


def management_path(resolved: Resolved) -> str:
    """From a management cluster: the path it syncs into itself (the release object),
    beside the one it syncs into the site's cluster."""
    return str(PurePosixPath(sync_path(resolved)).parent / MANAGEMENT)


def bootstrap(resolved: Resolved) -> list[dict[str, Any]]:
    """The object(s) a cluster admin applies once where the engine runs so that it syncs
    output/<site>/cluster into the site's cluster (and, from a management cluster,
    output/<site>/management into its own)."""
    gitops = resolved.site.spec.gitops
    name = f"auditc-{resolved.name}"
    if gitops.engine == "argocd":
        apps = [_argocd_sync(resolved, name, sync_path(resolved), _site_destination(resolved))]
        if from_management(resolved):
            own = {"server": IN_CLUSTER, "namespace": gitops.argocd.namespace}
            apps.append(_argocd_sync(resolved, f"{name}-{MANAGEMENT}", management_path(resolved), own))
        return apps
    if gitops.engine == "flux":
        source = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": gitops.flux.namespace},
            "spec": {
                "url": gitops.repo_url,
                "interval": gitops.flux.interval,
                "ref": {"branch": gitops.target_revision},
            },
        }
        if not from_management(resolved):
            return [source, _flux_sync(resolved, name, name)]
        return [source, helm_repository(resolved), *_flux_syncs(resolved, name)]
    return []


def _argocd_sync(resolved: Resolved, name: str, path: str, destination: dict[str, str]) -> dict[str, Any]:
    gitops = resolved.site.spec.gitops
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": gitops.argocd.namespace},
        "spec": {
            "project": gitops.argocd.project,
            "source": {"repoURL": gitops.repo_url, "targetRevision": gitops.target_revision, "path": path},
            "destination": destination,
            # like the Flux Kustomization: keep the cluster in sync with output/ in git
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def _flux_sync(resolved: Resolved, name: str, source: str, path: str | None = None) -> dict[str, Any]:
    """A Kustomization applying ``path`` (default: cluster/) from the GitRepository ``source``."""
    flux = resolved.site.spec.gitops.flux
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": flux.namespace},
        "spec": {
            "interval": flux.interval,
            "path": f"./{path or sync_path(resolved)}",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": source},
        },
    }


def _flux_syncs(resolved: Resolved, source: str) -> list[dict[str, Any]]:
    """From a management cluster: cluster/ applied to the site's cluster through its
    kubeconfig, then management/ (the HelmRelease) into the management cluster once the
    site's namespace and service account are there."""
    name = f"auditc-{resolved.name}"
    site = _flux_sync(resolved, name, source)
    site["spec"]["kubeConfig"] = {"secretRef": {"name": kubeconfig_secret(resolved.name)}}
    own = _flux_sync(resolved, f"{name}-{MANAGEMENT}", source, management_path(resolved))
    own["spec"]["dependsOn"] = [{"name": name}]
    return [site, own]


FLEET_NAME = "auditc-fleet"


def fleet(sites: list[Resolved], engine: str) -> list[dict[str, Any]]:
    """One engine's objects for a whole fleet, run from a management cluster, instead of one
    bootstrap per site. Argo CD: an ApplicationSet whose git generator lists the Argo CD
    sites' output/<site>/cluster directories and makes an Application per site, deployed to
    the Argo CD cluster registered under the site's name, and one more over the
    output/<site>/management directories of the sites with engineCluster: management, synced
    into the management cluster itself. Flux: one GitRepository for all the sites, a
    Kustomization per site applied through the kubeconfig in the Secret
    auditc-<site>-kubeconfig, and for engineCluster: management the shared HelmRepositories
    and a Kustomization per site for management/. The sites must agree on the repository and
    revision (and the engine's settings); UserError says which do not."""
    chosen = sorted(
        (r for r in sites if r.site.spec.gitops.engine == engine), key=lambda r: site_order(r.name)
    )
    if not chosen:
        raise UserError(f"no site deploys with gitops.engine {engine}")
    first = chosen[0].site.spec.gitops
    odd = [d for r in chosen[1:] if (d := _differs(r, chosen[0], engine)) is not None]
    odd += [
        _at(r, ("gitops", "path"), "the fleet objects sync output/<site>/cluster")
        for r in chosen
        if r.site.spec.gitops.path
    ]
    if odd:
        raise UserError(odd)
    managed = [r for r in chosen if from_management(r)]
    if engine == "argocd":
        aimed = [r for r in managed if "server" in _site_destination(r)]
        if aimed:
            why = "the fleet deploys each site to the cluster registered in Argo CD under its name"
            raise UserError([_at(r, ("gitops", "argocd", "destinationServer"), why) for r in aimed])
        site = "{{index .path.segments 1}}"  # output/<site>/cluster
        sets = [_application_set(first, FLEET_NAME, chosen, sync_path, f"auditc-{site}", {"name": site})]
        if managed:
            own = {"server": IN_CLUSTER, "namespace": first.argocd.namespace}
            name = f"auditc-{site}-{MANAGEMENT}"
            sets.append(
                _application_set(first, f"{FLEET_NAME}-{MANAGEMENT}", managed, management_path, name, own)
            )
        return sets
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": FLEET_NAME, "namespace": first.flux.namespace},
        "spec": {
            "url": first.repo_url,
            "interval": first.flux.interval,
            "ref": {"branch": first.target_revision},
        },
    }
    repositories = {str(repo["metadata"]["name"]): repo for repo in map(helm_repository, managed)}
    syncs: list[dict[str, Any]] = []
    for resolved in chosen:
        if from_management(resolved):
            syncs += _flux_syncs(resolved, FLEET_NAME)
        else:  # the site runs Flux too and reconciles its own release: cluster/ reaches it the same way
            sync = _flux_sync(resolved, f"auditc-{resolved.name}", FLEET_NAME)
            sync["spec"]["kubeConfig"] = {"secretRef": {"name": kubeconfig_secret(resolved.name)}}
            syncs.append(sync)
    return [source, *(repositories[name] for name in sorted(repositories)), *syncs]


# what one fleet object holds for all the sites of its engine
SHARED = {
    "argocd": (("repoURL",), ("targetRevision",), ("argocd", "namespace"), ("argocd", "project")),
    "flux": (("repoURL",), ("targetRevision",), ("flux", "namespace"), ("flux", "interval")),
}


def _setting(resolved: Resolved, path: tuple[str, ...]) -> object:
    """The value of spec.gitops.<path>, the path as the spec writes it."""
    node: Any = resolved.site.spec.gitops.model_dump(by_alias=True)
    for part in path:
        node = node[part]
    return node


def _differs(resolved: Resolved, first: Resolved, engine: str) -> Diagnostic | None:
    """Where ``resolved`` writes a setting the fleet object shares other than ``first`` does."""
    for path in SHARED[engine]:
        mine, theirs = _setting(resolved, path), _setting(first, path)
        if mine != theirs:
            why = f"{mine} differs from site {first.name}'s {theirs}: the fleet object holds one for all"
            return _at(resolved, ("gitops", *path), why)
    return None


def _at(resolved: Resolved, path: tuple[str, ...], message: str) -> Diagnostic:
    """An error about the site's spec.<path>, at the line that writes it (or its nearest parent)."""
    where = ("spec", *path)
    return Diagnostic(message, resolved.doc.location(where), field=format_path(where))


def _application_set(
    gitops: Any,
    name: str,
    sites: list[Resolved],
    path: Callable[[Resolved], str],
    application: str,
    destination: dict[str, str],
) -> dict[str, Any]:
    """An ApplicationSet whose git generator lists ``path`` of each site (not a glob: a site
    of another engine, or none, is not Argo CD's to sync)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": gitops.argocd.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {
                    "git": {
                        "repoURL": gitops.repo_url,
                        "revision": gitops.target_revision,
                        "directories": [{"path": path(r)} for r in sites],
                    }
                }
            ],
            "template": {
                "metadata": {"name": application},
                "spec": {
                    "project": gitops.argocd.project,
                    "source": {
                        "repoURL": gitops.repo_url,
                        "targetRevision": gitops.target_revision,
                        "path": "{{.path.path}}",
                    },
                    "destination": destination,
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            },
        },
    }
