"""The build stage: every artifact's data, computed once from a resolved site.

``build`` runs each builder exactly once (the audit policy, the Falco chart values, the
kube-apiserver change, the node config files, the platform's own cluster objects) and
reports every problem they find together. Lint, the platform lowerings and the diffs read
the frozen ``Build``; none of them calls a builder again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from compiler.artifacts.apiserver import ApiserverChange, apiserver_change
from compiler.artifacts.audit_policy import CompiledPolicy, compile_policy
from compiler.artifacts.falco_values import falco_values
from compiler.artifacts.webhook import webhook_kubeconfig
from compiler.emit import yaml_bytes
from compiler.errors import Diagnostic, UserError
from compiler.resolve import Resolved

T = TypeVar("T")


@dataclass(frozen=True)
class Build:
    resolved: Resolved
    policy: CompiledPolicy
    values: dict[str, Any]  # helm/falco-values.yaml
    apiserver: ApiserverChange | None  # the kube-apiserver flags and volumes auditc owns; None: managed
    node_files: dict[str, bytes]  # installed into the node config dir, by file name (none: managed)
    extra: list[tuple[str, list[dict[str, Any]]]]  # the platform's own cluster/ files (name, objects)

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def change(self) -> ApiserverChange:
        """The apiserver change of a self-managed site (the node layer reads only those)."""
        assert self.apiserver is not None, f"site {self.name} has no apiserver of its own"
        return self.apiserver


def build(resolved: Resolved) -> Build:
    problems: list[Diagnostic] = []

    def attempt(builder: Callable[[Resolved], T]) -> T | None:
        try:
            return builder(resolved)
        except UserError as exc:
            problems.extend(exc.diagnostics)
            return None

    change = None if resolved.managed else attempt(apiserver_change)
    values = attempt(falco_values)
    policy = attempt(compile_policy)
    extra = attempt(resolved.platform.cluster_objects)
    if problems or values is None or policy is None or extra is None:
        raise UserError(problems)
    if resolved.managed:
        return Build(resolved, policy, values, None, {}, extra)
    if change is None:
        raise UserError(problems)
    node_files = {"audit-policy.yaml": yaml_bytes(policy.document)}
    if resolved.site.spec.audit.webhook.enabled:
        node_files["audit-webhook.kubeconfig"] = yaml_bytes(webhook_kubeconfig(resolved))
    return Build(resolved, policy, values, change, node_files, extra)
