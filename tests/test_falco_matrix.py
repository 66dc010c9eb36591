"""The Falco / chart matrix (compiler/data/falco-matrix.yaml): every row against the published
chart lists, the cutoffs and the chart key lists; and what a spec gets for every Falco it
may name, every chart it may pin and every pairing auditc refuses or warns about."""

from __future__ import annotations

import csv
import itertools
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from compiler import falco_matrix, versions
from compiler.api import analyse, compile_site
from compiler.datafiles import load_data
from compiler.errors import Diagnostic, UserError
from compiler.versions import Version
from tests.sites import ROOT, write_spec
from tests.tools import yaml12

yaml = yaml12
DATA = ROOT / "tests" / "data"
MATRIX = load_data("falco-matrix.yaml")
ROWS = falco_matrix.releases()


def _cut(name: str) -> Version:
    return Version.parse(versions.fact("falco", name))


# ---- the data -------------------------------------------------------------------------


def test_published_lists_are_the_upstream_ones() -> None:
    expected: dict[str, dict[Version, Version]] = {}
    for repository in ("stable", "falcosecurity"):
        with (DATA / "falco-charts" / f"published-{repository}.tsv").open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                app = Version.parse(row["app_version"].split("-")[0])
                expected.setdefault(repository, {})[Version.parse(row["chart_version"])] = app
    assert falco_matrix.published() == expected


def test_one_row_per_falco_minor_from_0_17_to_0_44() -> None:
    minors = [str(row.falco) for row in ROWS]
    # there is no Falco 0.22 (falco tags: 0.21.0, then 0.23.0)
    assert minors == [f"0.{n}" for n in range(17, 45) if n != 22]
    assert str(ROWS[0].falco) == versions.fact("falco", "oldest")
    assert str(ROWS[-1].newest) == versions.fact("falco", "default")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: str(r.falco))
def test_default_chart_is_the_newest_published_for_its_minor(row: falco_matrix.Release) -> None:
    published = falco_matrix.published()[row.repository]
    assert published.get(row.chart, Version((0,))).minor == row.falco, "the chart ships this Falco minor"
    same_minor = [
        c for table in falco_matrix.published().values() for c, a in table.items() if a.minor == row.falco
    ]
    assert row.chart == max(same_minor)
    assert row.newest.minor == row.falco
    assert falco_matrix.repositories()[row.repository].startswith("https://")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: str(r.falco))
def test_row_follows_the_cutoffs(row: falco_matrix.Release) -> None:
    falco = row.newest
    assert row.plugin == (falco >= _cut("pluginFrom"))
    assert (row.rules_key == "rules_files") == (falco >= _cut("rulesFilesFrom"))
    expected = "override" if falco >= _cut("ruleOverrideFrom") else "append"
    assert row.overrides == (expected if falco >= _cut("enabledOnlyFrom") else "cli")
    # Falco 0.32 .. 0.36 images bundle the plugin; from 0.37 (chart 4.0.0) falcoctl installs it
    assert (row.bundled_plugin is not None) == (row.plugin and falco < Version.parse("0.37.0"))
    where = falco_matrix.chart_range(row.chart)
    assert where is not None and where.shape == ("plugin" if row.plugin else "webserver")
    assert where.rules_key == row.rules_key, "the default chart's falco.yaml uses the key this Falco reads"
    if where.falcoctl:
        assert row.artifacts is not None and row.artifacts.count(".") == 2, "artifacts pinned exactly"
        assert (DATA / "falco-plugins" / f"k8s_audit_rules-{row.artifacts}.yaml").is_file()
        assert row.syscall_rules is not None and row.syscall_rules.count(".") == 2
    else:
        assert row.artifacts is None


@pytest.mark.parametrize("row", [r for r in ROWS if r.artifacts], ids=lambda r: str(r.falco))
def test_pinned_rules_load_on_their_falco(row: falco_matrix.Release) -> None:
    """The rules file each row's artifact installs needs an engine and plugin that Falco has."""
    rules = yaml.load((DATA / "falco-plugins" / f"k8s_audit_rules-{row.artifacts}.yaml").read_text())
    engine = next(e["required_engine_version"] for e in rules if "required_engine_version" in e)
    plugins = next(e["required_plugin_versions"] for e in rules if "required_plugin_versions" in e)
    (k8saudit,) = [p for p in plugins if p["name"] == "k8saudit"]
    assert (versions.falco_engine(Version.parse(f"{row.falco}.0")) or 0) >= int(engine)
    where = falco_matrix.chart_range(row.chart)
    assert where is not None
    installed = where.falcoctl_plugins or row.bundled_plugin is None
    plugin = Version.parse(str(row.artifacts)) if installed else row.bundled_plugin
    assert plugin is not None and plugin >= Version.parse(k8saudit["version"])
    if installed:  # the plugin falcoctl installs speaks a plugin API this Falco loads
        need = max(
            Version.parse(e["api"])
            for e in versions.falco_table()["pluginApiRequirements"]
            if plugin >= Version.parse(e["plugin"])
        )
        assert row.plugin_api is not None
        assert need.parts[0] == row.plugin_api.parts[0] and need <= row.plugin_api


def test_chart_ranges_are_contiguous() -> None:
    ranges = falco_matrix.chart_ranges()
    for before, after in itertools.pairwise(ranges):
        assert before.high is not None and before.high < after.low
    assert ranges[-1].high is None


def _flatten(values: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict):
            out += _flatten(value, f"{path}.") if value else [f"{path}.*"]
    return out


def _upstream_values(chart: str) -> str:
    with tarfile.open(DATA / "falco-charts" / f"falco-{chart}.tgz") as archive:
        member = archive.extractfile("falco/values.yaml")
        assert member is not None
        return member.read().decode("utf-8")


@pytest.mark.parametrize("chart", sorted({str(r.chart) for r in ROWS}, key=Version.parse))
def test_chart_key_lists_are_the_charts_values(chart: str) -> None:
    assert falco_matrix.chart_keys(chart) == frozenset(_flatten(yaml.load(_upstream_values(chart))))


def test_every_key_list_belongs_to_a_default_chart() -> None:
    files = {p.stem for p in (ROOT / "compiler/data/chart-keys").glob("*.txt")}
    assert files == {str(r.chart) for r in ROWS}


def test_matrix_cites_its_sources() -> None:
    for section in ("repositories", "artifactFiles"):
        assert all(entry["source"] for entry in MATRIX[section].values())
    assert all(row["source"] for row in MATRIX["releases"] + MATRIX["charts"])


# ---- what a spec gets -------------------------------------------------------------------


def _values(tmp_path: Path, falco: dict[str, Any], **spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    site = compile_site(write_spec(tmp_path, {"falco": falco, **spec}))
    files = {a.path: a.content for a in site.artifacts}
    return yaml.load(files["helm/falco-values.yaml"]), json.loads(files["MANIFEST.json"])


DYNAMIC = {
    "kubernetes": {"version": "1.16.0"},
    "audit": {"dynamic": True, "webhook": {"enabled": False}},
}
PINNED = {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.50"}}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: str(r.falco))
def test_every_release_renders_with_its_default_chart(row: falco_matrix.Release, tmp_path: Path) -> None:
    falco: dict[str, Any] = {"version": str(row.newest)}
    spec: dict[str, Any] = {}
    if row.chart == Version.parse("1.0.12"):  # chart 1.0.x: dynamic auditing only
        falco["receiver"] = PINNED
        spec = DYNAMIC
    values, manifest = _values(tmp_path, falco, **spec)
    assert values["image"]["tag"] == str(row.newest)
    assert manifest["falco"] == {
        "version": str(row.newest),
        "chart": {
            "repository": falco_matrix.repositories()[row.repository],
            "name": "falco",
            "version": str(row.chart),
        },
    }
    if row.artifacts and falco_matrix.chart_range(row.chart).falcoctl:  # type: ignore[union-attr]
        refs = values["falcoctl"]["config"]["artifact"]["install"]["refs"]
        assert f"k8saudit-rules:{row.artifacts}" in refs
        assert (f"k8saudit:{row.artifacts}" in refs) == (row.bundled_plugin is None)
        assert values["falcoctl"]["artifact"]["follow"]["enabled"] is False


def test_a_patch_release_or_a_minor_alone(tmp_path: Path) -> None:
    values, manifest = _values(tmp_path, {"version": "0.38.0"})
    assert values["image"]["tag"] == "0.38.0" and manifest["falco"]["chart"]["version"] == "4.8.3"
    values, manifest = _values(tmp_path, {"version": "0.38"})
    assert values["image"]["tag"] == "0.38.2"


def _warnings(path: Path, code: str) -> list[Diagnostic]:
    return [f for f in analyse(path).findings if f.code == code]


def test_an_unknown_release_is_one_error(tmp_path: Path) -> None:
    for version in ("0.22.0", "0.16.0"):
        with pytest.raises(UserError) as info:
            analyse(write_spec(tmp_path, {"falco": {"version": version}}))
        assert [d.field for d in info.value.diagnostics] == ["spec.falco.version"]


def test_chart_1_0_needs_the_2019_setup(tmp_path: Path) -> None:
    """Chart 1.0.12 installs an AuditSink: only with dynamic auditing, no static webhook (the
    apiservers must serve that API before the chart installs) and no GitOps engine."""
    base = {"falco": {"version": "0.17.1", "receiver": PINNED}, **DYNAMIC}
    assert analyse(write_spec(tmp_path, base)).name == "t"
    with pytest.raises(UserError, match=r"set audit\.webhook\.enabled false"):
        analyse(write_spec(tmp_path, {**base, "audit": {"dynamic": True}}))
    gitops = {"engine": "argocd", "repoURL": "https://git.example.com/x.git"}
    with pytest.raises(UserError, match="use engine none"):
        analyse(write_spec(tmp_path, {**base, "gitops": gitops}))


def test_unknown_releases(tmp_path: Path) -> None:
    (warning,) = _warnings(write_spec(tmp_path, {"falco": {"version": "0.38.9"}}), "AUD019")
    assert "not a release auditc knows (newest 0.38.x known: 0.38.2)" in warning.message
    (warning,) = _warnings(write_spec(tmp_path, {"falco": {"version": "0.45.0"}}), "AUD019")
    assert warning.field == "spec.falco.version"
    assert "newer than the newest known (0.44.1); its values follow 0.44 (chart 9.1.0" in warning.message
    with pytest.raises(UserError, match=r"there is no Falco 0\.22 release"):
        analyse(write_spec(tmp_path, {"falco": {"version": "0.22.0"}}))
    with pytest.raises(UserError, match=r"Falco 0\.16\.0 is not supported: the oldest is 0\.17"):
        analyse(write_spec(tmp_path, {"falco": {"version": "0.16.0"}}))


@pytest.mark.parametrize(
    ("falco", "message"),
    [
        (
            {
                "version": "0.21.0",
                "chart": {"version": "1.1.7", "repository": "https://falcosecurity.github.io/charts"},
            },
            "chart 1.1.7 was never published to https://falcosecurity.github.io/charts; it is published in https://charts.helm.sh/stable",
        ),
        (
            {"version": "0.23.0", "chart": {"version": "1.1.20"}},
            "chart 1.1.20 was never published (published versions next to it: 1.1.10, 1.2.0)",
        ),
        ({"version": "0.32.0", "chart": {"version": "1.19.0"}}, "auditc writes no values for chart 1.19.0"),
        (
            {"version": "0.37.1", "chart": {"version": "2.5.5"}},
            "images ship no plugins and chart 2.5.5 has no falcoctl",
        ),
        ({"version": "0.31.1", "chart": {"version": "9.1.0"}}, "has no k8saudit plugin"),
        (
            {"version": "0.44.1", "chart": {"version": "1.18.6"}},
            "configures the embedded webserver of Falco < 0.32",
        ),
        (
            {"version": "0.32.1", "chart": {"version": "9.1.0"}, "rules": {"artifactsVersion": "0.18.0"}},
            "k8saudit rules 0.18.0 need rules engine 15; Falco 0.32.1 has engine 13",
        ),
        (
            {"version": "0.34.1", "rules": {"artifactsVersion": "0.6.1"}},
            "need the k8saudit plugin 0.6.0; the Falco 0.34.1 image ships plugin 0.5.0",
        ),
        ({"version": "0.33.1", "rules": {"artifactsVersion": "0.5.3"}}, "chart 2.5.5 has no falcoctl"),
        ({"version": "0.31.1", "rules": {"follow": True}}, "nothing can follow the k8saudit rules"),
        ({"version": "0.17.1"}, "chart 1.0.12 mounts the k8s audit rules only together with an AuditSink"),
        (
            {"version": "0.33.0", "chart": {"version": "9.1.0"}, "rules": {"artifactsVersion": "0.18.0"}},
            "the k8saudit plugin 0.18.0 needs plugin API 3.11; Falco 0.33.0 loads plugins of API 2.x up to "
            "2.0",
        ),
        ({"version": "0.40.0", "rules": {"artifactsVersion": "0.16.1"}}, "needs plugin API 3.11"),
        ({"chart": {"version": "9.1"}}, "must be an exact chart version (X.Y.Z): helm reads 9.1 as a range"),
        ({"version": "0.45"}, "auditc knows no patch release of Falco 0.45"),
        ({"values": {"image": {"tag": "0.38.2"}}}, "auditc writes image.tag from spec.falco.version"),
        (
            {"values": {"fullnameOverride": "audit"}},
            "auditc writes fullnameOverride from spec.falco.releaseName",
        ),
        ({"values": {"controller": {"kind": "daemonset"}}}, "from spec.falco.syscalls"),
        (
            {"values": {"falcoctl": {"artifact": {"follow": {"enabled": True}}}}},
            "from spec.falco.rules.follow",
        ),
        ({"values": {"falco": {"rules_files": ["/x"]}}}, "from spec.falco.rules.custom"),
        ({"values": {"falco": "x"}}, "must be a mapping: auditc writes values under falco"),
        ({"values": {"customRules": "x"}}, "must be a mapping: auditc writes values under customRules"),
        ({"values": {"controller": {"deployment": 5}}}, "must be a mapping: auditc writes values under"),
        (
            {"values": {"customRules": {"zz-auditc-overrides.yaml": "- list: x"}}},
            "auditc writes the rules file zz-auditc-overrides.yaml itself",
        ),
        ({"version": "0.32.1", "syscalls": True}, "need Falco >= 0.33.0"),
        ({"values": {"falco": {"grpc": {"enabled": True}}}}, "refuses falco.grpc"),
        ({"values": {"falco": {"grpc_output": {"enabled": True}}}}, "refuses falco.grpc_output"),
        ({"values": {"driver": {"kind": "ebpf"}}}, "refuses driver.kind: ebpf"),
        ({"values": {"driver": {"kind": "gvisor"}}}, "refuses driver.kind: gvisor"),
    ],
)
def test_pairings_that_install_but_do_not_run(tmp_path: Path, falco: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as info:
        analyse(write_spec(tmp_path, {"falco": falco}))
    assert any(message in d.message for d in info.value.diagnostics), [
        d.message for d in info.value.diagnostics
    ]
    assert all(d.location is not None and d.location.line for d in info.value.diagnostics)


def test_flux_cannot_delete_the_charts_rules_key(tmp_path: Path) -> None:
    gitops = {"engine": "flux", "repoURL": "https://git.example.com/x.git"}
    with pytest.raises(UserError, match="Flux cannot delete it"):
        analyse(
            write_spec(
                tmp_path, {"falco": {"version": "0.38.2", "chart": {"version": "4.3.1"}}, "gitops": gitops}
            )
        )
    assert analyse(write_spec(tmp_path, {"falco": {"version": "0.38.2"}, "gitops": gitops})).name == "t"


def test_a_chart_made_for_another_falco_is_a_warning(tmp_path: Path) -> None:
    path = write_spec(tmp_path, {"falco": {"version": "0.38.2", "chart": {"version": "9.1.0"}}})
    (warning,) = _warnings(path, "AUD022")
    assert warning.field == "spec.falco.chart.version"
    assert "chart 9.1.0 was made for Falco 0.44.1; this site runs Falco 0.38.2" in warning.message
    values, _ = _values(tmp_path, {"version": "0.37.1", "chart": {"version": "9.1.0"}})
    assert (
        values["falco"]["rules_file"] and values["falco"]["rules_files"] is None
    )  # null deletes the chart's


def test_a_chart_newer_than_the_published_list_is_a_warning(tmp_path: Path) -> None:
    for chart in ("9.1.1", "10.0.0"):  # published after auditc's list was taken
        (warning,) = _warnings(write_spec(tmp_path, {"falco": {"chart": {"version": chart}}}), "AUD023")
        assert f"chart {chart} is newer than" in warning.message
    _, manifest = _values(tmp_path, {"chart": {"version": "9.1.1"}})
    assert manifest["falco"]["chart"]["repository"] == "https://falcosecurity.github.io/charts"


def test_a_mirror_is_checked_like_its_original(tmp_path: Path) -> None:
    mirror = {"version": "9.1.0", "repository": "https://charts.example.com/falco"}
    (warning,) = _warnings(write_spec(tmp_path, {"falco": {"version": "0.38.2", "chart": mirror}}), "AUD022")
    assert "made for Falco 0.44.1" in warning.message
    spelt = {"version": "1.1.7", "repository": "http://FalcoSecurity.github.io/charts/"}
    with pytest.raises(
        UserError, match=re.escape("never published to https://falcosecurity.github.io/charts")
    ):
        analyse(write_spec(tmp_path, {"falco": {"version": "0.21.0", "chart": spelt}}))


def test_an_unknown_chart_major_is_a_warning_with_the_nearest_shape(tmp_path: Path) -> None:
    mirror = {"version": "10.0.0", "repository": "https://charts.example.com/falco"}
    path = write_spec(tmp_path, {"falco": {"chart": mirror}})
    (warning,) = _warnings(path, "AUD023")
    assert "chart 10.0.0 is newer than any chart auditc knows (9.x)" in warning.message
    values, manifest = _values(tmp_path, {"chart": mirror})
    assert manifest["falco"]["chart"] == {
        "repository": mirror["repository"],
        "name": "falco",
        "version": "10.0.0",
    }
    assert values["falco"]["rules_files"]


def test_a_moving_artifact_tag_is_a_warning(tmp_path: Path) -> None:
    (warning,) = _warnings(write_spec(tmp_path, {"falco": {"rules": {"artifactsVersion": "0.16"}}}), "AUD024")
    assert "k8saudit:0.16 is a moving tag" in warning.message


def test_following_rules_is_an_explicit_opt_in(tmp_path: Path) -> None:
    values, _ = _values(tmp_path, {"rules": {"follow": True}})
    assert values["falcoctl"]["artifact"]["follow"]["enabled"] is True
    assert values["falcoctl"]["config"]["artifact"]["follow"]["refs"] == ["k8saudit-rules:0.16"]
    install = values["falcoctl"]["config"]["artifact"]["install"]["refs"]
    assert install == ["k8saudit-rules:0.16.1", "k8saudit:0.16.1"]


def test_falco_before_0_31_disables_rules_by_substring(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path, {"falco": {"version": "0.23.0", "rules": {"disable": ["Create NodePort Service"]}}}
    )
    (warning,) = _warnings(path, "AUD025")
    assert warning.field == "spec.falco.rules.disable[0]"
    values, _ = _values(tmp_path, {"version": "0.23.0", "rules": {"disable": ["Create NodePort Service"]}})
    assert values["extraArgs"] == ["-D", "Create NodePort Service"]


def test_legacy_charts_come_from_the_stable_repository(tmp_path: Path) -> None:
    _, manifest = _values(tmp_path, {"version": "0.21.0"})
    assert manifest["falco"]["chart"]["repository"] == "https://charts.helm.sh/stable"
    _, manifest = _values(tmp_path, {"version": "0.21.0", "chart": {"version": "1.1.5"}})
    assert manifest["falco"]["chart"]["repository"] == "https://charts.helm.sh/stable"


def test_removed_values_are_one_error_not_also_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        analyse(write_spec(tmp_path, {"falco": {"values": {"falco": {"grpc": {"enabled": True}}}}}))
    assert [d.field for d in info.value.diagnostics] == ["spec.falco.values.falco.grpc"]


def test_allowed_combinations(tmp_path: Path) -> None:
    ok = [
        {"version": "0.41.3", "rules": {"artifactsVersion": "0.18.0"}},
        {"version": "0.36.2", "chart": {"version": "4.8.3"}},
        {"values": {"driver": {"kind": "modern_ebpf"}, "image": {"repository": "mirror/falco"}}},
    ]
    for falco in ok:
        assert analyse(write_spec(tmp_path, {"falco": falco})).name == "t"


SYNTAX = {
    "cli": "`append: true` / `falco -D`",
    "append": "`append: true` / `enabled: false`",
    "override": "`override:`",
}


def _readme_table() -> str:
    rows = [
        "| Falco | chart (default) | repository | receives audit events with | rules key "
        "| rules.lists / rules.disable | k8saudit plugin | falcoctl installs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        where = falco_matrix.chart_range(row.chart)
        assert where is not None
        receiver = "k8saudit plugin" if row.plugin else "embedded webserver"
        if not row.plugin:
            plugin = "n/a"
        elif row.bundled_plugin:
            plugin = f"in the image ({row.bundled_plugin})"
        else:
            plugin = "falcoctl"
        if where.falcoctl:
            installs = f"k8saudit-rules {row.artifacts}" + (
                "" if row.bundled_plugin else f", k8saudit {row.artifacts}"
            )
        else:
            installs = "nothing (rules come with the chart)"
        rows.append(
            f"| {row.falco} (newest {row.newest}) | {row.chart} | {row.repository} | {receiver} "
            f"| `{row.rules_key}` | {SYNTAX[row.overrides]} | {plugin} | {installs} |"
        )
    return "\n".join(rows)


def test_the_readme_lists_the_whole_matrix() -> None:
    assert _readme_table() in (ROOT / "README.md").read_text(), (
        "README's Falco table differs from falco-matrix.yaml"
    )
