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


def _where(own: EksSettings) -> list[str]:
    return ["--region", own.region]


def aws_steps(resolved: Resolved) -> list[dict[str, Any]]:
    """The AWS side, before Falco: it reads nothing until AWS writes the log. ``reads``: a
    read-only check (apply has read it already); ``cloud``: a change apply makes through
    the aws CLI when the setting it serves differs (Eks.cloud_state)."""
    own = settings(resolved.site)
    steps: list[dict[str, Any]] = [
        {
            "action": "check-audit-log",
            "command": [
                "aws",
                "eks",
                "describe-cluster",
                *_where(own),
                "--name",
                own.cluster_name,
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
                *_where(own),
                "--name",
                own.cluster_name,
                "--logging",
                AUDIT_LOGGING,
            ],
            "does": "turn on the audit log type (the other types stay as they are); "
            "AWS then writes the audit log to CloudWatch Logs /aws/eks/" + own.cluster_name + "/cluster",
            "cloud": True,
        },
        {
            "action": "wait-for-cluster",
            "command": ["aws", "eks", "wait", "cluster-active", *_where(own), "--name", own.cluster_name],
            "does": "wait until the logging update is done",
            "cloud": True,
        },
    ]
    if own.identity.mode == "podIdentity":
        namespace = resolved.site.spec.falco.namespace
        account = service_account_name(resolved)
        steps += [
            {
                "action": "check-pod-identity",
                "command": [
                    "aws",
                    "eks",
                    "list-pod-identity-associations",
                    *_where(own),
                    "--cluster-name",
                    own.cluster_name,
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
                "action": "pod-identity",
                "command": [
                    "aws",
                    "eks",
                    "create-pod-identity-association",
                    *_where(own),
                    "--cluster-name",
                    own.cluster_name,
                    "--namespace",
                    namespace,
                    "--service-account",
                    account,
                    "--role-arn",
                    own.identity.role_arn,
                ],
                "does": f"let {namespace}/{account} act as the role that may read the log group",
                "cloud": True,
            },
        ]
    return steps


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
        "wait_cluster": by_action["wait-for-cluster"],
        "check_identity": by_action.get("check-pod-identity", []),
        "create_identity": by_action.get("pod-identity", []),
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/eks/templates/apply.sh.j2", context)
    return [*out, *common.plan_artifacts(built, spec, script, first=steps)]
