"""AKS's artifacts: cluster/ and the Falco values like every platform, no node/ files, and a
plan whose own steps are on the Azure side: the event hub, the Blob container the plugin
checkpoints in, and the cluster's diagnostic setting sending the audit log category to the
hub. The Event Hubs namespace, the storage account and the Secrets with the connection
strings are the operator's (their SKU, network rules and keys are not auditc's to choose)."""

from __future__ import annotations

import json
from typing import Any

from compiler import __version__
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.platforms.aks.settings import AksSettings, settings
from compiler.resolve import Resolved
from compiler.templates import render_template


def cluster_id(own: AksSettings) -> str:
    return (
        f"/subscriptions/{own.subscription}/resourceGroups/{own.resource_group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{own.cluster}"
    )


def hub_group(own: AksSettings) -> str:
    return own.event_hub.resource_group or own.resource_group


def rule_id(own: AksSettings) -> str:
    """The namespace's authorization rule the diagnostic setting sends with."""
    hub = own.event_hub
    return (
        f"/subscriptions/{own.subscription}/resourceGroups/{hub_group(own)}"
        f"/providers/Microsoft.EventHub/namespaces/{hub.namespace}/authorizationRules/{hub.authorization_rule}"
    )


def logs(own: AksSettings) -> str:
    """The diagnostic setting's one log category, as `az monitor diagnostic-settings create
    --logs` takes it (JSON)."""
    return json.dumps([{"category": own.category, "enabled": True}], separators=(",", ":"))


def az_steps(resolved: Resolved) -> list[dict[str, Any]]:
    """The Azure side, before Falco. ``reads``: a read-only check (Aks.cloud_state reads
    them for plan and apply); ``cloud``: a change apply makes through az when the setting
    it serves differs."""
    own = settings(resolved.site)
    hub = own.event_hub
    subscription = ["--subscription", own.subscription]
    namespace = [*subscription, "--resource-group", hub_group(own), "--namespace-name", hub.namespace]
    account = [*subscription, "--account-name", own.checkpoint.storage_account, "--auth-mode", "login"]
    container = own.checkpoint.container
    return [
        {
            "action": "check-event-hub",
            "command": [
                "az",
                "eventhubs",
                "eventhub",
                "list",
                *namespace,
                "--query",
                "[].name",
                "--output",
                "tsv",
            ],
            "does": f"list the event hubs of the namespace {hub.namespace} (is {hub.name} there? names "
            "compare without case)",
            "reads": True,
        },
        {
            "action": "create-event-hub",
            "command": ["az", "eventhubs", "eventhub", "create", *namespace, "--name", hub.name],
            "does": f"the event hub {hub.name} (the service's default partition count and retention)",
            "cloud": True,
        },
        {
            "action": "check-checkpoint-container",
            "command": [
                "az",
                "storage",
                "container",
                "exists",
                *account,
                "--name",
                container,
                "--query",
                "exists",
                "--output",
                "tsv",
            ],
            "does": f"whether the Blob container {container} exists",
            "reads": True,
        },
        {
            "action": "create-checkpoint-container",
            "command": ["az", "storage", "container", "create", *account, "--name", container],
            "does": f"the Blob container {container} the plugin keeps its place in the hub in",
            "cloud": True,
        },
        {
            "action": "check-diagnostic-setting",
            "command": [
                "az",
                "monitor",
                "diagnostic-settings",
                "list",
                "--resource",
                cluster_id(own),
                "--query",
                f"[?name=='{own.diagnostic_setting}']",
                "--output",
                "json",
            ],
            "does": f"read the cluster's diagnostic setting {own.diagnostic_setting}",
            "reads": True,
        },
        {
            "action": "diagnostic-setting",
            "command": [
                "az",
                "monitor",
                "diagnostic-settings",
                "create",
                "--name",
                own.diagnostic_setting,
                "--resource",
                cluster_id(own),
                "--event-hub",
                hub.name,
                "--event-hub-rule",
                rule_id(own),
                "--logs",
                logs(own),
            ],
            "does": f"send the cluster's {own.category} log category to the event hub {hub.name} "
            "(create replaces the setting of that name: auditc owns it)",
            "cloud": True,
        },
    ]


def lower(built: Build) -> list[Artifact]:
    resolved = built.resolved
    own = settings(resolved.site)
    pull = resolved.pull
    assert pull is not None
    steps = az_steps(resolved)
    spec = {
        "platform": resolved.platform.name,
        "transport": resolved.platform.data.transport,
        "subscription": own.subscription,
        "resourceGroup": own.resource_group,
        "cluster": own.cluster,
        "auditLog": pull.where,
        "plugin": pull.artifact,
        "secrets": sorted({secret for secret, _ in pull.secret_env.values()}),
        "steps": [],
    }
    # the script creates the diagnostic setting every time (create replaces it with the same
    # values: a no-op when they are), so it needs no read of it
    commands = {str(s["action"]): s["command"] for s in steps if s["action"] != "check-diagnostic-setting"}
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "cluster": own.cluster,
        "where": pull.where,
        "hub": own.event_hub.name,
        "container": own.checkpoint.container,
        "setting": own.diagnostic_setting,
        "category": own.category,
        "hub_name": own.event_hub.name,
        "rule_id": rule_id(own),
        "secrets": spec["secrets"],
        "secret_keys": sorted(set(pull.secret_env.values())),
        "commands": commands,
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/aks/templates/apply.sh.j2", context)
    return [*cluster_artifacts(built), *common.plan_artifacts(built, spec, script, first=steps)]
