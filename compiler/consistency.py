"""Checks that span several spec fields, a version table or the node layout.

Each function adds to a ``Checks`` collector; ``compiler.resolve`` calls them once the
defaults are known.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from compiler import versions
from compiler.checks import Checks
from compiler.falco_matrix import CHART_LABELS, chart_keys, unknown_keys
from compiler.probe import PROBE_FILE
from compiler.spec.model import Site
from compiler.versions import Version

if TYPE_CHECKING:
    from compiler.falco_target import FalcoTarget
    from compiler.platform import NodePaths


def node_paths(site: Site, paths: NodePaths, checks: Checks) -> None:
    """Node paths that would render but break the apiserver pod or the kubelet."""
    config_field = ("spec", "platform", site.spec.platform.type, "configDir")
    log_field = ("spec", "audit", "log", "path")
    # a bpm.yml sits beside the config files: no kubelet runs what is in its directory
    static_pod = paths.manifest_format == "static-pod"
    manifests = paths.manifest.rsplit("/", 1)[0] if paths.manifest and static_pod else None

    def inside(child: str, parent: str) -> bool:
        return child == parent or child.startswith(parent.rstrip("/") + "/")

    if paths.config_dir == "/":
        checks.error(config_field, "must not be / (it is mounted into the kube-apiserver pod)")
    if manifests and inside(paths.config_dir, manifests):
        checks.error(
            config_field, f"must not be inside {manifests}: the kubelet runs every file there as a pod"
        )
    log_dir = paths.log_dir
    if log_dir is None:
        return
    if log_dir == "/":
        checks.error(log_field, "the log file needs its own directory (the directory is mounted read-write)")
    elif manifests and inside(log_dir, manifests):
        checks.error(log_field, f"must not be inside {manifests}: the kubelet runs every file there as a pod")
    elif inside(log_dir, paths.config_dir) or inside(paths.config_dir, log_dir):
        checks.error(
            log_field,
            f"its directory {log_dir} overlaps the config dir {paths.config_dir}; "
            "the config dir is mounted read-only and the log dir read-write",
        )


def falco_matrix(site: Site, target: FalcoTarget, checks: Checks) -> None:
    """Falco / chart / values combinations that install but do not run."""
    table = versions.falco_table()
    multi = Version.parse(versions.fact("falco", "multiSourceFrom"))
    if site.spec.falco.syscalls and target.version < multi:
        checks.error(
            ("spec", "falco", "syscalls"),
            f"syscall and audit events in one Falco need Falco >= {multi} (this site runs {target.version})",
        )
    chart = Version.parse(target.chart.version)
    values = site.spec.falco.values
    for removed in table["removedValues"]:
        if chart < Version.parse(removed["from"]):
            continue
        node: Any = values
        parts = removed["key"].split(".")
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or (removed.get("values") and node not in removed["values"]):
            continue
        shown = f"{removed['key']}: {node}" if removed.get("values") else removed["key"]
        checks.error(
            ("spec", "falco", "values", *parts),
            f"chart {chart} refuses {shown} (removed in chart {removed['from']}; helm template fails)",
        )
    if (
        site.spec.gitops.engine == "flux"
        and target.chart.rules_key == "rules_file"
        and target.rules_key == "rules_files"
    ):
        # the values must delete the chart's rules_file (null), and kustomize-controller drops
        # null values from a HelmRelease (fluxcd/kustomize-controller#372): Falco would then
        # see both keys and refuse to start
        checks.error(
            ("spec", "falco", "chart", "version"),
            f"Falco {target.version} reads rules_files and refuses a falco.yaml that also has rules_file, "
            f"which chart {target.chart.version} sets; Flux cannot delete it (it drops null values): "
            f"use chart {target.release.chart}",
        )
    if target.release.overrides == "cli":
        for index, name in enumerate(site.spec.falco.rules.disable):
            checks.warn(
                ("spec", "falco", "rules", "disable", index),
                f"Falco {target.version} disables every rule whose name contains {name!r} (falco -D)",
                code="AUD025",
            )


# Chart values auditc derives from the spec (compiler/artifacts/falco_values.py), with the
# spec field that sets each: in falco.values they would silently undo what the spec says
# (a list replaces auditc's, a name override breaks the objects auditc names, the plan
# waits for a workload that does not exist).
OWNED_VALUES = {
    "image.tag": "spec.falco.version",
    "nameOverride": "spec.falco.releaseName",
    "fullnameOverride": "spec.falco.releaseName",
    "controller.kind": "spec.falco.syscalls",
    "services": "spec.falco.receiver.service",
    "falcoctl.artifact": "spec.falco.rules.follow",
    "falcoctl.config.artifact.install.refs": "spec.falco.rules.artifactsVersion",
    "falcoctl.config.artifact.follow": "spec.falco.rules.follow",
    "falcoctl.config.artifact.allowedTypes": "spec.falco.version",
    "falco.rules_file": "spec.falco.rules.custom",
    "falco.rules_files": "spec.falco.rules.custom",
    "falco.rulesFile": "spec.falco.rules.custom",
    "falco.plugins": "spec.falco.receiver",
    "falco.load_plugins": "spec.falco.receiver",
    "falco.webserver.enabled": "spec.falco.receiver",
    "falco.webserver.listenPort": "spec.falco.receiver.port",
    "falco.webserver.k8sAuditEndpoint": "spec.falco.receiver.path",
    "auditLog": "spec.audit.dynamic",
    "extraArgs": "spec.falco.rules.disable",
}


UNKNOWN_KEYS_SHOWN = 5  # unknown chart keys reported one by one; the rest as one finding


OVERRIDES_FILE = "zz-auditc-overrides.yaml"


def _rules_file_name(name: str) -> str:
    """The rules.d file name a rules.custom entry gets (artifacts/falco_values.py)."""
    base = name.rsplit("/", 1)[-1]
    return base if base.endswith((".yaml", ".yml")) else f"{base}.yaml"


@functools.cache
def _owned_parent_keys() -> tuple[tuple[str, str], ...]:
    """Each parent of a value auditc writes, with the first such value, in order."""
    parents: dict[str, str] = {}
    for key in [*OWNED_VALUES, "customRules.<rules file>", "controller.deployment.replicas"]:
        parts = key.split(".")
        for end in range(1, len(parts)):
            parents.setdefault(".".join(parts[:end]), key)
    return tuple(sorted(parents.items()))


def _owned_parents(site: Site, checks: Checks) -> None:
    """A parent of what auditc writes, set to anything but a mapping, would replace it all
    (`falco: null` drops the k8saudit plugin); customRules may add files, not replace ours."""
    values = site.spec.falco.values
    if not values:  # a site's own values are few, and most sites have none
        return
    for parent, key in _owned_parent_keys():
        node: Any = values
        for part in parent.split("."):
            node = node.get(part, ...) if isinstance(node, dict) else ...
        if node is not ... and not isinstance(node, dict) and parent not in OWNED_VALUES:
            checks.error(
                ("spec", "falco", "values", *parent.split(".")),
                f"must be a mapping: auditc writes values under {parent} (such as {key}), which this "
                "would replace",
            )
    custom = values.get("customRules")
    if isinstance(custom, dict):
        ours = (
            {OVERRIDES_FILE}
            | ({PROBE_FILE} if site.spec.falco.probe else set())
            | {_rules_file_name(name) for name in site.spec.falco.rules.custom}
        )
        for name, text in custom.items():
            field = ("spec", "falco", "values", "customRules", name)
            if name in ours:
                checks.error(field, f"auditc writes the rules file {name} itself (spec.falco.rules)")
            elif not isinstance(text, str):
                checks.error(field, "must be the text of a Falco rules file")


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict):
            out += _value_paths(value, f"{path}.")
    return out


def chart_values(site: Site, target: FalcoTarget, checks: Checks) -> None:
    """falco.values may add to the chart's values, not undo what auditc writes; keys the
    chart does not have are almost always typos."""
    import difflib

    for path in _value_paths(site.spec.falco.values):
        owner = OWNED_VALUES.get(path)
        if owner:
            checks.error(
                ("spec", "falco", "values", *path.split(".")),
                f"auditc writes {path} from {owner}: set that instead (a value here would silently undo it)",
            )
    _owned_parents(site, checks)
    keys_file = target.chart.keys
    known = chart_keys(keys_file)
    removed = {entry["key"] for entry in versions.falco_table()["removedValues"]}
    unknown = [
        path
        for path in unknown_keys(site.spec.falco.values, known)
        if path not in OWNED_VALUES  # refused above
        and not (path in removed or any(path.startswith(f"{key}.") for key in removed))  # falco_matrix
    ]
    siblings: dict[str, list[str]] = {}
    for path in unknown[:UNKNOWN_KEYS_SHOWN]:
        parent = path.rsplit(".", 1)[0] + "." if "." in path else ""
        if parent not in siblings:
            siblings[parent] = [k for k in known if k.startswith(parent) and "." not in k[len(parent) :]]
        match = difflib.get_close_matches(path, siblings[parent], n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        field = ("spec", "falco", "values", *path.split("."))
        checks.warn(field, f"not a key of the Falco chart's values ({keys_file}){hint}", code="AUD020")
    rest = unknown[UNKNOWN_KEYS_SHOWN:]
    if rest:  # one finding for the rest: a pasted values file must not bury the output
        named = ", ".join(rest[:3]) + (", ..." if len(rest) > 3 else "")
        checks.warn(
            ("spec", "falco", "values"),
            f"{len(rest)} more keys are not keys of the Falco chart's values ({keys_file}): {named}",
            code="AUD020",
        )


def chart_labels(site: Site, target: FalcoTarget, checks: Checks) -> None:
    """Site labels that the chart sets on its own objects cannot be passed to it."""
    reserved = CHART_LABELS[target.chart.shape]
    for key in sorted(site.metadata.labels):
        if key in reserved["pod"] or key in reserved["controller"]:
            checks.warn(
                ("metadata", "labels", key),
                f"the Falco chart sets the label {key} itself: it stays on auditc's own objects only",
                code="AUD028",
            )


def settings(site: Site, kube: Version, plugin: bool, checks: Checks) -> None:
    spec = site.spec
    audit = spec.audit
    # kube-apiserver checks a backend's flags only when the backend is on (audit.go Validate)
    for backend in ("log", "webhook"):
        settings = getattr(audit, backend)
        if settings.enabled and settings.truncate.max_batch_size < settings.truncate.max_event_size:
            checks.error(
                ("spec", "audit", backend, "truncate", "maxBatchSize"),
                f"must be >= truncate.maxEventSize ({settings.truncate.max_event_size}); kube-apiserver "
                "refuses to start otherwise (checked even when truncation is off)",
            )
    throttle = audit.webhook.batch.throttle
    if audit.webhook.enabled and audit.webhook.mode == "batch" and throttle.enabled:
        for name, value in (("qps", throttle.qps), ("burst", throttle.burst)):
            if value <= 0:
                checks.error(
                    ("spec", "audit", "webhook", "batch", "throttle", name),
                    f"must be > 0 while the throttle is enabled (got {value}); "
                    "kube-apiserver refuses to start",
                )
    hook = audit.webhook
    if plugin and hook.enabled and hook.truncate.enabled:
        limit = int(versions.falco_table()["plugin"]["webhookMaxBatchSize"]["value"])
        if hook.truncate.max_batch_size > limit:
            checks.error(
                ("spec", "audit", "webhook", "truncate", "maxBatchSize"),
                f"must be <= {limit}, the k8saudit plugin's webhookMaxBatchSize: Falco answers 400 to a "
                "larger batch and kube-apiserver retries it until it gives up",
            )
    dynamic = versions.flag("audit-dynamic-configuration")
    if audit.dynamic and not versions.in_range(kube, dynamic):
        checks.error(
            ("spec", "audit", "dynamic"),
            f"dynamic auditing (AuditSink) exists only in Kubernetes {dynamic['from']}..{dynamic['until']}; "
            f"this site runs {kube}",
        )
    managed = versions.kube_feature("omitManagedFields")
    if checks.given(("spec", "audit", "policy", "omitManagedFields")) and not managed.available(kube):
        checks.error(
            ("spec", "audit", "policy", "omitManagedFields"),
            f"omitManagedFields exists from Kubernetes {managed.since}; this site runs {kube}",
        )
    if spec.gitops.engine != "none" and not spec.gitops.repo_url:
        checks.error(
            ("spec", "gitops", "repoURL"),
            f"required for engine {spec.gitops.engine}: the git repository that holds output/",
        )
    if spec.gitops.engine_cluster == "management" and spec.gitops.engine == "none":
        checks.error(
            ("spec", "gitops", "engineCluster"),
            "a management cluster deploys with engine argocd or flux; this site's engine is none",
        )
    policy = audit.policy
    if policy.file:
        for name in ("preset", "rules", "appendRules"):
            if checks.given(("spec", "audit", "policy", name)):
                checks.error(
                    ("spec", "audit", "policy", name),
                    "cannot be combined with policy.file (the file is the whole policy)",
                    key=True,
                )
    if not audit.log.enabled and not audit.webhook.enabled and not audit.dynamic:
        checks.warn(
            ("spec", "audit"),
            "both the log and the webhook backend are off: nothing is audited",
            code="AUD021",
        )
