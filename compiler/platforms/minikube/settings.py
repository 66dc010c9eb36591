"""``spec.platform`` for type minikube: the profile auditc starts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import DNSLabel


class MinikubeSettings(Model):
    profile: DNSLabel = "minikube"


class MinikubePlatform(PlatformBlock):
    type: Literal["minikube"]
    minikube: MinikubeSettings = Field(default_factory=MinikubeSettings)


def settings(site: Site) -> MinikubeSettings:
    """The site's ``spec.platform.minikube`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, MinikubePlatform)
    return block.minikube
