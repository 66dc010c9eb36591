"""auditc's probe: the rule it adds to Falco and the request verify makes. Every policy
preset, read back from the rendered node/audit-policy.yaml, sends that request to Falco
(decided in the apiserver's first-match order); the rule itself is checked against each
Falco release's own rules in tests/artifacts/test_falco_chart.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compiler.api import compile_site
from compiler.artifacts.audit_policy import Origin
from compiler.errors import UserError
from compiler.lint.policy_match import Attributes, decide
from compiler.probe import PROBE_FILE, PROBE_PREFIX, output_marker, rules_text, shown_at
from compiler.spec.model import PolicyRule
from tests.sites import write_spec
from tests.tools import yaml12

yaml = yaml12


def _artifact(spec: Path, path: str) -> bytes:
    return next(a.content for a in compile_site(spec).artifacts if a.path == path)


def _rendered_rules(document: dict[str, Any]) -> list[tuple[PolicyRule, Origin]]:
    return [
        (PolicyRule.model_validate(rule), Origin(None, ("rules", i), f"rule {i}", ()))
        for i, rule in enumerate(document["rules"])
    ]


@pytest.mark.parametrize("preset", ["falco", "gke", "docs-example", "minimal"])
def test_every_preset_sends_the_probe_to_falco(tmp_path: Path, preset: str) -> None:
    spec = write_spec(tmp_path, {"audit": {"policy": {"preset": preset}}})
    document = yaml.load(_artifact(spec, "node/audit-policy.yaml"))
    probe = Attributes("create", "falco", "", "configmaps")
    decision = decide(_rendered_rules(document), document.get("omitStages") or [], probe)
    assert decision.level in ("Metadata", "Request", "RequestResponse"), decision
    assert decision.logged and decision.per_user == ()
    assert "ResponseComplete" not in decision.omitted


def _rule(**fields: Any) -> tuple[PolicyRule, Origin]:
    return PolicyRule.model_validate(fields), Origin(None, (), str(fields), ())


PROBE = Attributes("create", "falco", "", "configmaps")


@pytest.mark.parametrize(
    ("rules", "omit", "level", "logged"),
    [
        ([_rule(level="Metadata")], [], "Metadata", True),
        ([], [], "None", False),
        # first match wins; a rule for other verbs, namespaces, groups or URLs is passed over
        ([_rule(level="None", verbs=["get"]), _rule(level="Request")], [], "Request", True),
        ([_rule(level="None", namespaces=["kube-system"]), _rule(level="Metadata")], [], "Metadata", True),
        ([_rule(level="None", resources=[{"group": "apps"}]), _rule(level="Metadata")], [], "Metadata", True),
        ([_rule(level="None", nonResourceURLs=["/healthz*"]), _rule(level="Metadata")], [], "Metadata", True),
        ([_rule(level="None", resources=[{"resources": ["configmaps"]}])], [], "None", False),
        ([_rule(level="None", resources=[{"resources": ["*"]}])], [], "None", False),
        # resourceNames: a create has no name in its URL, so it never matches
        (
            [_rule(level="None", resources=[{"resources": ["configmaps"], "resourceNames": ["x"]}])],
            [],
            "None",
            False,
        ),
        # both stages of a short request omitted: nothing is sent
        ([_rule(level="Metadata", omitStages=["ResponseComplete"])], ["RequestReceived"], "Metadata", False),
        ([_rule(level="Metadata")], ["RequestReceived"], "Metadata", True),
    ],
)
def test_decide_follows_the_checker(
    rules: list[tuple[PolicyRule, Origin]], omit: list[str], level: str, logged: bool
) -> None:
    decision = decide(rules, omit, PROBE)
    assert (decision.level, decision.logged) == (level, logged)


def test_rules_for_some_users_are_noted_not_decided() -> None:
    rules = [
        _rule(level="None", users=["admin"]),
        _rule(level="None", userGroups=["ops"]),
        _rule(level="Metadata"),
    ]
    decision = decide(rules, [], PROBE)
    assert decision.level == "Metadata" and len(decision.per_user) == 2
    everyone = decide([_rule(level="None", userGroups=["system:authenticated"])], [], PROBE)
    assert everyone.level == "None" and everyone.per_user == ()


def test_the_rule_is_in_the_values_unless_turned_off(tmp_path: Path) -> None:
    on = yaml.load(_artifact(write_spec(tmp_path, {}), "helm/falco-values.yaml"))
    (rule,) = yaml.load(on["customRules"][PROBE_FILE])
    assert rule["source"] == "k8s_audit" and rule["rule"] == "auditc probe"
    assert f'startswith "{PROBE_PREFIX}"' in rule["condition"]
    assert 'ka.target.namespace="falco"' in rule["condition"]
    (tmp_path / "off").mkdir()
    off_spec = write_spec(tmp_path / "off", {"falco": {"probe": False}})
    off = yaml.load(_artifact(off_spec, "helm/falco-values.yaml"))
    assert PROBE_FILE not in (off.get("customRules") or {})


def test_a_custom_rules_file_of_the_probes_name(tmp_path: Path) -> None:
    files = {"auditc-probe.yaml": "- list: mine\n  items: []\n"}
    spec = write_spec(tmp_path, {"falco": {"rules": {"custom": ["auditc-probe.yaml"]}}}, files)
    with pytest.raises(UserError, match=r"two rule files would both be named auditc-probe\.yaml"):
        compile_site(spec)
    (tmp_path / "off").mkdir()
    spec = write_spec(
        tmp_path / "off", {"falco": {"probe": False, "rules": {"custom": ["auditc-probe.yaml"]}}}, files
    )
    values = yaml.load(_artifact(spec, "helm/falco-values.yaml"))
    assert values["customRules"][PROBE_FILE] == files["auditc-probe.yaml"]


def test_the_output_carries_the_marker_verify_looks_for() -> None:
    (rule,) = yaml.load(rules_text("audit-ns"))
    name = f"{PROBE_PREFIX}0123abcd"
    shown = rule["output"].replace("%ka.target.name", name).replace("%ka.target.namespace", "audit-ns")
    assert output_marker(name) in shown


@pytest.mark.parametrize(
    ("minimum", "shown"),
    [
        ("debug", True),
        ("info", True),
        ("informational", True),
        ("notice", True),
        ("warning", False),
        ("ERROR", False),
        ("emergency", False),
    ],
)
def test_priorities(minimum: str, shown: bool) -> None:
    assert shown_at(minimum) == shown
