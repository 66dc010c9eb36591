"""``spec.platform`` for type eks: the cluster, its region, and the AWS identity Falco reads
the audit log as."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import pattern

# the EKS API's own rules (CreateCluster: name 1-100 characters, ^[0-9A-Za-z][A-Za-z0-9\-_]*$)
ClusterName = Annotated[
    str,
    pattern(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", "an EKS cluster name: 1..100 letters, digits, '-' or '_'"),
]
Region = Annotated[str, pattern(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]", "an AWS region, e.g. eu-west-1")]
RoleArn = Annotated[
    str,
    pattern(
        r"arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}",
        "an IAM role ARN, e.g. arn:aws:iam::123456789012:role/falco-audit",
    ),
]


class EksIdentity(Model):
    """The IAM role the plugin reads CloudWatch Logs as (its policy: logs:Describe*,
    logs:FilterLogEvents, logs:Get*, logs:List* on the cluster's log group)."""

    mode: Literal["irsa", "podIdentity"] = Field(
        description="irsa: the role's ARN on the ServiceAccount (eks.amazonaws.com/role-arn); "
        "podIdentity: an EKS Pod Identity association the plan creates"
    )
    role_arn: RoleArn


class EksSettings(Model):
    cluster_name: ClusterName
    region: Region
    identity: EksIdentity


class EksPlatform(PlatformBlock):
    type: Literal["eks"]
    eks: EksSettings


def settings(site: Site) -> EksSettings:
    """The site's ``spec.platform.eks`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, EksPlatform)
    return block.eks
