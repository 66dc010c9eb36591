"""GKE's artifacts: cluster/ and the Falco values like every platform, no node/ files, and a
plan whose own steps are on the Google side: a Pub/Sub topic and subscription, a Logging
sink routing the cluster's audit entries to the topic, and the IAM bindings that let the
sink publish and Falco's Google service account subscribe (through Workload Identity)."""

from __future__ import annotations

from typing import Any

from compiler import __version__
from compiler.artifacts.falco_values import service_account_name
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.platforms.gke.settings import GkeSettings, names, settings
from compiler.resolve import Resolved
from compiler.templates import render_template

WRITER = "<writer-identity>"  # the sink's writer identity: known once the sink exists
PUBLISHER, SUBSCRIBER, WORKLOAD_IDENTITY = (
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/iam.workloadIdentityUser",
)


def sink_filter(own: GkeSettings, base: str) -> str:
    """The plugin README's filter, narrowed to this cluster (GKE's k8s_cluster resource labels)."""
    return (
        f'{base} AND resource.type="k8s_cluster" AND resource.labels.cluster_name="{own.cluster}" '
        f'AND resource.labels.location="{own.location}"'
    )


def destination(own: GkeSettings) -> str:
    topic, _, _ = names(own)
    return f"pubsub.googleapis.com/projects/{own.project}/topics/{topic}"


def workload_member(resolved: Resolved) -> str:
    own = settings(resolved.site)
    namespace = resolved.site.spec.falco.namespace
    return f"serviceAccount:{own.project}.svc.id.goog[{namespace}/{service_account_name(resolved)}]"


def gcloud_steps(resolved: Resolved, base_filter: str) -> list[dict[str, Any]]:
    """The Google side, before Falco. ``reads``: a read-only check; ``cloud``: a change
    apply makes through gcloud when the setting it serves differs (Gke.cloud_state)."""
    own = settings(resolved.site)
    topic, subscription, sink = names(own)
    project = ["--project", own.project]
    topic_name = f"projects/{own.project}/topics/{topic}"
    subscription_name = f"projects/{own.project}/subscriptions/{subscription}"
    account = f"serviceAccount:{own.service_account}"
    log_filter = f"--log-filter={sink_filter(own, base_filter)}"

    def read(action: str, command: list[str], does: str) -> dict[str, Any]:
        return {"action": action, "command": ["gcloud", *command, *project], "does": does, "reads": True}

    def change(action: str, command: list[str], does: str) -> dict[str, Any]:
        return {"action": action, "command": ["gcloud", *command, *project], "does": does, "cloud": True}

    return [
        read(
            "check-topic",
            ["pubsub", "topics", "list", f"--filter=name={topic_name}", "--format=value(name)"],
            f"find the topic {topic}",
        ),
        change("create-topic", ["pubsub", "topics", "create", topic], f"the Pub/Sub topic {topic}"),
        read(
            "check-subscription",
            [
                "pubsub",
                "subscriptions",
                "list",
                f"--filter=name={subscription_name}",
                "--format=value(topic)",
            ],
            f"find the subscription {subscription} and its topic",
        ),
        change(
            "create-subscription",
            ["pubsub", "subscriptions", "create", subscription, f"--topic={topic}"],
            f"the subscription {subscription} Falco pulls from (one per Falco)",
        ),
        read(
            "check-sink",
            ["logging", "sinks", "list", f"--filter=name={sink}", "--format=json"],
            f"find the sink {sink}: its destination, filter and writer identity",
        ),
        change(
            "create-sink",
            ["logging", "sinks", "create", sink, destination(own), log_filter],
            f"route the cluster's audit log entries to {topic}",
        ),
        change(
            "update-sink",
            ["logging", "sinks", "update", sink, destination(own), log_filter],
            f"route the cluster's audit log entries to {topic} (the sink routed elsewhere)",
        ),
        read(
            "check-topic-iam",
            ["pubsub", "topics", "get-iam-policy", topic, "--format=json"],
            f"who may publish to {topic}",
        ),
        change(
            "publisher-binding",
            [
                "pubsub",
                "topics",
                "add-iam-policy-binding",
                topic,
                f"--member={WRITER}",
                f"--role={PUBLISHER}",
            ],
            "let the sink's writer identity publish to the topic",
        ),
        read(
            "check-subscription-iam",
            ["pubsub", "subscriptions", "get-iam-policy", subscription, "--format=json"],
            f"who may pull from {subscription}",
        ),
        change(
            "subscriber-binding",
            [
                "pubsub",
                "subscriptions",
                "add-iam-policy-binding",
                subscription,
                f"--member={account}",
                f"--role={SUBSCRIBER}",
            ],
            f"let {own.service_account} pull from the subscription",
        ),
        read(
            "check-workload-identity",
            ["iam", "service-accounts", "get-iam-policy", own.service_account, "--format=json"],
            f"who may act as {own.service_account}",
        ),
        change(
            "workload-identity",
            [
                "iam",
                "service-accounts",
                "add-iam-policy-binding",
                own.service_account,
                f"--member={workload_member(resolved)}",
                f"--role={WORKLOAD_IDENTITY}",
            ],
            f"let Falco's ServiceAccount act as {own.service_account} (Workload Identity)",
        ),
    ]


def lower(built: Build, base_filter: str) -> list[Artifact]:
    resolved = built.resolved
    own = settings(resolved.site)
    pull = resolved.pull
    assert pull is not None
    topic, subscription, sink = names(own)
    steps = gcloud_steps(resolved, base_filter)
    spec = {
        "platform": resolved.platform.name,
        "transport": resolved.platform.data.transport,
        "project": own.project,
        "cluster": own.cluster,
        "location": own.location,
        "auditLog": pull.where,
        "plugin": pull.artifact,
        "steps": [],
    }
    # the script reads only what it decides on; the IAM bindings it adds every time (adding
    # one that exists changes nothing), so it needs no policy reads
    iam_reads = {"check-topic-iam", "check-subscription-iam", "check-workload-identity"}
    commands = {step["action"]: step["command"] for step in steps if step["action"] not in iam_reads}
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "cluster": own.cluster,
        "project": own.project,
        "topic": topic,
        "subscription": subscription,
        "sink": sink,
        "where": pull.where,
        "destination": destination(own),
        "filter": sink_filter(own, base_filter),
        "service_account": own.service_account,
        "workload_member": workload_member(resolved),
        "writer_placeholder": WRITER,
        "commands": commands,
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/gke/templates/apply.sh.j2", context)
    return [*cluster_artifacts(built), *common.plan_artifacts(built, spec, script, first=steps)]
