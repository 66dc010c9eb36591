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
from tests.sites import write_spec

yaml = YAML(typ="safe", pure=True)
TABLE = load_data("versions.yaml")
KUBE_MINORS = [f"1.{minor}" for minor in range(13, 37)]


def _entries(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every table entry: list items and map values that are mappings with a `from` or `falco` key."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if any(k in node for k in ("from", "falco", "artifacts")) and path:
            out.append((path, node))
        for key, value in node.items():
            out += _entries(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _entries(value, f"{path}[{index}]")
    return out


def test_every_matrix_entry_cites_its_source() -> None:
    entries = _entries(TABLE)
    assert len(entries) > 60
    missing = [path for path, entry in entries if not str(entry.get("source", "")).strip()]
    assert missing == []


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
    api, shape = versions.kubeadm_config_api(version)
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


@pytest.mark.parametrize("release", TABLE["falco"]["releases"], ids=lambda r: r["falco"])
def test_falco_matrix(tmp_path: Path, release: dict[str, Any]) -> None:
    """Each known Falco gets its chart by default; charts auditc can write render, others
    are refused with a message that says so."""
    path = write_spec(tmp_path, {"falco": {"version": release["falco"]}})
    chart = versions.Version.parse(release["chart"])
    plugin = versions.falco_uses_plugin(versions.Version.parse(release["falco"]))
    shape = versions.chart_shape(chart)
    if shape is None or (shape[0] == "plugin") != plugin:
        with pytest.raises(UserError, match=f"chart {release['chart']}"):
            analyse(path)
        return
    site = compile_site(path)
    values = yaml.load(next(a.content for a in site.artifacts if a.path == "helm/falco-values.yaml"))
    assert values["image"]["tag"] == release["falco"]
    if plugin:
        tag = release["artifacts"]
        assert values["falcoctl"]["config"]["artifact"]["install"]["refs"] == [
            f"k8saudit-rules:{tag}",
            f"k8saudit:{tag}",
        ]
    else:
        assert values["falco"]["webserver"]["listenPort"] == 8765


@pytest.mark.parametrize(
    ("falco", "message"),
    [
        (
            {"version": "0.32.1", "chart": {"version": "9.1.0"}, "rules": {"artifactsVersion": "0.18"}},
            "need rules engine 15",
        ),
        (
            {
                "version": "0.32.1",
                "chart": {"version": "9.1.0"},
                "rules": {"artifactsVersion": "0.11"},
                "syscalls": True,
            },
            "need Falco >= 0.33.0",
        ),
        ({"values": {"falco": {"grpc": {"enabled": True}}}}, "refuses falco.grpc"),
        ({"values": {"falco": {"grpc_output": {"enabled": True}}}}, "refuses falco.grpc_output"),
        ({"values": {"driver": {"kind": "ebpf"}}}, "refuses driver.kind: ebpf"),
        ({"values": {"driver": {"kind": "gvisor"}}}, "refuses driver.kind: gvisor"),
    ],
)
def test_falco_combinations_that_install_but_do_not_run(
    tmp_path: Path, falco: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        analyse(write_spec(tmp_path, {"falco": falco}))


def test_allowed_falco_combinations(tmp_path: Path) -> None:
    ok = [
        {"version": "0.33.0", "chart": {"version": "9.1.0"}, "rules": {"artifactsVersion": "0.18"}},
        {"values": {"driver": {"kind": "modern_ebpf"}}},
    ]
    for falco in ok:
        assert analyse(write_spec(tmp_path, {"falco": falco})).name == "t"


def test_the_legacy_endpoint_spelling_follows_the_table() -> None:
    assert versions.Version.parse(TABLE["falco"]["hyphenEndpointFrom"]) == versions.Version.parse("0.24.0")
    assert versions.falco_engine(versions.Version.parse("0.34.1")) == 15
    assert versions.falco_engine(versions.Version.parse("0.31.1")) is None
