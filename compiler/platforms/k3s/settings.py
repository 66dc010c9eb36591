"""``spec.platform`` for type k3s: the server nodes (k3s runs kube-apiserver inside the
``k3s server`` process), the systemd unit that runs it, and where auditc writes its files."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import Host, NodeFile, NodePath, Port, UnixUser, pattern

# systemd unit names (systemd.unit(5)): the k3s install script makes k3s.service for a server
Unit = Annotated[str, pattern(r"[A-Za-z0-9][A-Za-z0-9:_.@-]{0,250}", "a systemd unit name, e.g. k3s")]


class Server(Model):
    host: Host
    port: Port = 22
    user: UnixUser = "root"


class K3sSettings(Model):
    servers: list[Server] = Field(min_length=1, description="The k3s server nodes, in rollout order")
    service: Unit = Field(default="k3s", description="The systemd unit running `k3s server`")
    config_file: NodeFile = Field(
        default="/etc/rancher/k3s/config.yaml",
        description="k3s's config file (--config / K3S_CONFIG_FILE); drop-ins are in <file>.d/",
    )
    config_dir: NodePath | None = Field(default=None, description="Where the policy and kubeconfig go")


class K3sPlatform(PlatformBlock):
    type: Literal["k3s"]
    k3s: K3sSettings


def settings(site: Site) -> K3sSettings:
    """The site's ``spec.platform.k3s`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, K3sPlatform)
    return block.k3s
