"""The kube-apiserver change auditc owns: flags, list-flag items and hostPath volumes.

One description, read by the patch script, the platforms' own config fragments and the
plan, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler import versions
from compiler.errors import Diagnostic, UserError, format_path
from compiler.resolve import Resolved

OWNED_PREFIXES = ("audit-",)
# what auditc owns when the platform writes its own audit log (NodePaths.platform_log):
# the policy, the webhook and dynamic auditing only
OWNED_WITHOUT_LOG = ("audit-policy-file", "audit-webhook-", "audit-dynamic-configuration")
VOLUME_PREFIX = "auditc-"


@dataclass(frozen=True)
class Volume:
    name: str
    host_path: str
    mount_path: str
    read_only: bool
    type: str = "DirectoryOrCreate"


@dataclass(frozen=True)
class ApiserverChange:
    flags: tuple[tuple[str, str], ...]  # (name without dashes, value), sorted by name
    list_items: tuple[tuple[str, str], ...]  # (comma-list flag, key=value item)
    volumes: tuple[Volume, ...]
    owned_prefixes: tuple[str, ...] = OWNED_PREFIXES  # existing flags auditc replaces or removes


def _number(value: float) -> str:
    """10 -> "10", 0.5 -> "0.5": the flag is a float, written without noise."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _check_versions(resolved: Resolved, flags: dict[str, str], list_items: list[tuple[str, str]]) -> None:
    """Every flag and feature gate written must exist in the target Kubernetes version."""
    table = versions.kube_table()
    problems = []
    for name in sorted(flags):
        entry = table["flags"][name]
        if not versions.in_range(resolved.kube, entry):
            path = ("spec", *str(entry["field"]).split("."))
            window = f"{entry['from']}..{entry['until']}" if entry.get("until") else f"from {entry['from']}"
            problems.append(
                Diagnostic(
                    f"needs --{name}, which kube-apiserver has {window}; this site runs {resolved.kube}",
                    resolved.doc.location(path),
                    format_path(path),
                )
            )
    for backend, mode in (("log", flags.get("audit-log-mode")), ("webhook", flags.get("audit-webhook-mode"))):
        entry = table["modes"].get(mode) if mode else None
        if entry and not versions.in_range(resolved.kube, entry):
            path = ("spec", "audit", backend, "mode")
            problems.append(
                Diagnostic(
                    f"mode {mode} exists from Kubernetes {entry['from']}; this site runs {resolved.kube}",
                    resolved.doc.location(path),
                    format_path(path),
                )
            )
    for flag, item in list_items:
        gate = item.split("=", 1)[0]
        entry = table["featureGates"].get(gate)
        if flag == "feature-gates" and entry and not versions.in_range(resolved.kube, entry):
            path = ("spec", "audit", "dynamic")
            problems.append(
                Diagnostic(
                    f"needs the {gate} feature gate, which exists {entry['from']}..{entry['until']}; "
                    f"this site runs {resolved.kube} (an unknown gate stops kube-apiserver)",
                    resolved.doc.location(path),
                    format_path(path),
                )
            )
    if problems:
        raise UserError(problems)


def apiserver_change(resolved: Resolved) -> ApiserverChange:
    audit = resolved.site.spec.audit
    paths = resolved.paths
    flags: dict[str, str] = {}
    backends = audit.log.enabled or audit.webhook.enabled or audit.dynamic
    if backends:
        flags["audit-policy-file"] = paths.policy_file

    log = audit.log
    if log.enabled and paths.log_path:
        flags["audit-log-path"] = paths.log_path
        flags["audit-log-format"] = log.format
        flags["audit-log-mode"] = log.mode
        if paths.log_path != "-":
            flags["audit-log-maxage"] = str(log.max_age)
            flags["audit-log-maxbackup"] = str(log.max_backup)
            flags["audit-log-maxsize"] = str(log.max_size)
            # written whenever the version has it; asked for where it does not, it is refused below
            if log.compress or versions.flag_available("audit-log-compress", resolved.kube):
                flags["audit-log-compress"] = _bool(log.compress)
        flags["audit-log-truncate-enabled"] = _bool(log.truncate.enabled)
        if log.truncate.enabled:
            flags["audit-log-truncate-max-event-size"] = str(log.truncate.max_event_size)
            flags["audit-log-truncate-max-batch-size"] = str(log.truncate.max_batch_size)

    hook = audit.webhook
    if hook.enabled:
        flags["audit-webhook-config-file"] = paths.webhook_config
        flags["audit-webhook-mode"] = hook.mode
        flags["audit-webhook-initial-backoff"] = hook.initial_backoff
        if hook.mode == "batch":
            flags["audit-webhook-batch-buffer-size"] = str(hook.batch.buffer_size)
            flags["audit-webhook-batch-max-size"] = str(hook.batch.max_size)
            flags["audit-webhook-batch-max-wait"] = hook.batch.max_wait
            flags["audit-webhook-batch-throttle-enable"] = _bool(hook.batch.throttle.enabled)
            if hook.batch.throttle.enabled:
                flags["audit-webhook-batch-throttle-qps"] = _number(hook.batch.throttle.qps)
                flags["audit-webhook-batch-throttle-burst"] = str(hook.batch.throttle.burst)
        flags["audit-webhook-truncate-enabled"] = _bool(hook.truncate.enabled)
        if hook.truncate.enabled:
            flags["audit-webhook-truncate-max-event-size"] = str(hook.truncate.max_event_size)
            flags["audit-webhook-truncate-max-batch-size"] = str(hook.truncate.max_batch_size)

    list_items: list[tuple[str, str]] = []
    if audit.dynamic:
        flags["audit-dynamic-configuration"] = "true"
        list_items = [
            ("feature-gates", "DynamicAuditing=true"),
            ("runtime-config", "auditregistration.k8s.io/v1alpha1=true"),
        ]

    _check_versions(resolved, flags, list_items)

    volumes: list[Volume] = []
    if backends and paths.adds_volumes:
        volumes.append(Volume(f"{VOLUME_PREFIX}config", paths.config_dir, paths.config_dir, True))
    if flags.get("audit-log-path") and paths.log_dir and paths.adds_volumes:
        volumes.append(Volume(f"{VOLUME_PREFIX}log", paths.log_dir, paths.log_dir, False))
    owned = OWNED_WITHOUT_LOG if paths.platform_log else OWNED_PREFIXES
    return ApiserverChange(tuple(sorted(flags.items())), tuple(list_items), tuple(volumes), owned)
