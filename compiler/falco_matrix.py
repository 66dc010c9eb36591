"""The Falco / chart matrix (compiler/data/falco-matrix.yaml) as typed values.

Which chart auditc pins for a Falco release, from which repository, which values shape a
chart version takes, which chart versions were ever published, and the key paths of each
chart's values.yaml. Facts only: the decisions for one site are in ``compiler.falco_target``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from compiler.datafiles import load_data, read_text
from compiler.paths import data_dir
from compiler.versions import Version

Overrides = Literal["cli", "append", "override"]

# Labels each chart shape sets itself on its pods and on its workload (Deployment or
# DaemonSet), which values may not set again: chart 2.x+ templates/_helpers.tpl
# falco.selectorLabels / falco.labels; chart 1.x templates/daemonset.yaml (pod annotations
# there carry checksum/* of their own).
CHART_LABELS: dict[str, dict[str, frozenset[str]]] = {
    "plugin": {
        "pod": frozenset({"app.kubernetes.io/name", "app.kubernetes.io/instance"}),
        "controller": frozenset(
            {
                "helm.sh/chart",
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
            }
        ),
    },
    "webserver": {
        "pod": frozenset({"app", "role", "checksum/config", "checksum/rules", "checksum/certs"}),
        "controller": frozenset({"app", "chart", "release", "heritage"}),
    },
}


@dataclass(frozen=True)
class Release:
    """One Falco minor release and what auditc writes for it by default."""

    falco: Version  # the minor, e.g. 0.38
    newest: Version  # its newest known patch release
    chart: Version
    repository: str  # a key of ``repositories()``
    plugin: bool  # the k8saudit plugin (else the embedded webserver)
    rules_key: str  # rules_file | rules_files
    overrides: Overrides
    bundled_plugin: Version | None  # the k8saudit plugin in the image, if any
    artifacts: str | None  # exact k8saudit artifact version falcoctl installs
    syscall_rules: str | None  # exact falco-rules artifact version
    plugin_api: Version | None  # the plugin API version this Falco supports


@dataclass(frozen=True)
class ChartRange:
    low: Version
    high: Version | None
    shape: str | None  # webserver | plugin | None (unsupported)
    falcoctl: bool
    falcoctl_plugins: bool  # falcoctl installs plugins by default (hiding the image's)
    rules_key: str
    reason: str

    def contains(self, chart: Version) -> bool:
        return self.low <= chart and (self.high is None or chart <= self.high)


@cache
def _matrix() -> dict[str, Any]:
    data = load_data("falco-matrix.yaml")
    assert isinstance(data, dict)
    return data


@cache
def releases() -> tuple[Release, ...]:
    out = []
    for row in _matrix()["releases"]:
        bundled = row.get("bundledPlugin")
        out.append(
            Release(
                falco=Version.parse(row["falco"]),
                newest=Version.parse(row["newest"]),
                chart=Version.parse(row["chart"]),
                repository=row["repository"],
                plugin=row["receiver"] == "plugin",
                rules_key=row["rulesKey"],
                overrides=row["overrides"],
                bundled_plugin=Version.parse(bundled) if bundled else None,
                artifacts=row.get("artifacts"),
                syscall_rules=row.get("syscallRules"),
                plugin_api=Version.parse(row["pluginApi"]) if row.get("pluginApi") else None,
            )
        )
    return tuple(out)


@cache
def release_for(falco: Version) -> Release | None:
    """The row of a Falco release's minor, or None for a minor auditc has no row for."""
    return next((r for r in releases() if r.falco == falco.minor), None)


@cache
def chart_ranges() -> tuple[ChartRange, ...]:
    return tuple(
        ChartRange(
            low=Version.parse(row["from"]),
            high=Version.parse(row["until"]) if row.get("until") else None,
            shape=row.get("shape"),
            falcoctl=bool(row.get("falcoctl")),
            falcoctl_plugins=bool(row.get("falcoctlPlugins")),
            rules_key=row.get("rulesKey", "rules_file"),
            reason=row.get("reason", ""),
        )
        for row in _matrix()["charts"]
    )


def chart_range(chart: Version) -> ChartRange | None:
    return next((r for r in chart_ranges() if r.contains(chart)), None)


def newest_chart_major() -> int:
    return int(_matrix()["newestChartMajor"]["value"])


def repositories() -> dict[str, str]:
    """Repository key -> URL of the public chart repositories auditc knows."""
    return {key: entry["url"] for key, entry in _matrix()["repositories"].items()}


def repository_key(url: str) -> str | None:
    """The key of a known public repository, however its URL is spelt (scheme, case, a
    trailing slash); None for any other repository (a mirror)."""

    def plain(text: str) -> str:
        return text.lower().removeprefix("https://").removeprefix("http://").rstrip("/")

    return next((key for key, known in repositories().items() if plain(known) == plain(url)), None)


def ships(chart: Version) -> Version | None:
    """The Falco a published chart version was made for (its appVersion), from any known
    repository: a mirror holds the same chart versions."""
    tables = published()
    return next(
        (tables[key][chart] for key in ("falcosecurity", "stable") if chart in tables.get(key, {})), None
    )


def artifact_file(artifact: str) -> str:
    return str(_matrix()["artifactFiles"][artifact]["file"])


@cache
def published() -> dict[str, dict[Version, Version]]:
    """Repository key -> {chart version: the Falco it ships (appVersion)} for every chart
    version ever published there."""
    out: dict[str, dict[Version, Version]] = {}
    for line in read_text("falco-charts-published.tsv").splitlines():
        if not line or line.startswith(("#", "repository\t")):
            continue
        repository, chart, app = line.split("\t")
        out.setdefault(repository, {})[Version.parse(chart)] = Version.parse(app.split("-")[0])
    return out


def default_charts() -> frozenset[Version]:
    """Charts with a key list of their own: every release row's default chart."""
    return frozenset(r.chart for r in releases())


def keys_file(chart: Version, where: ChartRange) -> str:
    """The key list a chart's values are checked against: its own when auditc has it, else
    the nearest default chart below it in its range, else the lowest one in the range."""
    if _has_keys(str(chart)):
        return str(chart)
    candidates = sorted(c for c in default_charts() if where.contains(c))
    below = [c for c in candidates if c <= chart]
    if below:
        return str(below[-1])
    if candidates:
        return str(candidates[0])
    return str(max(default_charts()))  # a major newer than known: the newest chart's keys


@cache
def _has_keys(chart: str) -> bool:
    """Whether auditc has the key list of ``chart`` (its own data: asked once a process)."""
    return (data_dir() / "chart-keys" / f"{chart}.txt").is_file()


@cache
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
