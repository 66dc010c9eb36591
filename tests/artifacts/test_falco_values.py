"""Falco chart values: every key path auditc writes exists in the chosen chart's values.yaml
(the key lists themselves are checked in test_falco_matrix.py), and the values follow the
chart's own recipe. tests/artifacts/test_falco_chart.py runs them through the real chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler.api import compile_site
from compiler.falco_matrix import chart_keys, unknown_keys
from tests.falco_chart import chart_file
from tests.sites import ROOT, example_specs

yaml = YAML(typ="safe", pure=True)


def _values(spec: Path) -> dict[str, Any]:
    site = compile_site(spec)
    values: dict[str, Any] = yaml.load(
        next(a.content for a in site.artifacts if a.path == "helm/falco-values.yaml")
    )
    return values


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_every_emitted_key_exists_in_the_chart(spec: Path) -> None:
    from compiler.pipeline import load

    resolved = load(spec)
    values = _values(spec)
    keys = chart_keys(resolved.target.chart.keys) | {"falco.rules_file", "falco.rules_files"}
    assert unknown_keys(values, keys) == []


def test_plugin_values_follow_the_chart_recipe() -> None:
    values = _values(ROOT / "specs" / "prod-east.yaml")
    recipe = yaml.load(chart_file("9.1.0", "values-k8saudit.yaml"))
    assert values["driver"] == recipe["driver"] == {"enabled": False}
    assert values["collectors"] == recipe["collectors"]
    assert values["controller"] == {**recipe["controller"], "labels": {"env": "prod"}}  # the site's labels
    assert values["falco"]["rules_files"] == recipe["falco"]["rules_files"]
    assert values["falco"]["load_plugins"] == recipe["falco"]["load_plugins"]
    plugin = values["falco"]["plugins"][0]
    assert plugin["open_params"] == "http://:9765/k8s-audit"
    assert "maxEventBytes" not in plugin["init_config"]
    assert plugin["init_config"]["webhookMaxBatchSize"] == 12582912
    artifact = values["falcoctl"]["config"]["artifact"]
    # the recipe's artifacts, pinned to the exact release of its moving tag, and followed by nothing
    assert recipe["falcoctl"]["config"]["artifact"]["install"]["refs"] == [
        "k8saudit-rules:0.16",
        "k8saudit:0.16",
    ]
    assert artifact["install"]["refs"] == ["k8saudit-rules:0.16.1", "k8saudit:0.16.1"]
    assert artifact["follow"]["refs"] == [] and values["falcoctl"]["artifact"]["follow"]["enabled"] is False
    assert values["serviceAccount"] == {"create": False, "name": "falco"}


def test_tls_receiver_values() -> None:
    values = _values(ROOT / "specs" / "edge-tls.yaml")
    plugin = values["falco"]["plugins"][0]
    assert plugin["open_params"] == "https://:9765/k8s-audit"
    assert plugin["init_config"]["sslCertificate"] == "/etc/falco/certs/falco.pem"
    assert values["certs"] == {"existingSecret": "falco-receiver-tls"}
    assert values["services"][0] == {
        "name": "k8saudit-webhook",
        "type": "ClusterIP",
        "clusterIP": "10.43.0.77",
        "ports": [{"port": 9765, "protocol": "TCP"}],
    }


def test_legacy_values_use_the_chart_1_shape() -> None:
    values = _values(ROOT / "specs" / "legacy-lab.yaml")
    assert values["falco"]["webserver"] == {
        "enabled": True,
        "listenPort": 8765,
        "k8sAuditEndpoint": "/k8s-audit",
    }
    assert values["serviceAccount"] == {"create": False, "name": "falco-account"}
    assert "plugins" not in values["falco"]


def test_rule_overrides_file() -> None:
    values = _values(ROOT / "specs" / "prod-east.yaml")
    overrides = yaml.load(values["customRules"]["zz-auditc-overrides.yaml"])
    assert {
        "list": "allowed_k8s_users",
        "items": ["ci-bot", "argocd-server"],
        "override": {"items": "append"},
    } in overrides
    assert {
        "rule": "Create NodePort Service",
        "enabled": False,
        "override": {"enabled": "replace"},
    } in overrides
    assert "prod-rules.yaml" in values["customRules"]


def test_legacy_tls_needs_a_chart_that_has_the_key(tmp_path: Path) -> None:
    from compiler.errors import UserError
    from tests.sites import write_spec

    tls = {"enabled": True, "existingSecret": "s"}
    spec = write_spec(tmp_path, {"falco": {"version": "0.23.0", "receiver": {"tls": tls}}})
    with pytest.raises(UserError, match=r"chart 1\.1\.10 has no values key falco\.webserver\.sslEnabled"):
        compile_site(spec)
    newer = write_spec(tmp_path, {"falco": {"version": "0.31.1", "receiver": {"tls": tls}}})
    values = yaml.load(
        next(a.content for a in compile_site(newer).artifacts if a.path == "helm/falco-values.yaml")
    )
    assert values["falco"]["webserver"]["sslEnabled"] is True


def test_legacy_endpoint_before_falco_0_24(tmp_path: Path) -> None:
    from tests.sites import write_spec

    spec = write_spec(tmp_path, {"falco": {"version": "0.21.0"}})
    site = compile_site(spec)
    values = yaml.load(next(a.content for a in site.artifacts if a.path == "helm/falco-values.yaml"))
    assert values["falco"]["webserver"]["k8sAuditEndpoint"] == "/k8s_audit"
    kubeconfig = yaml.load(
        next(a.content for a in site.artifacts if a.path == "node/audit-webhook.kubeconfig")
    )
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://10.0.0.1:30007/k8s_audit"


def test_custom_rules_file_must_be_a_list(tmp_path: Path) -> None:
    from compiler.errors import UserError
    from tests.sites import write_spec

    spec = write_spec(
        tmp_path, {"falco": {"rules": {"custom": ["rules/bad.yaml"]}}}, files={"rules/bad.yaml": "rule: x\n"}
    )
    with pytest.raises(
        UserError, match=re.escape("rules/bad.yaml:1:1: spec.falco.rules.custom[0]: a Falco rules file")
    ):
        compile_site(spec)


def test_values_are_deep_merged_last(tmp_path: Path) -> None:
    from tests.sites import write_spec

    spec = write_spec(
        tmp_path, {"falco": {"values": {"resources": {"limits": {"memory": "2Gi"}}, "driver": {"x": 1}}}}
    )
    values = yaml.load(
        next(a.content for a in compile_site(spec).artifacts if a.path == "helm/falco-values.yaml")
    )
    assert values["resources"] == {"limits": {"memory": "2Gi"}}
    assert values["driver"] == {"enabled": False, "x": 1}
