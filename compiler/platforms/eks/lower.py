"""EKS's artifacts: cluster/ and the Falco values like every platform, no node/ files, and a
plan whose own steps are on the AWS side: the `audit` control-plane log type on, and with
EKS Pod Identity the association of the role with Falco's ServiceAccount."""

from __future__ import annotations

import json
from typing import Any

from compiler import __version__
from compiler.artifacts.falco_values import service_account_name
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.platforms.eks.settings import EksSettings, settings
from compiler.resolve import Resolved
from compiler.templates import render_template

# UpdateClusterConfig changes only the log types it lists (AWS EKS API reference)
AUDIT_LOGGING = json.dumps({"clusterLogging": [{"types": ["audit"], "enabled": True}]}, separators=(",", ":"))
UPDATE_ID = "<update-id>"  # update-cluster-config's answer, what describe-update reads
ASSOCIATION_ID = "<association-id>"  # the existing Pod Identity association (Eks.cloud_state)
UPDATE_POLL = 10  # seconds between two reads of an update's status in plan/apply.sh


def _where(own: EksSettings) -> list[str]:
    return ["--region", own.region]


def aws_steps(resolved: Resolved) -> list[dict[str, Any]]:
    """The AWS side, before Falco: it reads nothing until AWS writes the log. ``reads``: a
    read-only check (plan and apply have read it already, Eks.cloud_state); ``cloud``: a
    change apply makes through the aws CLI when the setting it serves differs; ``answers``:
    the placeholder its output fills in later steps; ``until``: apply runs the command
    again until it prints that (AWS applies cluster updates asynchronously)."""
    own = settings(resolved.site)
    cluster = [*_where(own), "--name", own.cluster_name]
    steps: list[dict[str, Any]] = [
        {
            "action": "check-audit-log",
            "command": [
                "aws",
                "eks",
                "describe-cluster",
                *cluster,
                "--query",
                "cluster.logging.clusterLogging[?enabled].types[]",
                "--output",
                "text",
            ],
            "does": "read which control-plane log types are on (nothing more to do when audit is)",
            "reads": True,
        },
        {
            "action": "enable-audit-log",
            "command": [
                "aws",
                "eks",
                "update-cluster-config",
                *cluster,
                "--logging",
                AUDIT_LOGGING,
                "--query",
                "update.id",
                "--output",
                "text",
            ],
            "does": "turn on the audit log type (the other types stay as they are); "
            "AWS then writes the audit log to CloudWatch Logs /aws/eks/" + own.cluster_name + "/cluster",
            "cloud": True,
            "answers": UPDATE_ID,
        },
        {
            "action": "wait-for-audit-log",
            "command": [
                "aws",
                "eks",
                "describe-update",
                *cluster,
                "--update-id",
                UPDATE_ID,
                "--query",
                "update.status",
                "--output",
                "text",
            ],
            "does": "read the update's status until AWS reports it Successful (cluster updates "
            "take a few minutes; Failed or Cancelled stops)",
            "cloud": True,
            "until": "Successful",
            "while": "InProgress",
        },
    ]
    if own.identity.mode == "podIdentity":
        steps += _pod_identity_steps(resolved, own)
    return steps


def _pod_identity_steps(resolved: Resolved, own: EksSettings) -> list[dict[str, Any]]:
    namespace = resolved.site.spec.falco.namespace
    account = service_account_name(resolved)
    cluster = [*_where(own), "--cluster-name", own.cluster_name]
    association = [*cluster, "--association-id", ASSOCIATION_ID]
    return [
        {
            "action": "check-pod-identity",
            "command": [
                "aws",
                "eks",
                "list-pod-identity-associations",
                *cluster,
                "--namespace",
                namespace,
                "--service-account",
                account,
                "--query",
                "associations[].associationId",
                "--output",
                "text",
            ],
            "does": "find an existing association of Falco's ServiceAccount",
            "reads": True,
        },
        {
            "action": "check-pod-identity-role",
            "command": [
                "aws",
                "eks",
                "describe-pod-identity-association",
                *association,
                "--query",
                "association.roleArn",
                "--output",
                "text",
            ],
            "does": "read the role an existing association gives",
            "reads": True,
        },
        {
            "action": "pod-identity",
            "command": [
                "aws",
                "eks",
                "create-pod-identity-association",
                *cluster,
                "--namespace",
                namespace,
                "--service-account",
                account,
                "--role-arn",
                own.identity.role_arn,
            ],
            "does": f"let {namespace}/{account} act as the role that may read the log group "
            "(when no association exists)",
            "cloud": True,
        },
        {
            "action": "update-pod-identity",
            "command": [
                "aws",
                "eks",
                "update-pod-identity-association",
                *association,
                "--role-arn",
                own.identity.role_arn,
            ],
            "does": "give the existing association the rendered role (when it gives another); "
            "Falco's pods restart with it (their template names the role)",
            "cloud": True,
        },
    ]


def lower(built: Build) -> list[Artifact]:
    resolved = built.resolved
    own = settings(resolved.site)
    pull = resolved.pull
    assert pull is not None
    out = cluster_artifacts(built)
    steps = aws_steps(resolved)
    spec = {
        "platform": resolved.platform.name,
        "transport": resolved.platform.data.transport,
        "cluster": own.cluster_name,
        "region": own.region,
        "auditLog": pull.where,
        "plugin": pull.artifact,
        "steps": [],
    }
    by_action = {step["action"]: step["command"] for step in steps}
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "cluster": own.cluster_name,
        "region": own.region,
        "where": pull.where,
        "check_audit": by_action["check-audit-log"],
        "enable_audit": by_action["enable-audit-log"],
        "wait_update": by_action["wait-for-audit-log"],
        "update_id": UPDATE_ID,
        "update_poll": UPDATE_POLL,
        "check_identity": by_action.get("check-pod-identity", []),
        "check_role": by_action.get("check-pod-identity-role", []),
        "create_identity": by_action.get("pod-identity", []),
        "update_identity": by_action.get("update-pod-identity", []),
        "association_id": ASSOCIATION_ID,
        "role_arn": own.identity.role_arn if own.identity.mode == "podIdentity" else "",
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/eks/templates/apply.sh.j2", context)
    return [*out, *common.plan_artifacts(built, spec, script, first=steps)]
