"""``spec.platform`` for type rke2: the server nodes (RKE2 runs kube-apiserver as a static
pod it writes itself), the systemd unit that runs `rke2 server`, and where auditc writes
its files."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import Host, NodeFile, NodePath, Port, UnixUser, pattern

# systemd unit names (systemd.unit(5)): the RKE2 install script makes rke2-server.service
Unit = Annotated[str, pattern(r"[A-Za-z0-9][A-Za-z0-9:_.@-]{0,250}", "a systemd unit name, e.g. rke2-server")]


class Server(Model):
    host: Host
    port: Port = 22
    user: UnixUser = "root"


class Rke2Settings(Model):
    servers: list[Server] = Field(min_length=1, description="The RKE2 server nodes, in rollout order")
    service: Unit = Field(default="rke2-server", description="The systemd unit running `rke2 server`")
    config_file: NodeFile = Field(
        default="/etc/rancher/rke2/config.yaml",
        description="RKE2's config file (--config / RKE2_CONFIG_FILE); drop-ins are in <file>.d/",
    )
    config_dir: NodePath | None = Field(default=None, description="Where the policy and kubeconfig go")


class Rke2Platform(PlatformBlock):
    type: Literal["rke2"]
    rke2: Rke2Settings


def settings(site: Site) -> Rke2Settings:
    """The site's ``spec.platform.rke2`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, Rke2Platform)
    return block.rke2
