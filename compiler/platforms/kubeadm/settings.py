"""``spec.platform`` for type kubeadm: the control-plane hosts and where their files are."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import Host, NodeFile, NodePath, Port, UnixUser


class ControlPlane(Model):
    host: Host
    port: Port = 22
    user: UnixUser = "root"


class KubeadmSettings(Model):
    control_planes: list[ControlPlane] = Field(min_length=1)
    manifest_path: NodeFile | None = None
    config_dir: NodePath | None = None


class KubeadmPlatform(PlatformBlock):
    type: Literal["kubeadm"]
    kubeadm: KubeadmSettings


def settings(site: Site) -> KubeadmSettings:
    """The site's ``spec.platform.kubeadm`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, KubeadmPlatform)
    return block.kubeadm
