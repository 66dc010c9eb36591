"""``spec.platform`` for type aks: the cluster (subscription, resource group, name), the
Event Hub its diagnostic setting sends the audit log to, the Blob container the plugin
keeps its checkpoints in, and the Secrets holding the two connection strings (auditc never
sees one)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import DNSSubdomain, pattern

# Azure's own naming rules (Azure Resource Manager, "Naming rules and restrictions for
# Azure resources": resource groups, AKS clusters, Event Hubs namespaces and event hubs,
# storage accounts and Blob containers; diagnostic setting names)
SubscriptionId = Annotated[
    str,
    pattern(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "an Azure subscription id (a GUID)",
    ),
]
ResourceGroup = Annotated[
    str,
    pattern(r"[-\w.()]{0,89}[-\w()]", "a resource group name: 1..90 of letters, digits, '_', '-', '.', '()'"),
]
ClusterName = Annotated[
    str,
    pattern(
        r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?",
        "an AKS cluster name: 1..63 letters, digits, '-' or '_', starting and ending with a letter or digit",
    ),
]
NamespaceName = Annotated[
    str,
    pattern(
        r"[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]",
        "an Event Hubs namespace name: 6..50 letters, digits or '-', starting with a letter",
    ),
]
HubName = Annotated[
    str,
    pattern(
        r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?",
        "an event hub name: 1..256 letters, digits, '.', '-' or '_', alphanumeric at both ends",
    ),
]
RuleName = Annotated[
    str, pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}", "an authorization rule name: 1..50 of [A-Za-z0-9._-]")
]
StorageAccount = Annotated[
    str, pattern(r"[a-z0-9]{3,24}", "a storage account name: 3..24 lowercase letters or digits")
]
ContainerName = Annotated[
    str,
    pattern(
        r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        "a Blob container name: 3..63 lowercase letters, digits or single '-'",
    ),
]
SettingName = Annotated[
    str, pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,259}", "a diagnostic setting name: 1..260 of [A-Za-z0-9_.-]")
]
SecretKeyName = Annotated[str, pattern(r"[-._a-zA-Z0-9]{1,253}", "a Secret key: 1..253 of [-._a-zA-Z0-9]")]


class SecretKey(Model):
    """A key of a Secret in Falco's namespace; its value reaches Falco's environment only."""

    name: DNSSubdomain
    key: SecretKeyName


class EventHub(Model):
    namespace: NamespaceName
    name: HubName
    resource_group: ResourceGroup | None = Field(default=None, description="Default: the cluster's")
    authorization_rule: RuleName = Field(
        default="RootManageSharedAccessKey",
        description="The namespace's rule the diagnostic setting sends with (it needs Send)",
    )
    connection_secret: SecretKey = Field(
        description="The namespace connection string the plugin reads with (it needs Listen)"
    )


class Checkpoint(Model):
    storage_account: StorageAccount
    container: ContainerName
    connection_secret: SecretKey = Field(description="The storage account's connection string")


class AksSettings(Model):
    subscription: SubscriptionId
    resource_group: ResourceGroup
    cluster: ClusterName
    category: Literal["kube-audit", "kube-audit-admin"] = Field(
        default="kube-audit",
        description="kube-audit: every audit event; kube-audit-admin: without get and list (cheaper)",
    )
    diagnostic_setting: SettingName = "falco-audit"
    event_hub: EventHub
    checkpoint: Checkpoint


class AksPlatform(PlatformBlock):
    type: Literal["aks"]
    aks: AksSettings


def settings(site: Site) -> AksSettings:
    """The site's ``spec.platform.aks`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, AksPlatform)
    return block.aks
