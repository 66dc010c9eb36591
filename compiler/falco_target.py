"""Which Falco, which chart and which artifacts one site gets: spec + falco-matrix.yaml.

Every decision the Falco values, the GitOps objects and the plan depend on is made here,
once, and each refusal or warning points at the spec field that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler import falco_matrix as matrix
from compiler import versions
from compiler.checks import Checks
from compiler.falco_matrix import ChartRange, Release
from compiler.platform import PullSource
from compiler.spec.model import Site
from compiler.versions import Version

Path = tuple[str | int, ...]
FALCO = ("spec", "falco")
VERSION_FIELD = (*FALCO, "version")
CHART_FIELD = (*FALCO, "chart", "version")
ARTIFACTS_FIELD = (*FALCO, "rules", "artifactsVersion")
FOLLOW_FIELD = (*FALCO, "rules", "follow")


@dataclass(frozen=True)
class ChartRef:
    """The chart release a site installs, exactly."""

    repository: str  # URL
    repository_key: str | None  # stable | falcosecurity; None for a mirror auditc does not know
    name: str
    version: str
    shape: str  # webserver | plugin
    falcoctl: bool  # the chart runs falcoctl (an emptyDir over /etc/falco)
    falcoctl_plugins: bool  # ...and, by default, installs plugins (an emptyDir over the image's)
    rules_key: str  # the rules key of the chart's own default falco.yaml
    keys: str  # the chart-keys list its values are checked against
    ships: Version | None  # the Falco the chart was made for (its appVersion), when published
    # chart 1.0.x: mounts the k8s audit rules only with the webserver on, and then always
    # renders a receiver Service and an AuditSink of its own (no auditLog values)
    owns_audit_sink: bool = False


@dataclass(frozen=True)
class FalcoTarget:
    version: Version  # the image tag
    release: Release  # the matrix row it follows
    chart: ChartRef
    artifacts: str | None  # the k8saudit artifact version falcoctl installs (None: no falcoctl)
    install_plugin: bool  # falcoctl installs the k8saudit plugin (the image has none, or it is hidden)
    syscall_rules: str | None  # the falco-rules artifact version (falco.syscalls with falcoctl)
    follow: bool  # falcoctl follows the k8saudit rules (explicit opt-in)

    @property
    def plugin(self) -> bool:
        return self.release.plugin

    @property
    def rules_key(self) -> str:
        return self.release.rules_key


def resolve_falco(site: Site, checks: Checks) -> FalcoTarget:
    spec = site.spec.falco
    version, release, known = _release(spec.version, checks)
    given_chart = spec.chart.version
    chart_version = Version.parse(given_chart) if given_chart else release.chart
    chart_field = CHART_FIELD if given_chart else VERSION_FIELD
    if given_chart and given_chart.count(".") != 2:
        checks.error(
            CHART_FIELD,
            f"must be an exact chart version (X.Y.Z): helm reads {given_chart} as a range and installs "
            "whatever is newest in it",
        )
    where = _chart_range(chart_version, chart_field, checks)
    repository, key = _repository(site, chart_version, given_chart is not None, release, checks)
    ships = matrix.published().get(key or "", {}).get(chart_version) or matrix.ships(chart_version)
    keys = matrix.keys_file(chart_version, where)
    chart = ChartRef(
        repository=repository,
        repository_key=key,
        name=spec.chart.name,
        version=str(chart_version),
        shape=where.shape or "plugin",
        falcoctl=where.falcoctl,
        falcoctl_plugins=where.falcoctl_plugins,
        rules_key=where.rules_key,
        keys=keys,
        ships=ships,
        owns_audit_sink=where.shape == "webserver" and "auditLog.enabled" not in matrix.chart_keys(keys),
    )
    if where.shape is not None:
        _shape_fits(version, release, chart, chart_field, checks)
    if chart.owns_audit_sink:
        _audit_sink_chart(site, chart, chart_field, checks)
    if given_chart and ships is not None and ships.minor != version.minor:
        checks.warn(
            CHART_FIELD,
            f"chart {chart.version} was made for Falco {ships}; this site runs Falco {version} with it "
            "(the values follow Falco " + f"{version}, the chart's templates do not)",
            code="AUD022",
        )
    # falcoctl installs the plugin when the image has none, and wherever the chart's falcoctl
    # installs plugins anyway (its emptyDir then hides the image's own)
    install_plugin = release.plugin and (release.bundled_plugin is None or chart.falcoctl_plugins)
    if known:
        artifacts, syscall_rules = _artifacts(site, version, release, chart, install_plugin, checks)
    else:  # already refused: no follow-up errors about a release that does not exist
        artifacts, syscall_rules = release.artifacts, release.syscall_rules
    return FalcoTarget(
        version=version,
        release=release,
        chart=chart,
        artifacts=artifacts,
        install_plugin=install_plugin,
        syscall_rules=syscall_rules,
        follow=spec.rules.follow,
    )


def _release(text: str | None, checks: Checks) -> tuple[Version, Release, bool]:
    """The Falco version (image tag), its matrix row, and whether that release exists; a
    minor alone means its newest patch."""
    newest = max(matrix.releases(), key=lambda r: r.falco)
    if text is None:
        version = versions.falco_default()
        row = matrix.release_for(version)
        assert row is not None
        return version, row, True
    version = Version.parse(text)
    row = matrix.release_for(version)
    oldest = Version.parse(versions.fact("falco", "oldest"))
    if row is None and version.minor > newest.falco:
        if len(version.parts) == 2:
            checks.error(
                VERSION_FIELD,
                f"auditc knows no patch release of Falco {version}: give the exact version (X.Y.Z) "
                "the image is tagged with",
            )
            return version, newest, False
        checks.warn(
            VERSION_FIELD,
            f"Falco {version} is newer than the newest known ({newest.newest}); its values follow "
            f"{newest.falco} (chart {newest.chart}, artifacts {newest.artifacts})",
            code="AUD019",
        )
        return version, newest, True
    if row is None:
        if version.minor < oldest:
            checks.error(VERSION_FIELD, f"Falco {version} is not supported: the oldest is {oldest}")
        else:
            listed = ", ".join(str(r.falco) for r in matrix.releases())
            checks.error(VERSION_FIELD, f"there is no Falco {version.minor} release (known minors: {listed})")
        return version, newest, False
    if len(version.parts) == 2:
        return row.newest, row, True
    if version > row.newest:
        checks.warn(
            VERSION_FIELD,
            f"Falco {version} is not a release auditc knows (newest {row.falco}.x known: {row.newest}); "
            "make sure the image tag exists",
            code="AUD019",
        )
    return version, row, True


def _chart_range(chart: Version, field: Path, checks: Checks) -> ChartRange:
    where = matrix.chart_range(chart)
    if where is None:
        checks.error(
            field, f"chart {chart} is older than any chart auditc writes values for (1.0.0 and later)"
        )
        return matrix.chart_ranges()[-1]
    if where.shape is None:
        checks.error(field, f"auditc writes no values for chart {chart}: {where.reason}")
    elif chart.parts[0] > matrix.newest_chart_major():
        newest = matrix.newest_chart_major()
        checks.warn(
            field,
            f"chart {chart} is newer than any chart auditc knows ({newest}.x); its values are written "
            f"as for chart {newest}.x: check them with `helm template`",
            code="AUD023",
        )
    return where


def _repository(
    site: Site, chart: Version, chart_given: bool, release: Release, checks: Checks
) -> tuple[str, str | None]:
    """The chart repository (URL and key): the spec's, else the one that published the chart."""
    field = (*FALCO, "chart", "repository")
    given = site.spec.falco.chart.repository
    published = matrix.published()
    urls = matrix.repositories()
    if given is not None:
        key = matrix.repository_key(given)
        if key is not None and chart not in published.get(key, {}):
            if chart > max(published[key]):
                _newer_than_published(chart, key, checks)
            else:
                others = [k for k in published if chart in published[k]]
                hint = (
                    f"; it is published in {urls[others[0]]}" if others else _nearest(chart, published[key])
                )
                checks.error(
                    CHART_FIELD if chart_given else field,
                    f"chart {chart} was never published to {urls[key]}{hint}",
                )
        return given, key
    if not chart_given:
        return urls[release.repository], release.repository
    for key in ("falcosecurity", "stable"):
        if chart in published.get(key, {}):
            return urls[key], key
    if chart > max(published["falcosecurity"]):
        _newer_than_published(chart, "falcosecurity", checks)
    else:
        everywhere = {c: a for table in published.values() for c, a in table.items()}
        checks.error(CHART_FIELD, f"chart {chart} was never published{_nearest(chart, everywhere)}")
    return urls["falcosecurity"], "falcosecurity"


def _newer_than_published(chart: Version, key: str, checks: Checks) -> None:
    """A chart published after auditc's list was taken: helm will find it, or say so."""
    if chart.parts[0] > matrix.newest_chart_major():
        return  # the chart range check says so already
    newest = max(matrix.published()[key])
    checks.warn(
        CHART_FIELD,
        f"chart {chart} is newer than the newest chart auditc knows in {matrix.repositories()[key]} "
        f"({newest}); its values are written as for its range: check them with `helm template`",
        code="AUD023",
    )


def _nearest(chart: Version, table: dict[Version, Version]) -> str:
    lower = [c for c in table if c < chart]
    higher = [c for c in table if c > chart]
    near = [str(max(lower))] if lower else []
    near += [str(min(higher))] if higher else []
    return f" (published versions next to it: {', '.join(near)})" if near else ""


def _shape_fits(version: Version, release: Release, chart: ChartRef, field: Path, checks: Checks) -> None:
    default = f"the default for Falco {release.falco} is chart {release.chart}"
    if release.plugin and chart.shape == "webserver":
        checks.error(
            field,
            f"Falco {version} receives audit events with the k8saudit plugin; chart {chart.version} "
            f"configures the embedded webserver of Falco < 0.32 ({default})",
        )
    elif not release.plugin and chart.shape == "plugin":
        checks.error(
            field,
            f"Falco {version} has no k8saudit plugin (the embedded webserver receives audit events); "
            f"chart {chart.version} configures the plugin ({default})",
        )
    elif release.plugin and release.bundled_plugin is None and not chart.falcoctl:
        checks.error(
            field,
            f"Falco {version} images ship no plugins and chart {chart.version} has no falcoctl to "
            f"install the k8saudit plugin ({default})",
        )


def _audit_sink_chart(site: Site, chart: ChartRef, field: Path, checks: Checks) -> None:
    """Chart 1.0.x works only as the 2019 runbooks ran it: dynamic auditing, with its own
    AuditSink dialing the receiver's pinned clusterIP on the webserver port."""
    service = site.spec.falco.receiver.service
    why = (
        f"chart {chart.version} mounts the k8s audit rules only together with an AuditSink of its own "
        "(dynamic auditing, Kubernetes 1.13 .. 1.18)"
    )
    if not site.spec.audit.dynamic:
        checks.error(
            field,
            f"{why}: set audit.dynamic with a ClusterIP receiver, or run Falco >= 0.18 (chart 1.1.0)",
        )
    elif service.type != "ClusterIP" or not service.cluster_ip:
        checks.error(
            (*FALCO, "receiver", "service", "type"),
            f"{why}, which dials the receiver's pinned clusterIP: use service.type ClusterIP with clusterIP",
        )
    # the chart's AuditSink installs only once the apiservers serve that API, so the node
    # change comes first: nothing else may dial Falco before it is up
    if site.spec.audit.dynamic and site.spec.audit.webhook.enabled:
        checks.error(
            ("spec", "audit", "webhook", "enabled"),
            f"{why}; the apiservers must serve that API before the chart installs, so they would "
            "dial the webhook before Falco is up: set audit.webhook.enabled false",
        )
    if site.spec.audit.dynamic and site.spec.gitops.engine != "none":
        checks.error(
            ("spec", "gitops", "engine"),
            f"{why}; Argo CD or Flux would sync it before the apiservers serve that API: use engine none",
        )


def _artifacts(
    site: Site, version: Version, release: Release, chart: ChartRef, install_plugin: bool, checks: Checks
) -> tuple[str | None, str | None]:
    rules = site.spec.falco.rules
    if not release.plugin or not chart.falcoctl:
        why = (
            f"Falco {version} predates the k8saudit plugin"
            if not release.plugin
            else f"chart {chart.version} has no falcoctl: the k8saudit rules come with the chart"
        )
        if rules.artifacts_version:
            checks.error(ARTIFACTS_FIELD, f"no k8saudit artifacts are installed: {why}")
        if rules.follow:
            checks.error(FOLLOW_FIELD, f"nothing can follow the k8saudit rules: {why}")
        return None, None
    artifacts = rules.artifacts_version or release.artifacts
    if artifacts is None:
        checks.error(
            ARTIFACTS_FIELD if rules.artifacts_version else VERSION_FIELD,
            f"no k8saudit artifact version is known for Falco {version} on a chart with falcoctl "
            f"(chart {chart.version}); set spec.falco.rules.artifactsVersion or use chart {release.chart}",
        )
        return None, None
    if artifacts.count(".") == 1:
        checks.warn(
            ARTIFACTS_FIELD,
            f"k8saudit:{artifacts} is a moving tag: what a pod installs changes with every "
            f"{artifacts}.x release, without a commit; pin the exact version",
            code="AUD024",
        )
    _requirements(site, version, None if install_plugin else release.bundled_plugin, artifacts, checks)
    if install_plugin:
        _plugin_api(site, version, release, artifacts, checks)
    syscall_rules = release.syscall_rules if site.spec.falco.syscalls else None
    if site.spec.falco.syscalls and syscall_rules is None:
        checks.error(
            (*FALCO, "syscalls"),
            f"no falco-rules artifact version is known for Falco {version} on a chart with falcoctl "
            f"(chart {chart.version}); use chart {release.chart}",
        )
    return artifacts, syscall_rules


def _requirements(
    site: Site, version: Version, bundled: Version | None, artifacts: str, checks: Checks
) -> None:
    """The engine and plugin versions the k8saudit rules artifact requires (the plugin is the
    image's, ``bundled``, or the one falcoctl installs at the rules' version)."""
    engine = versions.falco_engine(version) or 0
    plugin = bundled or Version.parse(artifacts)
    field = ARTIFACTS_FIELD if site.spec.falco.rules.artifacts_version else VERSION_FIELD
    need = None
    for entry in versions.falco_table()["rulesRequirements"]:
        if Version.parse(artifacts) >= Version.parse(entry["artifacts"]):
            need = entry
    if need is None:
        return
    if engine < int(need["engine"]):
        checks.error(
            field,
            f"k8saudit rules {artifacts} need rules engine {need['engine']}; Falco {version} has engine "
            f"{engine}: use a newer Falco or older rules",
        )
    if plugin < Version.parse(need["plugin"]):
        checks.error(
            field,
            f"k8saudit rules {artifacts} need the k8saudit plugin {need['plugin']}; the Falco {version} "
            f"image ships plugin {plugin}: use rules below {need['artifacts']}",
        )


def _plugin_api(site: Site, version: Version, release: Release, artifacts: str, checks: Checks) -> None:
    """Falco loads a plugin only when the plugin API it requires has the same major and a
    minor no higher than Falco's (libs plugin_loader.c plugin_check_required_api_version)."""
    if release.plugin_api is None:
        return
    need = None
    for entry in versions.falco_table()["pluginApiRequirements"]:
        if Version.parse(artifacts) >= Version.parse(entry["plugin"]):
            need = Version.parse(entry["api"])
    if need is None:
        return
    have = release.plugin_api
    if need.parts[0] != have.parts[0] or need > have:
        field = ARTIFACTS_FIELD if site.spec.falco.rules.artifacts_version else VERSION_FIELD
        checks.error(
            field,
            f"the k8saudit plugin {artifacts} needs plugin API {need}; Falco {version} loads plugins of "
            f"API {have.parts[0]}.x up to {have}: use the artifacts of the Falco {release.falco} row "
            f"({release.artifacts or 'none'})",
        )


MODE_FIELD = (*FALCO, "receiver", "mode")
LOG = ("spec", "audit", "log")


def logfile_source(
    site: Site, target: FalcoTarget, log_path: str | None, checks: Checks
) -> PullSource | None:
    """falco.receiver.mode logfile: the k8saudit plugin reads the audit log file on each
    control-plane node (no webhook, no receiver); None, with the errors said, when the
    site's log or Falco cannot carry it."""
    pin = versions.falco_table()["logfilePlugin"]
    since = Version.parse(pin["from"])
    log = site.spec.audit.log
    ok = True
    if not log.enabled or log_path in (None, "-"):
        field = (*LOG, "path") if log.enabled else (*LOG, "enabled")
        checks.error(field, "falco.receiver.mode logfile reads the audit log file: log to a file")
        ok = False
    if log.format != "json":
        checks.error((*LOG, "format"), "falco.receiver.mode logfile reads JSON lines: set format json")
        ok = False
    if target.version < since or target.artifacts is None:
        checks.error(
            MODE_FIELD,
            f"needs Falco {since} or later: the k8saudit plugin follows a log file from "
            f"{pin['k8saudit']} on (this site runs {target.version})",
        )
        ok = False
    if not ok or log_path is None or target.artifacts is None:
        return None
    return PullSource(
        plugin="k8saudit",
        library="libk8saudit.so",
        init_config={},  # the plugin's defaults (maxEventSize 262144); no webserver
        open_params=f"file://{log_path}",
        artifact=f"k8saudit:{pin['k8saudit']}",
        rules=target.artifacts,
        json=str(pin["json"]),
        service_account_annotations={},
        identity=None,
        where=f"the audit log file {log_path} on each control-plane node",
        host_log_dir=log_path.rsplit("/", 1)[0] or "/",
    )
