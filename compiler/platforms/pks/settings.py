"""``spec.platform`` for type pks (VMware PKS / TKGI): the PKS API, the cluster and how its
kube-apiserver is configured."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import DNSSubdomain, EnvName, Host, NodePath, Version


class PksCredentials(Model):
    user_env: EnvName = "PKS_USER"
    password_env: EnvName = "PKS_PASSWORD"


class PksSettings(Model):
    api: Host = Field(description="PKS/TKGI API host name")
    cluster: DNSSubdomain = Field(description="PKS cluster name")
    version: Version = "1.17"
    apiserver_config: Literal["bpm", "staticPod"] = "bpm"
    config_dir: NodePath | None = None
    skip_ssl_validation: bool = False
    credentials: PksCredentials = Field(default_factory=PksCredentials)
    durable: bool = False


class PksPlatform(PlatformBlock):
    type: Literal["pks"]
    pks: PksSettings


def settings(site: Site) -> PksSettings:
    """The site's ``spec.platform.pks`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, PksPlatform)
    return block.pks
