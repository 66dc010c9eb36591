"""Per-artifact behaviour that the golden trees show but do not explain."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from compiler.api import compile_site
from compiler.errors import UserError
from tests.sites import write_spec

yaml = YAML(typ="safe", pure=True)


def _artifact(spec: Path, path: str) -> Any:
    site = compile_site(spec)
    return list(yaml.load_all(next(a.content for a in site.artifacts if a.path == path)))


@pytest.mark.parametrize(
    ("version", "api", "shape"),
    [
        ("1.13", "kubeadm.k8s.io/v1beta1", dict),
        ("1.14.10", "kubeadm.k8s.io/v1beta1", dict),
        ("1.15", "kubeadm.k8s.io/v1beta2", dict),
        ("1.21", "kubeadm.k8s.io/v1beta2", dict),
        ("1.22", "kubeadm.k8s.io/v1beta3", dict),
        ("1.30", "kubeadm.k8s.io/v1beta3", dict),
        ("1.31", "kubeadm.k8s.io/v1beta4", list),
        ("1.36", "kubeadm.k8s.io/v1beta4", list),
    ],
)
def test_kubeadm_config_api_follows_the_version(tmp_path: Path, version: str, api: str, shape: type) -> None:
    (config,) = _artifact(
        write_spec(tmp_path, {"kubernetes": {"version": version}}), "node/kubeadm-config.yaml"
    )
    assert config["apiVersion"] == api
    assert config["kind"] == "ClusterConfiguration"
    args = config["apiServer"]["extraArgs"]
    assert isinstance(args, shape)
    pairs = {a["name"]: a["value"] for a in args} if isinstance(args, list) else args
    assert pairs["audit-policy-file"] == "/etc/kubernetes/audit/audit-policy.yaml"
    assert pairs["audit-webhook-config-file"] == "/etc/kubernetes/audit/audit-webhook.kubeconfig"
    assert ("audit-log-compress" in pairs) == (version >= "1.20")
    volumes = {v["name"]: v for v in config["apiServer"]["extraVolumes"]}
    assert volumes["auditc-config"]["readOnly"] is True
    assert volumes["auditc-log"] == {
        "name": "auditc-log",
        "hostPath": "/var/log/kubernetes/audit",
        "mountPath": "/var/log/kubernetes/audit",
        "readOnly": False,
        "pathType": "DirectoryOrCreate",
    }


def test_log_to_stdout_mounts_no_log_dir(tmp_path: Path) -> None:
    (config,) = _artifact(write_spec(tmp_path, {"audit": {"log": {"path": "-"}}}), "node/kubeadm-config.yaml")
    assert config["apiServer"]["extraArgs"]["audit-log-path"] == "-"
    assert "audit-log-maxage" not in config["apiServer"]["extraArgs"]
    assert [v["name"] for v in config["apiServer"]["extraVolumes"]] == ["auditc-config"]


def test_webhook_kubeconfig_with_ca_and_with_insecure(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    tls = {"enabled": True, "existingSecret": "s", "caFile": "ca.pem"}
    (config,) = _artifact(
        write_spec(tmp_path, {"falco": {"receiver": {"tls": tls}}}, files={"ca.pem": pem}),
        "node/audit-webhook.kubeconfig",
    )
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.1:30007/k8s-audit"
    assert base64.b64decode(cluster["certificate-authority-data"]).decode() == pem
    assert config["current-context"] == "falco"

    insecure = {"enabled": True, "existingSecret": "s", "insecureSkipVerify": True}
    (config,) = _artifact(
        write_spec(tmp_path, {"falco": {"receiver": {"tls": insecure}}}), "node/audit-webhook.kubeconfig"
    )
    assert config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ({"tls": {"enabled": True}}, "tls.existingSecret: required when tls.enabled"),
        ({"tls": {"caFile": "x.pem"}}, "only meaningful with tls.enabled"),
        (
            {"tls": {"enabled": True, "existingSecret": "s", "caFile": "ca.pem", "insecureSkipVerify": True}},
            "cannot be combined with caFile",
        ),
        (
            {"tls": {"enabled": True, "existingSecret": "s", "caFile": "notpem.txt"}},
            "holds no PEM certificate",
        ),
        ({"service": {"type": "ClusterIP", "nodePort": 30001}}, "nodePort is only for service.type NodePort"),
        ({"service": {"clusterIP": "10.96.0.9"}}, "a pinned clusterIP needs service.type ClusterIP"),
    ],
)
def test_receiver_checks(tmp_path: Path, receiver: dict[str, Any], message: str) -> None:
    files = {"ca.pem": "-----BEGIN CERTIFICATE-----\n", "notpem.txt": "hello\n"}
    with pytest.raises(UserError, match=message):
        compile_site(write_spec(tmp_path, {"falco": {"receiver": receiver}}, files=files))


def test_pinned_cluster_ip_is_the_default_address(tmp_path: Path) -> None:
    receiver = {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.9"}}
    spec = write_spec(
        tmp_path, {"kubernetes": {"serviceCIDR": "10.96.0.0/12"}, "falco": {"receiver": receiver}}
    )
    (config,) = _artifact(spec, "node/audit-webhook.kubeconfig")
    assert config["clusters"][0]["cluster"]["server"] == "http://10.96.0.9:9765/k8s-audit"


def test_ipv6_address_is_bracketed(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {"falco": {"receiver": {"address": "fd00::10"}}})
    (config,) = _artifact(spec, "node/audit-webhook.kubeconfig")
    assert config["clusters"][0]["cluster"]["server"] == "http://[fd00::10]:30007/k8s-audit"


def test_plugin_needs_no_cluster_role(tmp_path: Path) -> None:
    docs = _artifact(write_spec(tmp_path, {}), "cluster/rbac.yaml")
    assert [d["kind"] for d in docs] == ["ServiceAccount"]


def test_legacy_falco_gets_the_read_only_trio(tmp_path: Path) -> None:
    docs = _artifact(write_spec(tmp_path, {"falco": {"version": "0.31.1"}}), "cluster/rbac.yaml")
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "falco-account"),
        ("ClusterRole", "falco-cluster-role"),
        ("ClusterRoleBinding", "falco-cluster-role-binding"),
    ]
    verbs = {verb for rule in docs[1]["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}


def test_labels_reach_every_object(tmp_path: Path) -> None:
    gitops = {"engine": "argocd", "repoURL": "https://git.example.com/x.git"}
    spec = write_spec(tmp_path, {"gitops": gitops}, metadata={"labels": {"team": "sec"}})
    site = compile_site(spec)
    for artifact in site.artifacts:
        if artifact.path.startswith("cluster/") and artifact.path != "cluster/kustomization.yaml":
            for doc in yaml.load_all(artifact.content):
                assert doc["metadata"]["labels"]["team"] == "sec", artifact.path


def test_dynamic_auditing_adds_the_sink_and_gates(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {"kubernetes": {"version": "1.18"}, "audit": {"dynamic": True}})
    (sink,) = _artifact(spec, "plan/audit-sink.yaml")  # applied once the nodes serve its API
    assert sink["apiVersion"] == "auditregistration.k8s.io/v1alpha1"
    assert sink["spec"]["webhook"]["clientConfig"]["url"] == "http://10.0.0.1:30007/k8s-audit"
    (config,) = _artifact(spec, "node/kubeadm-config.yaml")
    args = config["apiServer"]["extraArgs"]
    assert args["audit-dynamic-configuration"] == "true"
    assert args["feature-gates"] == "DynamicAuditing=true"
    assert args["runtime-config"] == "auditregistration.k8s.io/v1alpha1=true"


def test_newer_kubernetes_is_a_warning(tmp_path: Path) -> None:
    site = compile_site(write_spec(tmp_path, {"kubernetes": {"version": "1.40"}}))
    (warning,) = [w for w in site.warnings if w.code == "AUD018"]
    assert warning.severity == "warning"
    assert warning.field == "spec.kubernetes.version"
    assert warning.message == "Kubernetes 1.40 is newer than the newest known (1.36); treated as 1.36"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"audit": {"log": {"path": "/audit.log"}}}, "the log file needs its own directory"),
        ({"audit": {"log": {"path": "/etc/kubernetes/audit/x/audit.log"}}}, "overlaps the config dir"),
        (
            {"audit": {"log": {"path": "/etc/kubernetes/manifests/a.log"}}},
            "the kubelet runs every file there",
        ),
        (
            {"platform": {"kubeadm": {"configDir": "/etc/kubernetes/manifests/audit"}}},
            "kubelet runs every file",
        ),
        ({"platform": {"kubeadm": {"configDir": "/"}}}, "must not be /"),
        ({"falco": {"receiver": {"port": 8765}}}, "Falco's own webserver port"),
        (
            {"falco": {"receiver": {"service": {"type": "ClusterIP"}}}},
            "clusterIP: required with service.type",
        ),
        ({"audit": {"webhook": {"truncate": {"maxBatchSize": 1000}}}}, "must be >= truncate.maxEventSize"),
        ({"audit": {"log": {"truncate": {"maxEventSize": 20000000}}}}, "must be >= truncate.maxEventSize"),
        (
            {"audit": {"webhook": {"truncate": {"maxBatchSize": 20000000}}}},
            "the k8saudit plugin's webhookMaxBatchSize",
        ),
        ({"gitops": {"engine": "flux", "repoURL": "not a url; $(reboot)"}}, "must be a git repository URL"),
    ],
)
def test_settings_that_would_render_but_break(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        compile_site(write_spec(tmp_path, spec))


def test_unknown_chart_values_are_warnings_with_a_hint(tmp_path: Path) -> None:
    site = compile_site(
        write_spec(tmp_path, {"falco": {"values": {"resorces": {}, "driver": {"enabld": False}}}})
    )
    messages = sorted((w.field, w.message) for w in site.warnings if w.code == "AUD020")
    unknown = "not a key of the Falco chart's values (9.1.0)"
    assert messages == [
        ("spec.falco.values.driver.enabld", f"{unknown} (did you mean 'driver.enabled'?)"),
        ("spec.falco.values.resorces", f"{unknown} (did you mean 'resources'?)"),
    ]


@pytest.mark.parametrize(
    ("falco", "expected"),
    [
        # 0.36 reads a list without `append` as a redefinition: `override:` arrives in 0.37.0
        (
            "0.36.2",
            [{"list": "allowed_k8s_users", "items": ["x"], "append": True}, {"rule": "R", "enabled": False}],
        ),
        (
            "0.37.1",
            [
                {"list": "allowed_k8s_users", "items": ["x"], "override": {"items": "append"}},
                {"rule": "R", "enabled": False, "override": {"enabled": "replace"}},
            ],
        ),
        # Falco < 0.31 refuses an `enabled`-only rule: disabled with falco -D instead
        ("0.30.0", [{"list": "allowed_k8s_users", "items": ["x"], "append": True}]),
    ],
)
def test_rule_override_syntax_follows_the_falco_release(
    tmp_path: Path, falco: str, expected: list[dict[str, object]]
) -> None:
    spec = {"falco": {"version": falco, "rules": {"lists": {"allowed_k8s_users": ["x"]}, "disable": ["R"]}}}
    (values,) = _artifact(write_spec(tmp_path, spec), "helm/falco-values.yaml")
    assert yaml.load(values["customRules"]["zz-auditc-overrides.yaml"]) == expected


def test_ipv6_hosts_are_bracketed_for_scp(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {"platform": {"kubeadm": {"controlPlanes": [{"host": "fd00::10"}]}}})
    apply = next(a.content.decode() for a in compile_site(spec).artifacts if a.path == "plan/apply.sh")
    assert "'root@[fd00::10]'" in apply and "'root@fd00::10'" in apply


def test_no_webhook_no_kubeconfig(tmp_path: Path) -> None:
    site = compile_site(write_spec(tmp_path, {"audit": {"webhook": {"enabled": False}}}))
    paths = {a.path for a in site.artifacts}
    assert "node/audit-webhook.kubeconfig" not in paths
    (config,) = _artifact(
        write_spec(tmp_path, {"audit": {"webhook": {"enabled": False}}}), "node/kubeadm-config.yaml"
    )
    assert not any(name.startswith("audit-webhook") for name in config["apiServer"]["extraArgs"])
