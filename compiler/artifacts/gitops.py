"""cluster/falco-release.yaml: the Falco chart release for Argo CD or Flux, and the
bootstrap objects that make the engine sync output/<site>/cluster."""

from __future__ import annotations

from typing import Any

from compiler.artifacts.cluster import labels
from compiler.emit import yaml_bytes
from compiler.errors import UserError
from compiler.resolve import Resolved

# Flux HelmRepository names for the chart repositories auditc knows; a mirror gets the last
HELM_REPOSITORY_NAMES = {"falcosecurity": "falcosecurity", "stable": "helm-stable", None: "falco-charts"}


def falco_release(resolved: Resolved, values: dict[str, Any]) -> list[dict[str, Any]]:
    engine = resolved.site.spec.gitops.engine
    if engine == "argocd":
        return [_argocd(resolved, values)]
    if engine == "flux":
        return _flux(resolved, values)
    return []


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
            "destination": {"server": argo.destination_server, "namespace": falco.namespace},
            # without it the Application waits for someone to press sync
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def _flux(resolved: Resolved, values: dict[str, Any]) -> list[dict[str, Any]]:
    falco = resolved.site.spec.falco
    flux = resolved.site.spec.gitops.flux
    chart = resolved.target.chart
    repo_name = HELM_REPOSITORY_NAMES[chart.repository_key]
    repository = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": repo_name, "namespace": flux.namespace, "labels": labels(resolved)},
        "spec": {"url": chart.repository, "interval": flux.interval},
    }
    release = {
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
    return [repository, release]


def sync_path(resolved: Resolved) -> str:
    """The path in gitops.repoURL the engine syncs."""
    return resolved.site.spec.gitops.path or f"output/{resolved.name}/cluster"


def bootstrap(resolved: Resolved) -> list[dict[str, Any]]:
    """The object(s) a cluster admin applies once so the engine syncs output/<site>/cluster."""
    gitops = resolved.site.spec.gitops
    path = sync_path(resolved)
    if gitops.engine == "argocd":
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"auditc-{resolved.name}", "namespace": gitops.argocd.namespace},
            "spec": {
                "project": gitops.argocd.project,
                "source": {
                    "repoURL": gitops.repo_url,
                    "targetRevision": gitops.target_revision,
                    "path": path,
                },
                "destination": {"server": gitops.argocd.destination_server},
                # like the Flux Kustomization: keep the cluster in sync with output/ in git
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
        }
        return [app]
    if gitops.engine == "flux":
        source = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": f"auditc-{resolved.name}", "namespace": gitops.flux.namespace},
            "spec": {
                "url": gitops.repo_url,
                "interval": gitops.flux.interval,
                "ref": {"branch": gitops.target_revision},
            },
        }
        sync = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": f"auditc-{resolved.name}", "namespace": gitops.flux.namespace},
            "spec": {
                "interval": gitops.flux.interval,
                "path": f"./{path}",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": f"auditc-{resolved.name}"},
            },
        }
        return [source, sync]
    return []


FLEET_NAME = "auditc-fleet"


def fleet(sites: list[Resolved], engine: str) -> list[dict[str, Any]]:
    """One engine's objects for a whole fleet, run from a management cluster, instead of one
    bootstrap per site. Argo CD: one ApplicationSet whose git generator lists the Argo CD
    sites' output/<site>/cluster directories and makes an Application per site, deployed
    to the Argo CD cluster registered under the site's name. Flux: one GitRepository for all the sites and
    a Kustomization per site, applied through the kubeconfig in the Secret
    auditc-<site>-kubeconfig. The sites must agree on the repository and revision (and, for
    Argo CD, the namespace and project); UserError says which do not."""
    chosen = [r for r in sites if r.site.spec.gitops.engine == engine]
    if not chosen:
        raise UserError(f"no site deploys with gitops.engine {engine}")
    first = chosen[0].site.spec.gitops

    def shared(resolved: Resolved) -> tuple[object, ...]:
        g = resolved.site.spec.gitops
        if engine == "argocd":
            return (g.repo_url, g.target_revision, g.argocd.namespace, g.argocd.project)
        return (g.repo_url, g.target_revision, g.flux.namespace, g.flux.interval)

    odd = [r.name for r in chosen if shared(r) != shared(chosen[0])]
    if odd:
        raise UserError(
            f"the {engine} sites must share repoURL, targetRevision and the {engine} settings for one "
            f"fleet object; these differ from {chosen[0].name}: {', '.join(odd)}"
        )
    custom = [r.name for r in chosen if r.site.spec.gitops.path]
    if custom:
        raise UserError(
            f"gitops.path is set for {', '.join(custom)}: the fleet objects sync output/<site>/cluster"
        )
    if engine == "argocd":
        site = "{{index .path.segments 1}}"  # output/<site>/cluster
        return [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet",
                "metadata": {"name": FLEET_NAME, "namespace": first.argocd.namespace},
                "spec": {
                    "goTemplate": True,
                    "goTemplateOptions": ["missingkey=error"],
                    "generators": [
                        {
                            "git": {
                                "repoURL": first.repo_url,
                                "revision": first.target_revision,
                                # the Argo CD sites' directories, not output/*/cluster: a
                                # site of another engine (or none) is not Argo CD's to sync
                                "directories": [
                                    {"path": sync_path(r)} for r in sorted(chosen, key=lambda r: r.name)
                                ],
                            }
                        }
                    ],
                    "template": {
                        "metadata": {"name": f"auditc-{site}"},
                        "spec": {
                            "project": first.argocd.project,
                            "source": {
                                "repoURL": first.repo_url,
                                "targetRevision": first.target_revision,
                                "path": "{{.path.path}}",
                            },
                            "destination": {"name": site},
                            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                        },
                    },
                },
            }
        ]
    namespace, interval = first.flux.namespace, first.flux.interval
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": FLEET_NAME, "namespace": namespace},
        "spec": {"url": first.repo_url, "interval": interval, "ref": {"branch": first.target_revision}},
    }
    syncs = [
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": f"auditc-{r.name}", "namespace": namespace},
            "spec": {
                "interval": interval,
                "path": f"./{sync_path(r)}",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": FLEET_NAME},
                "kubeConfig": {"secretRef": {"name": f"auditc-{r.name}-kubeconfig"}},
            },
        }
        for r in sorted(chosen, key=lambda r: r.name)
    ]
    return [source, *syncs]
