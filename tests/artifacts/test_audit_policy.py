"""The audit policy: presets, ordering, version gates, and kube-apiserver's start-up checks
(shared/reference/k8s-audit.md §1.4) each firing at the right spec line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler.api import compile_site
from compiler.errors import UserError
from tests.sites import write_spec


def _spec(
    tmp_path: Path, policy: dict[str, Any], version: str = "1.30", files: dict[str, str] | None = None
) -> Path:
    return write_spec(tmp_path, {"kubernetes": {"version": version}, "audit": {"policy": policy}}, files)


def _policy(
    tmp_path: Path, policy: dict[str, Any], version: str = "1.30", files: dict[str, str] | None = None
) -> Any:
    site = compile_site(_spec(tmp_path, policy, version, files))
    content = next(a.content for a in site.artifacts if a.path == "node/audit-policy.yaml")
    return YAML(typ="safe", pure=True).load(content)


def _error(
    tmp_path: Path, policy: dict[str, Any], version: str = "1.30", files: dict[str, str] | None = None
) -> str:
    with pytest.raises(UserError) as info:
        compile_site(_spec(tmp_path, policy, version, files))
    return str(info.value)


def test_falco_preset_fixes_deployments_group_and_keeps_response_started(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {})
    first = policy["rules"][0]
    assert first["level"] == "RequestResponse"
    assert {"group": "apps", "resources": ["deployments"]} in first["resources"]
    assert {"group": "", "resources": ["pods"]} in first["resources"]
    assert policy["omitStages"] == ["RequestReceived"]  # ResponseStarted kept for exec/attach
    assert len(policy["rules"]) == 11


@pytest.mark.parametrize(
    ("preset", "count"), [("falco", 11), ("gke", 17), ("docs-example", 9), ("minimal", 1)]
)
def test_presets(tmp_path: Path, preset: str, count: int) -> None:
    assert len(_policy(tmp_path, {"preset": preset})["rules"]) == count


def test_rules_go_before_the_preset_and_append_rules_after(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        {
            "preset": "minimal",
            "rules": [{"level": "None", "users": ["system:kube-proxy"]}],
            "appendRules": [{"level": "Request", "nonResourceURLs": ["/healthz*"]}],
        },
    )
    assert [r["level"] for r in policy["rules"]] == ["None", "Metadata", "Request"]


def test_preset_none_with_no_rules_is_refused(tmp_path: Path) -> None:
    assert "0 rules" in _error(tmp_path, {"preset": "none"})


def test_omit_managed_fields_only_from_1_23(tmp_path: Path) -> None:
    assert _policy(tmp_path, {}, "1.23")["omitManagedFields"] is True
    assert "omitManagedFields" not in _policy(tmp_path, {}, "1.22")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"level": "None", "nonResourceURLs": ["healthz"]}, "must begin with a '/'"),
        ({"level": "None", "nonResourceURLs": [""]}, "must begin with a '/'"),
        ({"level": "None", "nonResourceURLs": ["/api*/x"]}, "must be the final character"),
        (
            {"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]},
            "both regular resources and non-resource",
        ),
        (
            {"level": "None", "nonResourceURLs": ["/x"], "resources": [{"group": ""}]},
            "both regular resources",
        ),
        ({"level": "None", "resources": [{"group": "rbac.authorization.k8s.io/v1"}]}, "without a version"),
        ({"level": "None", "resources": [{"group": "Apps"}]}, "lowercase DNS subdomain"),
        ({"level": "None", "resources": [{"group": "*"}]}, "group '*' is accepted from Kubernetes 1.36"),
        (
            {"level": "None", "resources": [{"group": "", "resourceNames": ["x"]}]},
            "requires at least one resource",
        ),
        ({"level": "Verbose"}, "must be one of: None | Metadata | Request | RequestResponse"),
        ({"users": ["a"]}, "level: required field is missing"),
        ({"level": "None", "omitStages": ["Started"]}, "must be one of: RequestReceived"),
        ({"level": "None", "verb": ["get"]}, "unknown field 'verb' (did you mean 'verbs'?)"),
    ],
)
def test_apiserver_checks_point_at_the_rule(tmp_path: Path, rule: dict[str, Any], message: str) -> None:
    text = _error(tmp_path, {"preset": "minimal", "rules": [{"level": "Metadata"}, rule]})
    assert message in text
    assert "spec.audit.policy.rules[1]" in text
    assert f"{tmp_path / 'site.yaml'}:" in text


def test_checks_that_pass(tmp_path: Path) -> None:
    rules = [
        {"level": "None", "nonResourceURLs": ["*"]},
        {"level": "None", "nonResourceURLs": ["/healthz*"], "users": ["x"], "verbs": ["get"]},
        {
            "level": "Metadata",
            "resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["a"]}],
        },
    ]
    assert len(_policy(tmp_path, {"preset": "none", "rules": rules})["rules"]) == 3
    # group "*" is valid from 1.36
    assert _policy(
        tmp_path, {"preset": "none", "rules": [{"level": "None", "resources": [{"group": "*"}]}]}, "1.36"
    )


def test_rule_level_omit_managed_fields_needs_1_23(tmp_path: Path) -> None:
    text = _error(
        tmp_path, {"preset": "none", "rules": [{"level": "None", "omitManagedFields": True}]}, "1.22"
    )
    assert "exists from Kubernetes 1.23" in text


POLICY_FILE = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resourceNames: [x]
"""


def test_policy_file_errors_point_into_the_policy_file(tmp_path: Path) -> None:
    text = _error(tmp_path, {"file": "policy.yaml"}, files={"policy.yaml": POLICY_FILE})
    assert "policy.yaml:8:9" in text and "requires at least one resource" in text


def test_policy_file_is_used_whole(tmp_path: Path) -> None:
    good = POLICY_FILE.replace("resourceNames: [x]", "resources: [pods]")
    policy = _policy(tmp_path, {"file": "policy.yaml"}, files={"policy.yaml": good})
    assert policy["rules"] == [{"level": "Metadata", "resources": [{"group": "", "resources": ["pods"]}]}]


def test_v1beta1_policy_file_refused_from_1_24(tmp_path: Path) -> None:
    old = POLICY_FILE.replace("audit.k8s.io/v1", "audit.k8s.io/v1beta1").replace(
        "resourceNames: [x]", "resources: [pods]"
    )
    assert "apiVersion: must be audit.k8s.io/v1 for Kubernetes 1.30" in _error(
        tmp_path, {"file": "policy.yaml"}, files={"policy.yaml": old}
    )
    assert _policy(tmp_path, {"file": "policy.yaml"}, "1.20", files={"policy.yaml": old})["apiVersion"] == (
        "audit.k8s.io/v1beta1"
    )


def test_policy_file_excludes_preset_and_rules(tmp_path: Path) -> None:
    text = _error(tmp_path, {"file": "policy.yaml", "preset": "gke"}, files={"policy.yaml": POLICY_FILE})
    assert "spec.audit.policy.preset: cannot be combined with policy.file" in text


def test_empty_policy_file_is_refused(tmp_path: Path) -> None:
    text = _error(
        tmp_path,
        {"file": "policy.yaml"},
        files={"policy.yaml": "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"},
    )
    assert "0 rules" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("omitStages: RequestReceived\n", "omitStages: must be a list"),
        ("omitStages: [{a: 1}]\n", "omitStages[0]: must be one of: RequestReceived"),
        ('omitManagedFields: "false"\n', "omitManagedFields: must be true or false"),
        ("extra: 1\n", "unknown field 'extra' (expected one of: apiVersion, kind, metadata, rules,"),
        ("rule: []\n", "unknown field 'rule' (did you mean 'rules'?)"),  # a policy's fields, not a site's
    ],
)
def test_policy_file_top_level_fields_are_checked(tmp_path: Path, text: str, message: str) -> None:
    body = POLICY_FILE.replace("resourceNames: [x]", "resources: [pods]").replace(
        "omitStages: [RequestReceived]\n", text
    )
    assert message in _error(tmp_path, {"file": "policy.yaml"}, files={"policy.yaml": body})


def test_policy_file_with_merge_keys_is_read(tmp_path: Path) -> None:
    body = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
        "rules:\n  - &base {level: Metadata, verbs: [get]}\n  - {<<: *base, level: Request}\n"
    )
    policy = _policy(tmp_path, {"file": "policy.yaml"}, files={"policy.yaml": body})
    assert policy["rules"] == [
        {"level": "Metadata", "verbs": ["get"]},
        {"level": "Request", "verbs": ["get"]},
    ]


def test_a_preset_shared_by_sites_is_left_as_validated() -> None:
    """Every site shares a preset's validated rules (validated once per process): compiling
    and linting every example changes none of them."""
    from compiler.artifacts import audit_policy
    from compiler.datafiles import load_data
    from compiler.paths import data_dir
    from compiler.spec.model import PolicyRule
    from tests.sites import example_specs

    for spec in example_specs():
        compile_site(spec)
    names = sorted(p.stem for p in (data_dir() / "policies").glob("*.yaml"))
    assert "falco" in names
    for name in names:
        fresh = tuple(PolicyRule.model_validate(raw) for raw in load_data(f"policies/{name}.yaml")["rules"])
        assert audit_policy._preset(name) == fresh, name
