"""The platform registry: every platform auditc knows, by ``spec.platform.type``.

A platform is one folder here (see README, "Adding a platform") and one line below.
The spec's tagged union of platform blocks, the list of types in messages and the
schema all come from this table, in this order.
"""

from __future__ import annotations

from functools import cache

from compiler.platform import Platform
from compiler.platforms.aks import AKS
from compiler.platforms.eks import EKS
from compiler.platforms.gke import GKE
from compiler.platforms.k3s import K3S
from compiler.platforms.kubeadm import KUBEADM
from compiler.platforms.minikube import MINIKUBE
from compiler.platforms.pks import PKS
from compiler.platforms.rke2 import RKE2
from compiler.spec.model import Site, site_model

PLATFORMS: dict[str, Platform] = {p.name: p for p in (KUBEADM, MINIKUBE, PKS, K3S, RKE2, EKS, GKE, AKS)}


@cache
def site_schema() -> type[Site]:
    """The ``Site`` model with every registered platform's block."""
    return site_model([p.block for p in PLATFORMS.values()])
