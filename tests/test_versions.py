"""The version matrices: every entry cites its source, and a table test walks the
Kubernetes and Falco versions auditc knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler import versions
from compiler.api import analyse, compile_site
from compiler.datafiles import load_data
from compiler.errors import UserError
from compiler.platforms.kubeadm.kubeadm_config import kubeadm_config_api
from tests.sites import write_spec

yaml = YAML(typ="safe", pure=True)
TABLE = load_data("versions.yaml")
KUBE_MINORS = [f"1.{minor}" for minor in range(13, 37)]


def _facts(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every mapping that states a fact: one with a scalar value of its own."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if any(not isinstance(v, dict | list) for k, v in node.items() if k != "source"):
            out.append((path, node))
        for key, value in node.items():
            out += _facts(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _facts(value, f"{path}[{index}]")
    return out


def test_every_matrix_fact_cites_its_source() -> None:
    """versions.yaml is the provenance table: each fact carries `source`, no comment needed."""
    facts = _facts(TABLE)
    assert len(facts) > 90
    missing = [path for path, entry in facts if not str(entry.get("source", "")).strip()]
    assert missing == []


def test_resource_table_cites_its_source() -> None:
    assert str(load_data("resources.yaml")["source"]).startswith("Kubernetes API reference")


@pytest.mark.parametrize("minor", KUBE_MINORS)
def test_kubernetes_matrix(tmp_path: Path, minor: str) -> None:
    """Each minor renders; every flag written exists in it; the kubeadm config API fits."""
    site = compile_site(write_spec(tmp_path, {"kubernetes": {"version": minor}}))
    (config,) = yaml.load_all(next(a.content for a in site.artifacts if a.path == "node/kubeadm-config.yaml"))
    args = config["apiServer"]["extraArgs"]
    names = [a["name"] for a in args] if isinstance(args, list) else list(args)
    version = versions.Version.parse(minor)
    for name in names:
        assert versions.in_range(version, TABLE["kubernetes"]["flags"][name]), (minor, name)
    assert ("audit-log-compress" in names) == (version >= versions.Version.parse("1.20"))
    api, shape = kubeadm_config_api(version)
    assert config["apiVersion"] == api
    assert isinstance(args, list) == (shape == "list")
    policy = yaml.load(next(a.content for a in site.artifacts if a.path == "node/audit-policy.yaml"))
    assert ("omitManagedFields" in policy) == (version >= versions.Version.parse("1.23"))


@pytest.mark.parametrize(
    ("minor", "spec", "message"),
    [
        (
            "1.19",
            {"audit": {"log": {"compress": True}}},
            "needs --audit-log-compress, which kube-apiserver has from 1.20",
        ),
        ("1.19", {"audit": {"dynamic": True}}, "exists only in Kubernetes 1.13..1.18"),
        ("1.12", {}, "the oldest supported is 1.13"),
    ],
)
def test_a_spec_asking_for_what_the_version_lacks(
    tmp_path: Path, minor: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        analyse(write_spec(tmp_path, {"kubernetes": {"version": minor}, **spec}))


def test_compress_error_points_at_the_field(tmp_path: Path) -> None:
    path = write_spec(tmp_path, {"kubernetes": {"version": "1.19"}, "audit": {"log": {"compress": True}}})
    with pytest.raises(UserError) as info:
        analyse(path)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.field == "spec.audit.log.compress"
    assert "this site runs 1.19" in diagnostic.message
    assert diagnostic.location is not None and diagnostic.location.line is not None


def test_flag_value_rules_follow_the_apiserver(tmp_path: Path) -> None:
    """§2.2: qps is a float; qps/burst must be > 0 only while the throttle is on; truncate sizes
    are checked only for a backend that is on."""
    site = compile_site(write_spec(tmp_path, {"audit": {"webhook": {"batch": {"throttle": {"qps": 0.5}}}}}))
    (config,) = yaml.load_all(next(a.content for a in site.artifacts if a.path == "node/kubeadm-config.yaml"))
    assert config["apiServer"]["extraArgs"]["audit-webhook-batch-throttle-qps"] == "0.5"
    off = {"audit": {"webhook": {"batch": {"throttle": {"enabled": False, "burst": 0}}}}}
    assert analyse(write_spec(tmp_path, off)).name == "t"
    with pytest.raises(UserError, match="must be > 0 while the throttle is enabled"):
        analyse(write_spec(tmp_path, {"audit": {"webhook": {"batch": {"throttle": {"burst": 0}}}}}))
    log_off = {"audit": {"log": {"enabled": False, "truncate": {"maxEventSize": 20000000}}}}
    assert analyse(write_spec(tmp_path, log_off)).name == "t"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kubernetes": {"version": "2.0"}}, 'must be "1.N" or "1.N.P"'),
        (
            {"kubernetes": {"version": "1.20"}, "audit": {"policy": {"omitManagedFields": False}}},
            "exists from Kubernetes 1.23",
        ),
    ],
)
def test_more_version_errors(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        analyse(write_spec(tmp_path, spec))


def test_validate_json_reports_invalid_specs_and_keeps_the_others(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from compiler.cli import app

    good = write_spec(tmp_path, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Site\n")
    result = CliRunner().invoke(app, ["validate", "--format", "json", str(good), str(bad)])
    assert result.exit_code == 2
    sites = {Path(s["spec"]).name: s for s in json.loads(result.stdout)["sites"]}
    assert sites["site.yaml"]["ok"] is True and sites["site.yaml"]["findings"]
    assert sites["bad.yaml"]["ok"] is False
    assert {e["field"] for e in sites["bad.yaml"]["errors"]} >= {"apiVersion", "metadata", "spec"}
    assert "nothing was written" not in result.stderr


def test_data_files_read_the_same_with_both_yaml_parsers() -> None:
    """Data files are read with libyaml (YAML 1.1); specs with ruamel.yaml (YAML 1.2). The
    data must mean the same to both, so no unquoted yes/no/1.30 can slip in."""
    from compiler.datafiles import _safe_load
    from compiler.paths import data_dir, platforms_dir

    files = [*data_dir().rglob("*.yaml"), *platforms_dir().glob("*/*.yaml")]
    assert len(files) >= 10
    for path in files:
        assert _safe_load(path) == YAML(typ="safe", pure=True).load(path.read_text()), path
