"""helm/falco-values.yaml: the Falco chart's values for an audit receiver.

Two shapes: chart 9.x with the k8saudit plugin (the chart's own values-k8saudit.yaml
recipe, shared/reference/falco.md §1.8) and chart 1.x for Falco < 0.32 (embedded
webserver, §2.4). ``falco.values`` from the spec is deep-merged last.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from compiler.datafiles import read_text
from compiler.emit import yaml_bytes
from compiler.errors import Diagnostic, UserError
from compiler.resolve import Resolved
from compiler.versions import Version, fact, falco_table

OVERRIDES_FILE = "zz-auditc-overrides.yaml"
LEGACY_SERVICE_ACCOUNT = "falco-account"


def service_account_name(resolved: Resolved) -> str:
    return resolved.site.spec.falco.release_name if resolved.plugin else LEGACY_SERVICE_ACCOUNT


def chart_fullname(resolved: Resolved) -> str:
    """The chart's ``falco.fullname`` helper for the release (no fullnameOverride)."""
    release = resolved.site.spec.falco.release_name
    chart = resolved.site.spec.falco.chart.name
    return release if chart in release else f"{release}-{chart}"


def falco_values(resolved: Resolved) -> dict[str, Any]:
    values = _plugin_values(resolved) if resolved.plugin else _legacy_values(resolved)
    rules = _custom_rules(resolved)
    if rules:
        values["customRules"] = rules
    missing = unknown_keys(values, chart_keys(resolved.chart_keys))
    if missing:
        # the spec asks for something this chart version cannot express (e.g. TLS on chart 1.1.x)
        raise UserError(
            Diagnostic(
                f"chart {resolved.chart_version} has no values key {', '.join(missing)}, which this spec "
                "needs; choose a newer chart (spec.falco.chart.version)",
                resolved.doc.location(("spec", "falco")),
                "spec.falco",
            )
        )
    return deep_merge(values, resolved.site.spec.falco.values)


def _plugin_values(resolved: Resolved) -> dict[str, Any]:
    falco = resolved.site.spec.falco
    receiver = resolved.receiver
    plugin = {key: entry["value"] for key, entry in falco_table()["plugin"].items()}
    tag = resolved.artifacts_version
    refs = [f"k8saudit-rules:{tag}", f"k8saudit:{tag}"]
    rules_files = ["/etc/falco/k8s_audit_rules.yaml", "/etc/falco/rules.d"]
    init_config: dict[str, Any] = {
        "maxEventSize": plugin["maxEventSize"],
        "webhookMaxBatchSize": plugin["webhookMaxBatchSize"],
    }
    if falco.receiver.tls.enabled:
        init_config["sslCertificate"] = plugin["sslCertificate"]
    service: dict[str, Any] = {"name": "k8saudit-webhook", "type": receiver.service_type}
    port: dict[str, Any] = {"port": receiver.port, "protocol": "TCP"}
    if receiver.node_port is not None:
        port["nodePort"] = receiver.node_port
    if receiver.cluster_ip:
        service["clusterIP"] = receiver.cluster_ip
    service["ports"] = [port]

    values: dict[str, Any] = {
        "image": {"tag": str(resolved.falco)},
        "serviceAccount": {"create": False, "name": service_account_name(resolved)},
        # the chart's only RBAC is a configmap Role for the driver loader: no driver, no Role
        "rbac": {"create": False},
        "controller": {"kind": "deployment", "deployment": {"replicas": 1}},
        "driver": {"enabled": False},
        "collectors": {"enabled": False},
        "services": [service],
        "falcoctl": {
            "artifact": {"install": {"enabled": True}, "follow": {"enabled": True}},
            "config": {"artifact": {"install": {"refs": list(refs)}, "follow": {"refs": list(refs)}}},
        },
        "falco": {
            "rules_files": rules_files,
            "plugins": [
                {
                    "name": "k8saudit",
                    "library_path": "libk8saudit.so",
                    "init_config": init_config,
                    "open_params": f"{receiver.scheme}://:{receiver.port}{receiver.path}",
                },
                {"name": "json", "library_path": "libjson.so", "init_config": ""},
            ],
            "load_plugins": ["k8saudit", "json"],
        },
    }
    if falco.syscalls:
        # values-syscall-k8saudit.yaml: syscalls and audit events in one Falco per node
        values["driver"] = {"enabled": True}
        values["collectors"] = {"enabled": True}
        values["rbac"] = {"create": True}
        values["controller"] = {"kind": "daemonset"}
        all_refs = ["falco-rules:5", *refs]
        values["falcoctl"]["config"]["artifact"] = {
            "install": {"refs": all_refs},
            "follow": {"refs": list(all_refs)},
        }
        values["falco"]["rules_files"] = ["/etc/falco/falco_rules.yaml", *rules_files]
    if falco.receiver.tls.enabled:
        values["certs"] = {"existingSecret": falco.receiver.tls.existing_secret}
    return values


def _legacy_values(resolved: Resolved) -> dict[str, Any]:
    falco = resolved.site.spec.falco
    receiver = resolved.receiver
    webserver: dict[str, Any] = {
        "enabled": True,
        "listenPort": receiver.port,
        "k8sAuditEndpoint": receiver.path,
    }
    values: dict[str, Any] = {
        "image": {"tag": str(resolved.falco)},
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": LEGACY_SERVICE_ACCOUNT},
        # the receiver Service is cluster/service.yaml: chart 1.x can neither pin a
        # clusterIP nor choose a NodePort number
        "auditLog": {"enabled": False},
        "falco": {"webserver": webserver},
    }
    if falco.receiver.tls.enabled:
        webserver["sslEnabled"] = True
        values["certs"] = {"existingSecret": falco.receiver.tls.existing_secret}
    return values


def _custom_rules(resolved: Resolved) -> dict[str, str]:
    rules = resolved.site.spec.falco.rules
    out: dict[str, str] = {}
    for index, name in enumerate(rules.custom):
        base = posixpath.basename(name)
        if not base.endswith((".yaml", ".yml")):
            base += ".yaml"  # Falco >= 0.41 loads only .yaml/.yml files from rules.d
        if base in out or base == OVERRIDES_FILE:
            path = ("spec", "falco", "rules", "custom", index)
            raise UserError(
                Diagnostic(
                    f"two rule files would both be named {base} in rules.d; rename one",
                    resolved.doc.location(path),
                    f"spec.falco.rules.custom[{index}]",
                )
            )
        out[base] = _rules_text(resolved, name, index)
    overrides = _overrides(resolved)
    if overrides:
        out[OVERRIDES_FILE] = yaml_bytes(overrides).decode("utf-8")
    return out


def _rules_text(resolved: Resolved, name: str, index: int) -> str:
    """A Falco rules file must be a YAML list; a broken one would crash Falco at start-up."""
    from pathlib import Path

    from compiler.spec.source import parse_yaml

    doc = parse_yaml(resolved.files[name], Path(name), name, what="rules file")
    if not isinstance(doc.data, list):
        raise UserError(
            Diagnostic(
                "a Falco rules file must be a YAML list of rule, macro and list entries",
                doc.location(()),
                f"spec.falco.rules.custom[{index}]",
            )
        )
    return resolved.files[name].decode("utf-8")


def _overrides(resolved: Resolved) -> list[dict[str, Any]]:
    """rules.lists and rules.disable as one rules file loaded after the k8saudit rules."""
    rules = resolved.site.spec.falco.rules
    modern = resolved.falco >= Version.parse(fact("falco", "ruleOverrideFrom"))
    out: list[dict[str, Any]] = []
    for name in sorted(rules.lists):
        entry: dict[str, Any] = {"list": name, "items": list(rules.lists[name])}
        entry |= {"override": {"items": "append"}} if modern else {"append": True}
        out.append(entry)
    for name in sorted(set(rules.disable)):
        entry = {"rule": name, "enabled": False}
        if modern:
            entry["override"] = {"enabled": "replace"}
        out.append(entry)
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: mappings merge key by key, null deletes a key (as in Helm),
    anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def chart_keys(version: str) -> frozenset[str]:
    """Key paths of the chart's values.yaml; ``a.b.*`` marks a free-form map."""
    lines = read_text(f"chart-keys/{version}.txt").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def unknown_keys(values: dict[str, Any], keys: frozenset[str], prefix: str = "") -> list[str]:
    """Key paths in ``values`` that the chart does not have."""
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if f"{prefix}*" in keys:
            continue
        if path not in keys:
            out.append(path)
        elif isinstance(value, dict) and value:
            out += unknown_keys(value, keys, f"{path}.")
    return out
