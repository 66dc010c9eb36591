"""helm/falco-values.yaml: the Falco chart's values for an audit receiver.

Two shapes (compiler/data/falco-matrix.yaml): charts 2.x and later with the k8saudit
plugin (the chart's own values-k8saudit.yaml recipe, shared/reference/falco.md §1.8), and
chart 1.x for Falco < 0.32 (the embedded webserver, §2.4). Within a shape, what a chart
version lacks or a Falco release reads differently (the rules key, falcoctl, the rule
override syntax) follows ``resolved.target``. ``falco.values`` from the spec is
deep-merged last.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from compiler import versions
from compiler.emit import yaml_bytes
from compiler.errors import Diagnostic, UserError
from compiler.falco_matrix import CHART_LABELS, chart_keys, unknown_keys
from compiler.falco_target import FalcoTarget
from compiler.probe import PROBE_FILE
from compiler.probe import rules_text as probe_rules
from compiler.resolve import Resolved
from compiler.versions import Version, falco_table

MANAGED_BY = {"app.kubernetes.io/managed-by": "auditc"}
# on a pulling Falco's pods: the cloud identity it reads the log as (a new one restarts them)
IDENTITY_ANNOTATION = "auditc/identity"

OVERRIDES_FILE = "zz-auditc-overrides.yaml"
TLS_VALUES = ("certs", "falco.webserver.sslEnabled")
LEGACY_SERVICE_ACCOUNT = "falco-account"


def service_account_name(resolved: Resolved) -> str:
    return resolved.site.spec.falco.release_name if resolved.plugin else LEGACY_SERVICE_ACCOUNT


def chart_fullname(resolved: Resolved) -> str:
    """The chart's ``falco.fullname`` helper for the release (no fullnameOverride)."""
    release = resolved.site.spec.falco.release_name
    chart = resolved.site.spec.falco.chart.name
    return release if chart in release else f"{release}-{chart}"


def pod_selector(resolved: Resolved) -> str:
    """The chart's selector labels of Falco's pods (``falco.selectorLabels``, chart >= 2), as
    ``kubectl -l`` takes them: how verify finds Falco where no receiver Service selects it."""
    falco = resolved.site.spec.falco
    return f"app.kubernetes.io/instance={falco.release_name},app.kubernetes.io/name={falco.chart.name}"


def receiver_service_name(resolved: Resolved) -> str:
    """The Service the apiservers' events go through: the chart's ``services`` entry
    k8saudit-webhook, auditc's own Service for chart 1.1.x (artifacts/cluster.py), or the
    one chart 1.0.x makes with its AuditSink."""
    if resolved.target.chart.owns_audit_sink:
        return f"{chart_fullname(resolved)}-audit-service"
    return f"{chart_fullname(resolved)}-k8saudit-webhook"


def falco_values(resolved: Resolved) -> dict[str, Any]:
    target = resolved.target
    keys = chart_keys(target.chart.keys)
    if resolved.pull is not None:
        values = _pull_values(resolved, keys)
        keys = keys | {"falco.rules_file", "falco.rules_files"}
    elif target.chart.shape == "plugin":
        values = _plugin_values(resolved, keys)
        # the chart writes `falco:` into falco.yaml verbatim: both rules keys are Falco's own
        keys = keys | {"falco.rules_file", "falco.rules_files"}
    else:
        values = _webserver_values(resolved, keys)
    values = deep_merge(values, _labels(resolved, keys))  # a copy: it may hold shared data
    _merge_into(values, _site_stamp(resolved, keys))
    rules = _custom_rules(resolved)
    if rules:
        values["customRules"] = rules
    missing = unknown_keys(values, keys)
    if missing:
        # the spec asks for something this chart version cannot express (e.g. TLS on chart 1.1.x)
        tls = any(key.startswith(TLS_VALUES) for key in missing)
        path = ("spec", "falco", "receiver", "tls", "enabled") if tls else ("spec", "falco")
        what = "TLS for the receiver" if tls else "this spec"
        raise UserError(
            Diagnostic(
                f"chart {target.chart.version} has no values key {', '.join(missing)}, which {what} "
                f"needs: the Falco release and its chart are older than the feature",
                resolved.doc.location(path),
                ".".join(path),
            )
        )
    _merge_into(values, resolved.site.spec.falco.values)
    return values


def _site_stamp(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
    """Every k8s audit alert names its site: falco.yaml `append_output` (Falco 0.39 and
    later) adds ``site=<name>`` to the message and the site's name and labels to the JSON
    `output_fields` (auditc.site, auditc.label.<key>). The list replaces the chart's
    default whole, so that default comes first: ``suggested_output: true`` in the charts
    for Falco 0.41 on, nothing before. Older Falco has no such setting (README)."""
    since = Version.parse(versions.fact("falco", "appendOutputFrom"))
    if resolved.target.version < since or not _has(keys, "falco.append_output"):
        return {}
    site = resolved.site.metadata
    fields: list[dict[str, str]] = [{"auditc.site": site.name}]
    fields += [{f"auditc.label.{key}": value} for key, value in sorted(site.labels.items())]
    stamp = {"match": {"source": "k8s_audit"}, "extra_output": f"site={site.name}", "extra_fields": fields}
    suggested = resolved.target.version >= Version.parse(versions.fact("falco", "suggestedOutputFrom"))
    default: list[dict[str, Any]] = [{"suggested_output": True}] if suggested else []
    return {"falco": {"append_output": [*default, stamp]}}


def _has(keys: frozenset[str], path: str) -> bool:
    return path in keys


def _plugin_values(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
    falco = resolved.site.spec.falco
    target = resolved.target
    receiver = resolved.receiver
    plugin = {key: entry["value"] for key, entry in falco_table()["plugin"].items()}
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

    values: dict[str, Any] = {"image": {"tag": str(target.version)}}
    if _has(keys, "serviceAccount.create"):  # chart 4.0.0 has no service account values
        values["serviceAccount"] = {"create": False, "name": service_account_name(resolved)}
    if _has(keys, "rbac.create"):
        # the chart's only RBAC is a configmap Role for the driver loader: no driver, no Role
        values["rbac"] = {"create": False}
    values |= {
        "controller": {"kind": "deployment", "deployment": {"replicas": 1}},
        "driver": {"enabled": False},
        "collectors": {"enabled": False},
        "services": [service],
        "falco": {
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
        if _has(keys, "rbac.create"):
            values["rbac"] = {"create": True}
        values["controller"] = {"kind": "daemonset"}
        rules_files = ["/etc/falco/falco_rules.yaml", *rules_files]
    values["falco"] |= _rules_key(target, rules_files)
    if target.chart.falcoctl:
        values["falcoctl"] = _falcoctl(resolved, keys)
    if falco.receiver.tls.enabled:
        values["certs"] = {"existingSecret": falco.receiver.tls.existing_secret}
    return values


def _pull_values(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
    """A managed control plane: one Falco pulls the cloud's audit log with the platform's
    plugin (the plugin READMEs' recipe): one replica, since every replica would read the
    same log and alert on every event again; no receiver Service; falcoctl installs the
    plugin, the json plugin and the k8saudit rules at exact versions."""
    pull = resolved.pull
    assert pull is not None
    target = resolved.target
    values: dict[str, Any] = {"image": {"tag": str(target.version)}}
    if _has(keys, "serviceAccount.create"):
        # auditc's own ServiceAccount (cluster/rbac.yaml) carries the cloud identity
        values["serviceAccount"] = {"create": False, "name": service_account_name(resolved)}
    if _has(keys, "rbac.create"):
        values["rbac"] = {"create": False}
    if _has(keys, "podAnnotations.*") and pull.identity is not None:
        values["podAnnotations"] = {IDENTITY_ANNOTATION: pull.identity}
    if pull.secret_env:
        assert _has(keys, "extra.env"), "every chart of a pulling Falco (0.42+) has extra.env"
        values["extra"] = {
            "env": [
                {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for name, (secret, key) in sorted(pull.secret_env.items())
            ]
        }
    if pull.host_log_dir is not None:
        values |= _on_control_planes(pull.host_log_dir)
    else:  # one pod pulls the cloud's log: every replica would read it all again
        values["controller"] = {"kind": "deployment", "deployment": {"replicas": 1}}
    values |= {
        "driver": {"enabled": False},
        "collectors": {"enabled": False},
        "falco": {
            "plugins": [
                {
                    "name": pull.plugin,
                    "library_path": pull.library,
                    "init_config": dict(pull.init_config),
                    "open_params": pull.open_params,
                },
                {"name": "json", "library_path": "libjson.so", "init_config": ""},
            ],
            "load_plugins": [pull.plugin, "json"],
            **_rules_key(target, ["/etc/falco/k8s_audit_rules.yaml", "/etc/falco/rules.d"]),
        },
    }
    follow = [f"k8saudit-rules:{_minor(pull.rules)}"] if target.follow else []
    install: dict[str, Any] = {"refs": [f"k8saudit-rules:{pull.rules}", pull.artifact, f"json:{pull.json}"]}
    if _has(keys, "falcoctl.config.artifact.install.resolveDeps"):
        install["resolveDeps"] = False  # every artifact is listed, at its exact version
    values["falcoctl"] = {
        "artifact": {"install": {"enabled": True}, "follow": {"enabled": target.follow}},
        "config": {
            "artifact": {
                "allowedTypes": ["rulesfile", "plugin"],
                "install": install,
                "follow": {"refs": follow},
            }
        },
    }
    return values


# the taints control-plane nodes carry (node-role.kubernetes.io/control-plane and
# the older master; CriticalAddonsOnly where servers are kept for system pods)
CONTROL_PLANE_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
]


def _on_control_planes(log_dir: str) -> dict[str, Any]:
    """falco.receiver.mode logfile: one Falco on every control-plane node (the label exists
    there, whatever its value: some distributions set "", others "true"), the log's directory
    of the host mounted read-only at the same path (the plugin watches the directory, so
    it follows a rotated file)."""
    label = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
    return {
        "controller": {"kind": "daemonset"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [label]}]
                }
            }
        },
        "tolerations": CONTROL_PLANE_TOLERATIONS,
        "mounts": {
            # DirectoryOrCreate: Falco comes up before the first apiserver writes the log
            "volumes": [
                {"name": "auditc-audit-log", "hostPath": {"path": log_dir, "type": "DirectoryOrCreate"}}
            ],
            "volumeMounts": [{"name": "auditc-audit-log", "mountPath": log_dir, "readOnly": True}],
        },
    }


def _rules_key(target: FalcoTarget, rules_files: list[str]) -> dict[str, Any]:
    """The rules list under the key this Falco reads; the chart's own default under the
    other key is deleted (null, as Helm reads it): Falco >= 0.38 refuses a falco.yaml with
    both, older Falco would ignore ours."""
    out: dict[str, Any] = {target.rules_key: rules_files}
    if target.chart.rules_key != target.rules_key:
        out[target.chart.rules_key] = None
    return out


def _falcoctl(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
    """Exact artifact versions, installed once at pod start; following is an explicit opt-in
    (and only ever follows rules files, the one artifact type falcoctl can follow)."""
    target = resolved.target
    assert target.artifacts is not None
    refs = [f"k8saudit-rules:{target.artifacts}"]
    if target.install_plugin:
        refs.append(f"k8saudit:{target.artifacts}")
    follow: list[str] = []
    if target.follow:
        follow.append(f"k8saudit-rules:{_minor(target.artifacts)}")
    if target.syscall_rules:
        refs.insert(0, f"falco-rules:{target.syscall_rules}")
        if target.follow:
            follow.insert(0, f"falco-rules:{_minor(target.syscall_rules)}")
    install: dict[str, Any] = {"refs": refs}
    if _has(keys, "falcoctl.config.artifact.install.resolveDeps"):
        # the image's own plugins include json; otherwise falcoctl installs what the rules
        # require (json) at the exact version the rules artifact names
        install["resolveDeps"] = target.install_plugin
    artifact: dict[str, Any] = {"install": install, "follow": {"refs": follow}}
    if target.install_plugin and not target.chart.falcoctl_plugins:
        # chart 3.x installs rules files only: let it install (and mount) plugins too
        artifact["allowedTypes"] = ["rulesfile", "plugin"]
    return {
        "artifact": {"install": {"enabled": True}, "follow": {"enabled": target.follow}},
        "config": {"artifact": artifact},
    }


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _webserver_values(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
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
        "falco": {"webserver": webserver},
    }
    if resolved.target.chart.owns_audit_sink:
        # chart 1.0.x: the webserver, the k8s audit rules mount and an AuditSink come as one;
        # the AuditSink dials this clusterIP on the webserver port (falco_target checks it)
        webserver["clusterIP"] = receiver.cluster_ip
    else:
        # chart 1.1+ mounts k8s_audit_rules.yaml only with auditLog.enabled (and then also
        # makes a ClusterIP Service of its own); the AuditSink stays auditc's
        # (cluster/audit-sink.yaml), and the receiver Service too (cluster/service.yaml:
        # chart 1.x can neither pin a clusterIP nor choose a NodePort number)
        values["auditLog"] = {"enabled": True, "dynamicBackend": {"enabled": False}}
    if resolved.target.release.overrides == "cli" and falco.rules.disable:
        # Falco < 0.31 cannot disable a rule from a rules file without redefining it whole
        disable = [arg for name in _unique(falco.rules.disable) for arg in ("-D", name)]
        values["extraArgs"] = values.get("extraArgs", []) + disable
    if falco.receiver.tls.enabled:
        webserver["sslEnabled"] = True
        values["certs"] = {"existingSecret": falco.receiver.tls.existing_secret}
    return values


def _unique(names: list[str]) -> list[str]:
    return sorted(set(names))


def _labels(resolved: Resolved, keys: frozenset[str]) -> dict[str, Any]:
    """Site labels and auditc's managed-by on the chart's workload and pods, through the
    values the chart has for them (labels the chart sets itself are left to it)."""
    site = {**resolved.site.metadata.labels, **MANAGED_BY}
    shape = resolved.target.chart.shape
    out: dict[str, Any] = {}

    def allowed(where: str, labels: dict[str, str]) -> dict[str, str]:
        reserved = CHART_LABELS[shape][where]
        return {k: v for k, v in sorted(labels.items()) if k not in reserved}

    if _has(keys, "podLabels.*"):
        out["podLabels"] = allowed("pod", site)
    elif _has(keys, "daemonset.podAnnotations.*"):  # chart 1.1.x: annotations only
        out["daemonset"] = {"podAnnotations": allowed("pod", site)}
    if _has(keys, "controller.labels.*"):
        # the chart's own labels on the workload include managed-by (Helm)
        out.setdefault("controller", {})["labels"] = allowed("controller", resolved.site.metadata.labels)
    return {k: v for k, v in out.items() if v and (not isinstance(v, dict) or any(v.values()))}


def _custom_rules(resolved: Resolved) -> dict[str, str]:
    rules = resolved.site.spec.falco.rules
    out: dict[str, str] = {}
    for index, name in enumerate(rules.custom):
        base = posixpath.basename(name)
        if not base.endswith((".yaml", ".yml")):
            base += ".yaml"  # Falco >= 0.41 loads only .yaml/.yml files from rules.d
        probe = base == PROBE_FILE and resolved.site.spec.falco.probe
        if base in out or base == OVERRIDES_FILE or probe:
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
    if resolved.site.spec.falco.probe:
        out[PROBE_FILE] = probe_rules(resolved.site.spec.falco.namespace)
    return out


def _rules_text(resolved: Resolved, name: str, index: int) -> str:
    """A Falco rules file must be a YAML list; a broken one would crash Falco at start-up."""
    from compiler.spec.source import parse_named

    doc = parse_named(resolved.files[name], resolved.named_display(name), "rules file")
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
    """rules.lists and rules.disable as one rules file loaded after the k8saudit rules, in
    the syntax of the site's Falco (falco-matrix.yaml `overrides`)."""
    rules = resolved.site.spec.falco.rules
    syntax = resolved.target.release.overrides
    out: list[dict[str, Any]] = []
    for name in sorted(rules.lists):
        entry: dict[str, Any] = {"list": name, "items": list(rules.lists[name])}
        entry |= {"override": {"items": "append"}} if syntax == "override" else {"append": True}
        out.append(entry)
    if syntax == "cli":
        return out  # Falco < 0.31: rules are disabled with falco -D (extraArgs)
    for name in _unique(rules.disable):
        entry = {"rule": name, "enabled": False}
        if syntax == "override":
            entry["override"] = {"enabled": "replace"}
        out.append(entry)
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: mappings merge key by key, null deletes a key (as in Helm),
    anything else replaces. A new mapping sharing nothing mutable with either."""
    out: dict[str, Any] = _copied(base)
    _merge_into(out, extra)
    return out


def _merge_into(out: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra`` merged over ``out`` in place, as ``deep_merge`` (``out`` is the caller's own:
    each level is copied once, not again at every level below)."""
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            _merge_into(out[key], value)
        else:
            out[key] = _copied(value)


_IMMUTABLE = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """A copy of plain data sharing nothing mutable (``copy.deepcopy``'s result, without
    its bookkeeping: a fleet merges values for every site)."""
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is list:
        return [_copied(item) for item in value]
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)
