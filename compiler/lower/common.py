"""What every platform renders the same way: cluster/, helm/ and the node config files."""

from __future__ import annotations

from typing import Any

from compiler.artifacts import cluster, gitops
from compiler.artifacts.audit_policy import build_policy
from compiler.artifacts.falco_values import falco_values
from compiler.artifacts.webhook import webhook_kubeconfig
from compiler.bundle import Artifact
from compiler.emit import yaml_bytes, yaml_documents_bytes
from compiler.resolve import Resolved


def cluster_artifacts(
    resolved: Resolved, extra: list[tuple[str, list[dict[str, Any]]]] | None = None
) -> list[Artifact]:
    values = falco_values(resolved)
    files: list[tuple[str, list[dict[str, Any]]]] = [
        ("namespace.yaml", [cluster.namespace(resolved)]),
        ("rbac.yaml", cluster.rbac(resolved)),
    ]
    if not resolved.plugin:
        files.append(("service.yaml", [cluster.legacy_service(resolved)]))
    if resolved.site.spec.audit.dynamic:
        files.append(("audit-sink.yaml", [cluster.audit_sink(resolved)]))
    files += extra or []
    release = gitops.falco_release(resolved, values)
    if release:
        files.append(("falco-release.yaml", release))
    out = [Artifact(f"cluster/{name}", yaml_documents_bytes(docs)) for name, docs in files]
    kustomization = cluster.kustomization([name for name, _ in files])
    out.append(Artifact("cluster/kustomization.yaml", yaml_bytes(kustomization)))
    out.append(Artifact("helm/falco-values.yaml", yaml_bytes(values)))
    return out


def node_config_files(resolved: Resolved) -> dict[str, bytes]:
    """The files installed into the node config dir (the webhook kubeconfig only with a webhook)."""
    files = {"audit-policy.yaml": yaml_bytes(build_policy(resolved))}
    if resolved.site.spec.audit.webhook.enabled:
        files["audit-webhook.kubeconfig"] = yaml_bytes(webhook_kubeconfig(resolved))
    return files


def plan_document(resolved: Resolved, spec: dict[str, Any]) -> dict[str, Any]:
    """plan/plan.yaml around a platform's steps, with the GitOps bootstrap objects if any."""
    boot = gitops.bootstrap(resolved)
    if boot:
        spec = {**spec, "gitopsBootstrap": boot}
    meta = {"name": resolved.name}
    return {"apiVersion": "auditc.dev/v1alpha1", "kind": "Plan", "metadata": meta, "spec": spec}
