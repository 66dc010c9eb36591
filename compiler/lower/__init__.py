"""Lowering: one module per platform turns a resolved site into artifacts."""

from __future__ import annotations

from collections.abc import Callable

from compiler.build import Build
from compiler.bundle import Artifact
from compiler.errors import Diagnostic, UserError, format_path
from compiler.lower import kubeadm, minikube, pks

Lowering = Callable[[Build], list[Artifact]]

PLATFORMS: dict[str, Lowering] = {
    "kubeadm": kubeadm.lower,
    "minikube": minikube.lower,
    "pks": pks.lower,
}


def lower(built: Build) -> list[Artifact]:
    resolved = built.resolved
    platform = resolved.site.spec.platform.type
    if platform not in PLATFORMS:
        path = ("spec", "platform", "type")
        raise UserError(
            Diagnostic(
                f"platform {platform} is not supported yet by this auditc version: `auditc validate` "
                "checks and lints it, rendering comes with the minikube/pks lowering",
                resolved.doc.location(path),
                format_path(path),
            )
        )
    return PLATFORMS[platform](built)
