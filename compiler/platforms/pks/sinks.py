"""cluster/sinks.yaml: PKS/TKGI sink custom resources from ``spec.sinks`` (SPEC.md §5).

Field names follow the sink CRDs (knative/observability ``config/100-*-crd.yaml``, the public
twin of the private pivotal-cf/sink-resources): ``type``, ``host``, ``port``, ``enable_tls``,
``insecure_skip_verify``, ``url``, ``inputs``, ``outputs``. The checks mirror the sink
validating webhook (kobs ``pkg/webhook/server.go``; ``validator.pksapi.io`` on TKGI), so a
spec auditc accepts is one ``kubectl apply`` accepts.

Kinds and groups by PKS version (shared/reference/pks-bosh.md §2.1):

- PKS >= 1.5: ``pksapi.io/v1beta1``; ClusterLogSink, LogSink, ClusterMetricSink, MetricSink;
  syslog sinks must have ``enable_tls: true``.
- PKS 1.2 .. 1.4: ``apps.pivotal.io/v1beta1``; ClusterSink, Sink (log sinks), and from 1.4
  ClusterMetricSink. No namespaced metric sink; TLS optional.

A spec may name a log sink by its modern or its legacy kind; it is emitted as the kind the
site's PKS version has (1.5 renamed them and migrated existing sinks, so both names mean the
same object). Nothing is said about it: the name is not a mistake, only an older spelling.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

from compiler.artifacts.cluster import labels
from compiler.errors import Diagnostic, UserError, format_path
from compiler.platforms.pks.settings import PksPlatform
from compiler.resolve import Resolved
from compiler.spec.model import Sink, SinkTLS
from compiler.spec.types import excerpt, is_host
from compiler.versions import Version

# These thresholds could live in compiler/data/versions.yaml next to the other version facts.
SINKS_FROM = Version.parse("1.2")  # first PKS with sink resources (ClusterSink, Sink)
CLUSTER_METRIC_SINK_FROM = Version.parse("1.4")  # ClusterMetricSink, apps.pivotal.io (docs-pks@1.4)
PKSAPI_FROM = Version.parse("1.5")  # pksapi.io group, new kind names, MetricSink, TLS mandatory

PKSAPI_GROUP = "pksapi.io/v1beta1"
LEGACY_GROUP = "apps.pivotal.io/v1beta1"

_LEGACY_TO_MODERN = {"ClusterSink": "ClusterLogSink", "Sink": "LogSink"}
_MODERN_TO_LEGACY = {modern: legacy for legacy, modern in _LEGACY_TO_MODERN.items()}
_CLUSTER_SCOPED = frozenset({"ClusterLogSink", "ClusterMetricSink"})
_METRIC_KINDS = frozenset({"ClusterMetricSink", "MetricSink"})
_LOG_FIELDS = ("type", "host", "port", "url")

# Telegraf plugin names (inputs.<name>, outputs.<name>) and the option names Telegraf maps onto
# a plugin's Go struct fields: a key with any other character can never match a field, and
# `telegraf --test` (run by the validator) refuses a configuration with unused fields.
_TELEGRAF_PLUGIN = re.compile(r"[a-z][a-z0-9_]*")
_TELEGRAF_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# characters RFC 3986 allows nowhere in a URI (plus whitespace and controls)
_NOT_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\"<>\\^`{|}]")

Path = tuple[str | int, ...]


def canonical_kind(kind: str) -> str:
    """The PKS >= 1.5 name of a sink kind (ClusterSink -> ClusterLogSink, Sink -> LogSink)."""
    return _LEGACY_TO_MODERN.get(kind, kind)


def api_version_and_kind(kind: str, pks_version: Version) -> tuple[str, str]:
    """The apiVersion and kind a sink of ``kind`` has on PKS ``pks_version``."""
    modern = canonical_kind(kind)
    if pks_version >= PKSAPI_FROM:
        return PKSAPI_GROUP, modern
    return LEGACY_GROUP, _MODERN_TO_LEGACY.get(modern, modern)


def check_sinks(resolved: Resolved) -> list[Diagnostic]:
    """Every problem in ``spec.sinks`` at once, each with its field path and spec location."""
    spec = resolved.site.spec
    if not spec.sinks:
        return []
    checks = _Checks(resolved)
    platform = spec.platform
    if not isinstance(platform, PksPlatform):
        checks.error(("spec", "sinks"), f"sinks exist only on platform pks (this site is {platform.type})")
        return checks.items
    version = Version.parse(platform.pks.version)
    if version < SINKS_FROM:
        checks.error(
            ("spec", "platform", "pks", "version"),
            f"sink resources exist from PKS {SINKS_FROM}; this site runs PKS {version} "
            f"and lists {len(spec.sinks)} sink(s)",
        )
        return checks.items
    seen: dict[tuple[str, str, str], int] = {}
    for index, sink in enumerate(spec.sinks):
        base: Path = ("spec", "sinks", index)
        _check_one(checks, base, sink, version)
        _, kind = api_version_and_kind(sink.kind, version)  # ClusterSink and ClusterLogSink collide
        cluster_scoped = canonical_kind(sink.kind) in _CLUSTER_SCOPED
        namespace = "" if cluster_scoped or not sink.namespace else sink.namespace
        key = (kind, namespace, sink.name)
        if key in seen:
            where = f" in namespace {namespace}" if namespace else ""
            checks.error(
                (*base, "name"),
                f"duplicate: spec.sinks[{seen[key]}] is already the {kind} named {sink.name!r}{where}; "
                "the second would replace the first",
            )
        else:
            seen[key] = index
    return checks.items


def sink_objects(resolved: Resolved) -> list[dict[str, Any]]:
    """One sink custom resource per ``spec.sinks`` entry, in spec order.

    Raises ``UserError`` with every error ``check_sinks`` finds: an invalid sink is never
    rendered.
    """
    errors = [d for d in check_sinks(resolved) if d.severity == "error"]
    if errors:
        raise UserError(errors)
    platform = resolved.site.spec.platform
    if not isinstance(platform, PksPlatform):
        return []  # no sinks (check_sinks refuses sinks on other platforms)
    version = Version.parse(platform.pks.version)
    return [_sink_object(resolved, sink, version) for sink in resolved.site.spec.sinks]


def _sink_object(resolved: Resolved, sink: Sink, version: Version) -> dict[str, Any]:
    api_version, kind = api_version_and_kind(sink.kind, version)
    metadata: dict[str, Any] = {"name": sink.name}
    if canonical_kind(sink.kind) not in _CLUSTER_SCOPED:
        metadata["namespace"] = sink.namespace
    metadata["labels"] = labels(resolved)
    spec: dict[str, Any]
    if canonical_kind(sink.kind) in _METRIC_KINDS:
        spec = {}
        if sink.inputs:
            spec["inputs"] = copy.deepcopy(sink.inputs)
        spec["outputs"] = copy.deepcopy(sink.outputs)
    elif sink.type == "syslog":
        spec = {"type": "syslog", "host": sink.host, "port": sink.port, "enable_tls": sink.tls.enabled}
        if sink.tls.insecure_skip_verify:
            spec["insecure_skip_verify"] = True
    else:
        spec = {"type": "webhook", "url": sink.url}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


class _Checks:
    def __init__(self, resolved: Resolved) -> None:
        self.doc = resolved.doc
        self.items: list[Diagnostic] = []

    def error(self, path: Path, message: str) -> None:
        self.items.append(Diagnostic(message, self.doc.location(path), format_path(path)))


def _check_one(checks: _Checks, base: Path, sink: Sink, version: Version) -> None:
    kind = canonical_kind(sink.kind)
    if kind in _METRIC_KINDS:
        since = CLUSTER_METRIC_SINK_FROM if kind == "ClusterMetricSink" else PKSAPI_FROM
        if version < since:
            checks.error((*base, "kind"), f"{kind} exists from PKS {since}; this site runs PKS {version}")
    if kind in _CLUSTER_SCOPED and sink.namespace is not None:
        _, namespaced_kind = api_version_and_kind(kind.removeprefix("Cluster"), version)
        checks.error(
            (*base, "namespace"),
            f"{sink.kind} is cluster-scoped and takes no namespace "
            f"(the namespaced kind is {namespaced_kind})",
        )
    if kind not in _CLUSTER_SCOPED and sink.namespace is None:
        _, cluster_kind = api_version_and_kind(f"Cluster{kind}", version)
        checks.error(
            (*base, "namespace"),
            f"required for {sink.kind}: the namespace it belongs to "
            f"(for the whole cluster use {cluster_kind})",
        )
    if kind in _METRIC_KINDS:
        _check_metric(checks, base, sink, kind)
    else:
        _check_log(checks, base, sink, version)


def _check_log(checks: _Checks, base: Path, sink: Sink, version: Version) -> None:
    for name in ("inputs", "outputs"):
        if getattr(sink, name):
            checks.error((*base, name), f"only for metric sinks (this is a {sink.kind})")
    if sink.type is None:
        checks.error((*base, "type"), f"required for {sink.kind}: syslog or webhook")
        return
    if sink.type == "syslog":
        _check_syslog(checks, base, sink, version)
    else:
        _check_webhook(checks, base, sink)


def _check_syslog(checks: _Checks, base: Path, sink: Sink, version: Version) -> None:
    if sink.host is None:
        checks.error((*base, "host"), "required for syslog sinks: the syslog server's host name or IP")
    elif not is_host(sink.host):
        checks.error(
            (*base, "host"),
            f"must be an IP address or a DNS host name (no spaces, quotes or shell characters) "
            f"(got {excerpt(sink.host)})",
        )
    if sink.port is None:
        checks.error((*base, "port"), "required for syslog sinks: 1..65535 (6514 is syslog over TLS)")
    elif not 1 <= sink.port <= 65535:
        checks.error((*base, "port"), f"must be 1..65535 (got {sink.port})")
    if sink.url is not None:
        checks.error((*base, "url"), "only for webhook sinks (a syslog sink sends to host and port)")
    tls = sink.tls
    if not tls.enabled and version >= PKSAPI_FROM:
        checks.error(
            (*base, "tls", "enabled"),
            f"must be true: PKS >= {PKSAPI_FROM} refuses insecure syslog sinks "
            f"(validator: 'Insecure syslog sink not allowed'; this site runs PKS {version})",
        )
    if not tls.enabled and tls.insecure_skip_verify:
        checks.error((*base, "tls", "insecureSkipVerify"), "only meaningful with tls.enabled: true")


def _check_webhook(checks: _Checks, base: Path, sink: Sink) -> None:
    for name in ("host", "port"):
        if getattr(sink, name) is not None:
            checks.error((*base, name), "only for syslog sinks (a webhook sink sends to its url)")
    _check_no_tls(checks, base, sink, "a webhook's TLS follows its https:// URL and is always verified")
    path = (*base, "url")
    url = sink.url
    if url is None:
        checks.error(path, "required for webhook sinks: an https:// URL")
        return
    if len(url) > 2048 or _NOT_IN_URL.search(url):
        checks.error(path, f"must be a URL without spaces, quotes or control characters (got {excerpt(url)})")
        return
    if not url.startswith("https://"):
        checks.error(
            path, f"must be an https:// URL: the validator refuses insecure webhooks (got {excerpt(url)})"
        )
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # urllib refuses some hosts ("https://]/", "https://[zz]/")
        checks.error(path, f"is not a valid URL (a bad host or port; got {excerpt(url)})")
        return
    if "@" in parts.netloc:
        checks.error(
            path, "must not hold credentials (user@ or user:password@): the spec never holds secrets"
        )
    elif not parts.hostname or not is_host(parts.hostname):
        checks.error(path, f"must name a valid host: an IP address or a DNS host name (got {excerpt(url)})")
    elif port is not None and not 1 <= port <= 65535:
        checks.error(path, f"port must be 1..65535 (got {port})")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        checks.error(
            path,
            "must not have a query or fragment: the sink controller sends to the URL's host, port "
            "and path only, so they would be dropped",
        )


def _check_metric(checks: _Checks, base: Path, sink: Sink, kind: str) -> None:
    for name in _LOG_FIELDS:
        if getattr(sink, name) is not None:
            checks.error((*base, name), f"only for log sinks (a {sink.kind} has inputs and outputs)")
    _check_no_tls(checks, base, sink, "a metric sink's TLS is set per Telegraf plugin")
    if not sink.outputs:
        checks.error(
            (*base, "outputs"),
            f"a {sink.kind} needs at least one output: a Telegraf output plugin, e.g. "
            "{type: http, url: https://..., data_format: json}",
        )
    for section in ("inputs", "outputs"):
        for index, plugin in enumerate(getattr(sink, section)):
            _check_plugin(checks, (*base, section, index), plugin, section, kind)


def _check_plugin(checks: _Checks, path: Path, plugin: dict[str, Any], section: str, kind: str) -> None:
    what = section.removesuffix("s")
    name = plugin.get("type")
    if "type" not in plugin:
        checks.error((*path, "type"), f"required: every {what} names its Telegraf {what} plugin in `type`")
    elif not isinstance(name, str):
        checks.error(
            (*path, "type"), f"must be a string: the Telegraf {what} plugin's name (got {excerpt(name)})"
        )
    elif not _TELEGRAF_PLUGIN.fullmatch(name):
        checks.error(
            (*path, "type"),
            f"must be a Telegraf {what} plugin name: lowercase letters, digits and '_' (got {excerpt(name)})",
        )
    elif section == "inputs" and name == "kubernetes":
        reason = (
            "a ClusterMetricSink always has the Telegraf kubernetes input; remove it"
            if kind == "ClusterMetricSink"
            else "the validator refuses the kubernetes input on every metric sink "
            "(a ClusterMetricSink collects kubelet metrics already)"
        )
        checks.error((*path, "type"), reason)
    for key, value in plugin.items():
        if key != "type" and not _TELEGRAF_OPTION.fullmatch(key):
            checks.error(
                (*path, key),
                f"{key!r} is not a Telegraf option name (letters, digits and '_'); Telegraf refuses "
                "options it does not know, and so does the validator (telegraf --test)",
            )
        _check_no_null(checks, (*path, key), value)


def _check_no_null(checks: _Checks, path: Path, value: Any) -> None:
    """Plugin maps become Telegraf TOML, which has no null."""
    if value is None:
        checks.error(path, "must have a value: Telegraf's TOML has no null (leave the option out instead)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_null(checks, (*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_null(checks, (*path, index), item)


def _check_no_tls(checks: _Checks, base: Path, sink: Sink, reason: str) -> None:
    """``tls`` is a syslog setting; on other sinks only its defaults are accepted (SinkTLS()
    cannot tell a default from a value written, so a written default passes)."""
    default = SinkTLS()
    if sink.tls.enabled != default.enabled:
        checks.error((*base, "tls", "enabled"), f"only for syslog sinks: {reason}")
    if sink.tls.insecure_skip_verify != default.insecure_skip_verify:
        checks.error((*base, "tls", "insecureSkipVerify"), f"only for syslog sinks: {reason}")
