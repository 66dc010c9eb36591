"""cluster/falco-release.yaml: the Falco chart release for Argo CD or Flux, and the
bootstrap objects that make the engine sync output/<site>/cluster."""

from __future__ import annotations

from typing import Any

from compiler.artifacts.cluster import labels
from compiler.emit import yaml_bytes
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
