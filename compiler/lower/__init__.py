"""Lowering: one module per platform turns a resolved site into artifacts."""

from __future__ import annotations

from collections.abc import Callable

from compiler.bundle import Artifact
from compiler.lower import kubeadm
from compiler.resolve import Resolved

Lowering = Callable[[Resolved], list[Artifact]]

PLATFORMS: dict[str, Lowering] = {
    "kubeadm": kubeadm.lower,
}


def lower(resolved: Resolved) -> list[Artifact]:
    return PLATFORMS[resolved.site.spec.platform.type](resolved)
