"""cluster/: the Kubernetes objects Argo CD or Flux sync (and ``kubectl apply -k`` applies)."""

from __future__ import annotations

import base64
from typing import Any

from compiler.artifacts.falco_values import (
    LEGACY_SERVICE_ACCOUNT,
    MANAGED_BY,
    chart_fullname,
    receiver_service_name,
    service_account_name,
)
from compiler.resolve import Resolved


def labels(resolved: Resolved) -> dict[str, str]:
    return {**resolved.site.metadata.labels, **MANAGED_BY}


def _meta(resolved: Resolved, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(resolved)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace(resolved: Resolved) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(resolved, resolved.site.spec.falco.namespace),
    }


def rbac(resolved: Resolved) -> list[dict[str, Any]]:
    """Least privilege: the k8saudit plugin is a push receiver and reads nothing from the API.

    Legacy Falco (< 0.32) enriches events from the API, so it gets the seed's trio with
    read-only access to what it reads.
    """
    ns = resolved.site.spec.falco.namespace
    meta = _meta(resolved, service_account_name(resolved), ns)
    if resolved.pull is not None and resolved.pull.service_account_annotations:
        # the cloud identity the plugin reads the audit log as (IRSA, Workload Identity)
        meta["annotations"] = dict(sorted(resolved.pull.service_account_annotations.items()))
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if resolved.plugin:
        return [account]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(resolved, "falco-cluster-role"),
        "rules": [
            {
                "apiGroups": ["", "extensions"],
                "resources": [
                    "configmaps",
                    "daemonsets",
                    "deployments",
                    "events",
                    "namespaces",
                    "nodes",
                    "pods",
                    "replicasets",
                    "replicationcontrollers",
                    "services",
                ],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["apps"],
                "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"],
                "verbs": ["get", "list", "watch"],
            },
            {"nonResourceURLs": ["/healthz", "/healthz/*"], "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(resolved, "falco-cluster-role-binding"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "falco-cluster-role",
        },
        "subjects": [{"kind": "ServiceAccount", "name": LEGACY_SERVICE_ACCOUNT, "namespace": ns}],
    }
    return [account, role, binding]


def legacy_service(resolved: Resolved) -> dict[str, Any]:
    """Chart 1.x cannot pin a clusterIP or a NodePort number, so auditc owns the Service."""
    receiver = resolved.receiver
    port: dict[str, Any] = {
        "name": "k8s-audit",
        "port": receiver.port,
        "protocol": "TCP",
        "targetPort": receiver.port,
    }
    spec: dict[str, Any] = {
        "type": receiver.service_type,
        # chart 1.x labels its pods app=<fullname>
        "selector": {"app": chart_fullname(resolved)},
        "ports": [port],
    }
    if receiver.node_port is not None:
        port["nodePort"] = receiver.node_port
    if receiver.cluster_ip:
        spec["clusterIP"] = receiver.cluster_ip
    name = receiver_service_name(resolved)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(resolved, name, resolved.site.spec.falco.namespace),
        "spec": spec,
    }


def audit_sink(resolved: Resolved) -> dict[str, Any]:
    """Dynamic auditing (Kubernetes 1.13..1.18): an AuditSink pointing at the receiver URL."""
    tls = resolved.site.spec.falco.receiver.tls
    throttle = resolved.site.spec.audit.webhook.batch.throttle
    client: dict[str, Any] = {"url": resolved.receiver.url}
    if tls.enabled and tls.ca_file:
        client["caBundle"] = base64.b64encode(resolved.files[tls.ca_file]).decode("ascii")
    return {
        "apiVersion": "auditregistration.k8s.io/v1alpha1",
        "kind": "AuditSink",
        "metadata": _meta(resolved, f"{resolved.site.spec.falco.release_name}-audit-sink"),
        "spec": {
            "policy": {"level": "RequestResponse", "stages": ["ResponseComplete", "ResponseStarted"]},
            "webhook": {"throttle": {"qps": throttle.qps, "burst": throttle.burst}, "clientConfig": client},
        },
    }


def kustomization(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(resources),
    }
