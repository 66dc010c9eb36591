"""Every lint rule: one spec where it fires (at the right spec line), one where it does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.api import analyse, compile_site
from compiler.cli import app
from compiler.errors import Diagnostic, UserError, format_path
from compiler.lint import rules
from compiler.spec.source import read_yaml
from tests.sites import ROOT, write_spec

PKS = {"platform": {"type": "pks", "kubeadm": None, "pks": {"api": "api.pks.example.com", "cluster": "c1"}}}
TLS = {"falco": {"receiver": {"tls": {"enabled": True, "existingSecret": "s"}}}}
DROP_PROBE = {"level": "None", "namespaces": ["falco"], "resources": [{"resources": ["configmaps"]}]}
METADATA_CONFIGMAPS = {
    "audit": {
        "policy": {
            "rules": [{"level": "Metadata", "resources": [{"group": "", "resources": ["configmaps"]}]}]
        }
    }
}

# id -> (spec that fires it, spec path of the finding, spec that does not fire it)
# an EKS site (a managed control plane), as the EKS cases write spec.platform
EKS: dict[str, Any] = {
    "type": "eks",
    "kubeadm": None,
    "eks": {
        "clusterName": "c",
        "region": "eu-west-1",
        "identity": {"mode": "irsa", "roleArn": "arn:aws:iam::123456789012:role/r"},
    },
}
GKE: dict[str, Any] = {
    "type": "gke",
    "kubeadm": None,
    "gke": {
        "project": "acme-prod-123",
        "cluster": "c",
        "location": "europe-west1",
        "serviceAccount": "falco-audit@acme-prod-123.iam.gserviceaccount.com",
    },
}
AKS: dict[str, Any] = {
    "type": "aks",
    "kubeadm": None,
    "aks": {
        "subscription": "0b1f6471-1bf0-4dda-aec3-111122223333",
        "resourceGroup": "rg",
        "cluster": "c",
        "eventHub": {"namespace": "audit-hubs", "name": "h", "connectionSecret": {"name": "s", "key": "k"}},
        "checkpoint": {
            "storageAccount": "acct123",
            "container": "checkpoints",
            "connectionSecret": {"name": "s", "key": "k2"},
        },
    },
}
ARGO = {"engine": "argocd", "repoURL": "https://git.example.com/audit.git"}

CASES: dict[str, tuple[dict[str, Any], tuple[str | int, ...], dict[str, Any]]] = {
    "AUD001": (
        {
            "audit": {
                "policy": {
                    "rules": [
                        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["secrets"]}]}
                    ]
                }
            }
        },
        ("spec", "audit", "policy", "rules", 0),
        {
            "audit": {
                "policy": {"rules": [{"level": "Request", "verbs": ["get"], "resources": [{"group": ""}]}]}
            }
        },
    ),
    "AUD002": ({}, ("spec", "audit", "policy", "preset"), METADATA_CONFIGMAPS),
    "AUD003": ({}, ("spec", "falco", "receiver", "tls", "enabled"), TLS),
    "AUD004": (
        {
            "falco": {
                "receiver": {"tls": {"enabled": True, "existingSecret": "s", "insecureSkipVerify": True}}
            }
        },
        ("spec", "falco", "receiver", "tls", "insecureSkipVerify"),
        TLS,
    ),
    "AUD005": (
        {},
        ("spec", "falco", "receiver", "service", "type"),
        {
            "falco": {
                "receiver": {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.9"}}
            }
        },
    ),
    "AUD006": (
        {"audit": {"log": {"maxAge": 7}}},
        ("spec", "audit", "log", "maxAge"),
        {"audit": {"log": {"maxAge": 30}}},
    ),
    "AUD007": ({"audit": {"log": {"enabled": False}}}, ("spec", "audit", "log", "enabled"), {}),
    "AUD008": (
        {"audit": {"policy": {"omitStages": ["RequestReceived", "ResponseStarted"]}}},
        ("spec", "audit", "policy", "omitStages"),
        {
            "audit": {"policy": {"omitStages": ["RequestReceived", "ResponseStarted"]}},
            "falco": {"rules": {"disable": ["Attach/Exec Pod"]}},
        },
    ),
    "AUD009": (
        {"audit": {"policy": {"preset": "none", "rules": [{"level": "RequestResponse"}]}}},
        ("spec", "audit", "policy", "rules", 0),
        {"audit": {"policy": {"preset": "none", "rules": [{"level": "Metadata"}]}}},
    ),
    "AUD010": ({"falco": {"syscalls": True}}, ("spec", "falco", "syscalls"), {}),
    "AUD011": ({"audit": {"webhook": {"mode": "blocking"}}}, ("spec", "audit", "webhook", "mode"), {}),
    "AUD012": (
        {
            **PKS,
            "platform": {**PKS["platform"], "pks": {**PKS["platform"]["pks"], "skipSslValidation": True}},
        },
        ("spec", "platform", "pks", "skipSslValidation"),
        PKS,
    ),
    "AUD013": (
        {**PKS, "kubernetes": {"serviceCIDR": "10.0.0.0/16"}},
        ("spec", "falco", "receiver", "address"),
        {**PKS, "kubernetes": {"serviceCIDR": "10.100.0.0/16"}},
    ),
    "AUD014": (
        {**PKS, "audit": {"log": {"path": "/var/lib/k8s-audit/audit.log"}}},
        ("spec", "audit", "log", "path"),
        {**PKS, "audit": {"log": {"path": "/var/vcap/sys/log/kube-apiserver/audit/audit.log"}}},
    ),
    "AUD016": (
        {
            "audit": {
                "policy": {
                    "rules": [{"level": "Metadata", "resources": [{"group": "", "resources": ["pods/logs"]}]}]
                }
            }
        },
        ("spec", "audit", "policy", "rules", 0, "resources", 0, "resources", 0),
        {
            "audit": {
                "policy": {
                    "rules": [
                        {
                            "level": "Metadata",
                            "resources": [{"group": "x.example.com", "resources": ["Widgets"]}],
                        }
                    ]
                }
            }
        },
    ),
    "AUD017": (
        {"audit": {"webhook": {"truncate": {"enabled": False}}}},
        ("spec", "audit", "webhook", "truncate", "enabled"),
        {"audit": {"webhook": {"truncate": {"maxEventSize": 262144}}}},
    ),
    "AUD015": (
        {"kubernetes": {"version": "1.36"}, "audit": {"log": {"maxSize": 0}}},
        ("spec", "audit", "log", "maxSize"),
        {"kubernetes": {"version": "1.35"}, "audit": {"log": {"maxSize": 0}}},
    ),
    # the spec checks' warnings
    "AUD018": ({"kubernetes": {"version": "1.40"}}, ("spec", "kubernetes", "version"), {}),
    "AUD019": (
        {"falco": {"version": "0.45.0"}},
        ("spec", "falco", "version"),
        {"falco": {"version": "0.44.0"}},
    ),
    "AUD020": ({"falco": {"values": {"resorces": {}}}}, ("spec", "falco", "values", "resorces"), {}),
    "AUD021": (
        {"audit": {"log": {"enabled": False}, "webhook": {"enabled": False}}},
        ("spec", "audit"),
        {"audit": {"log": {"enabled": False}}},
    ),
    "AUD022": (
        {"falco": {"version": "0.43.1", "chart": {"version": "9.1.0"}}},
        ("spec", "falco", "chart", "version"),
        {"falco": {"version": "0.44.0", "chart": {"version": "9.1.0"}}},
    ),
    "AUD023": (
        {"falco": {"chart": {"version": "10.0.0", "repository": "https://charts.example.com/falco"}}},
        ("spec", "falco", "chart", "version"),
        {"falco": {"chart": {"version": "9.1.0", "repository": "https://charts.example.com/falco"}}},
    ),
    "AUD024": (
        {"falco": {"rules": {"artifactsVersion": "0.16"}}},
        ("spec", "falco", "rules", "artifactsVersion"),
        {"falco": {"rules": {"artifactsVersion": "0.16.1"}}},
    ),
    "AUD025": (
        {"falco": {"version": "0.23.0", "rules": {"disable": ["Create NodePort Service"]}}},
        ("spec", "falco", "rules", "disable", 0),
        {"falco": {"version": "0.31.1", "rules": {"disable": ["Create NodePort Service"]}}},
    ),
    "AUD026": (
        {"platform": {"type": "minikube", "kubeadm": None, "minikube": {"profile": "p"}}},
        ("spec", "kubernetes", "version"),
        {
            "kubernetes": {"version": "1.30.0"},
            "platform": {"type": "minikube", "kubeadm": None, "minikube": {"profile": "p"}},
        },
    ),
    "AUD027": (
        {"lint": {"accept": ["AUD011"]}},
        ("spec", "lint", "accept", 0),
        {"lint": {"accept": ["AUD003"]}},
    ),
    "AUD028": (
        {"metadata": {"labels": {"app.kubernetes.io/name": "audit"}}},
        ("metadata", "labels", "app.kubernetes.io/name"),
        {"metadata": {"labels": {"team": "audit"}}},
    ),
    "AUD029": (
        {
            "audit": {
                "policy": {
                    "preset": "falco",
                    "rules": [DROP_PROBE],
                }
            }
        },
        ("spec", "falco", "probe"),
        {
            "audit": {
                "policy": {
                    "preset": "falco",
                    "rules": [{"level": "None", "namespaces": ["kube-system"]}],
                }
            }
        },
    ),
    "AUD030": (
        {"falco": {"values": {"falco": {"priority": "warning"}}}},
        ("spec", "falco", "values", "falco", "priority"),
        {"falco": {"values": {"falco": {"priority": "notice"}}}},
    ),
    "AUD031": (
        {"platform": EKS, "falco": {"values": {"controller": {"deployment": {"replicas": 2}}}}},
        ("spec", "falco", "values", "controller"),
        {"platform": EKS, "falco": {"values": {"controller": {"deployment": {"replicas": 1}}}}},
    ),
    "AUD032": (
        {"platform": EKS, "audit": {"policy": {"preset": "minimal"}}},
        ("spec", "audit", "policy"),
        {"platform": EKS, "falco": {"receiver": None}},  # (the minimal site has a receiver address)
    ),
    "AUD033": (
        {"platform": GKE, "falco": {"values": {"controller": {"deployment": {"replicas": 3}}}}},
        ("spec", "falco", "values", "controller"),
        {"platform": GKE},
    ),
    "AUD034": (
        {"platform": AKS, "falco": {"values": {"controller": {"deployment": {"replicas": 2}}}}},
        ("spec", "falco", "values", "controller"),
        {"platform": AKS},
    ),
    "AUD035": (
        {"gitops": {**ARGO, "argocd": {"destinationServer": "https://edge.example.com:6443"}}},
        ("spec", "gitops", "argocd", "destinationServer"),
        {
            "gitops": {
                **ARGO,
                "engineCluster": "management",
                "argocd": {"destinationServer": "https://edge.example.com:6443"},
            }
        },
    ),
}


def _findings(tmp_path: Path, spec: dict[str, Any], rule_id: str) -> tuple[list[Diagnostic], Path]:
    spec = dict(spec)
    path = write_spec(tmp_path, spec, metadata=spec.pop("metadata", None))
    return [f for f in analyse(path).findings if f.code == rule_id], path


def test_every_rule_has_a_case_and_the_readme_documents_it() -> None:
    assert set(CASES) == set(rules())
    rows = ["| id | name | severity | why | fix |", "|---|---|---|---|---|"]
    rows += [f"| `{r.id}` | {r.name} | {r.severity} | {r.why} | {r.fix} |" for r in rules().values()]
    assert "\n".join(rows) in (ROOT / "README.md").read_text(), (
        "README lint table differs from lint-rules.yaml"
    )


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_at_the_spec_line(tmp_path: Path, rule_id: str) -> None:
    fires, where, _ = CASES[rule_id]
    findings, path = _findings(tmp_path, fires, rule_id)
    assert findings, f"{rule_id} did not fire"
    finding = findings[0]
    assert finding.severity == rules()[rule_id].severity
    assert finding.field == format_path(where)
    assert finding.location == read_yaml(path, str(path)).location(where)
    assert finding.fix == rules()[rule_id].fix and finding.why == rules()[rule_id].why


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_stays_quiet(tmp_path: Path, rule_id: str) -> None:
    _, _, quiet = CASES[rule_id]
    findings, _ = _findings(tmp_path, quiet, rule_id)
    assert findings == []


SECRET_BODIES = CASES["AUD001"][0]


def test_lint_errors_block_render_unless_accepted(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SECRET_BODIES)
    with pytest.raises(UserError, match=r"error\[AUD001\]"):
        compile_site(spec)
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "lint errors block rendering" in result.stderr and not (tmp_path / "out").exists()
    accepted = write_spec(
        tmp_path, {**SECRET_BODIES, "lint": {"accept": ["secret-bodies-logged"]}}
    )  # by name
    assert compile_site(accepted).artifacts


def test_the_default_spec_renders_without_accepting_anything(tmp_path: Path) -> None:
    """The falco preset logs configmap bodies on purpose: a warning, not an error."""
    site = compile_site(write_spec(tmp_path, {}))
    assert "AUD002" in {w.code for w in site.warnings}
    for example in sorted((ROOT / "specs").glob("*.yaml")):
        assert "lint" not in (read_yaml(example, str(example)).data["spec"]), example


def test_unknown_accept_id_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"spec.lint.accept\[0\]: unknown lint id 'AUD999'"):
        analyse(write_spec(tmp_path, {"lint": {"accept": ["AUD999"]}}))


def test_validate_exit_codes_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    blocked = write_spec(tmp_path, SECRET_BODIES)
    result = runner.invoke(app, ["validate", "--format", "json", str(blocked)])
    assert result.exit_code == 1
    (site,) = json.loads(result.stdout)["sites"]
    assert site["ok"] is False
    ids = {f["id"] for f in site["findings"]}
    assert {"AUD001", "AUD002", "AUD003", "AUD005"} <= ids
    finding = next(f for f in site["findings"] if f["id"] == "AUD003")
    assert finding["severity"] == "warning" and finding["line"] and finding["file"] == str(blocked)

    fine = write_spec(tmp_path, {"lint": {"accept": ["AUD002"]}})  # warnings only
    assert runner.invoke(app, ["validate", str(fine)]).exit_code == 0
    strict = runner.invoke(app, ["validate", "--strict", str(fine)])
    assert strict.exit_code == 1
    assert "warning[AUD003]" in strict.stdout and "accepted[AUD002]" in strict.stdout


def test_render_prints_warnings_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One short line per finding (an accepted one not at all), then one summary line."""
    write_spec(tmp_path, {"lint": {"accept": ["AUD005"]}})
    monkeypatch.chdir(tmp_path)  # a short path, as most are: a long one leaves less for the message
    spec = Path("site.yaml")
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    warnings, summary = lines[:-1], lines[-1]
    assert [line.split(": ")[1] for line in warnings] == ["warning[AUD002]", "warning[AUD003]"]
    assert all(len(line) <= 160 and line.startswith(f"{spec}:") for line in warnings)
    assert "(+1 more like it: auditc validate)" in warnings[0]  # the falco preset's two configmap rules
    assert "fix:" not in result.stderr and "AUD005" not in result.stderr
    assert summary == (
        f"auditc: 1 site(s) rendered into {tmp_path / 'out'}: 1 changed (11 file(s)), 0 up to date; "
        "3 warning(s): AUD002 x2, AUD003 (auditc explain ID)"
    )
    again = CliRunner().invoke(app, ["render", str(spec), "-o", str(tmp_path / "out"), "--quiet"])
    assert again.exit_code == 0 and again.stderr == ""


@pytest.mark.parametrize(
    ("group", "resource", "fires", "hint"),
    [
        ("apps", "Deployments", True, "'deployments'"),
        ("apps", "deployment", True, "'deployments'"),
        ("", "pods/logs", True, "'pods/log'"),
        ("", "*/bogus", True, ""),
        ("", "pods/*", False, ""),
        ("apps", "*/scale", False, ""),
        ("", "serviceaccounts/token", False, ""),
        ("rbac.authorization.k8s.io", "*", False, ""),
    ],
)
def test_resource_strings(tmp_path: Path, group: str, resource: str, fires: bool, hint: str) -> None:
    rule = {"level": "Metadata", "resources": [{"group": group, "resources": [resource]}]}
    findings, _ = _findings(tmp_path, {"audit": {"policy": {"rules": [rule]}}}, "AUD016")
    assert bool(findings) == fires
    if hint:
        assert f"did you mean {hint}" in findings[0].message


@pytest.mark.parametrize("preset", ["falco", "gke", "docs-example", "minimal"])
def test_presets_name_only_real_resources(tmp_path: Path, preset: str) -> None:
    findings, _ = _findings(tmp_path, {"audit": {"policy": {"preset": preset}}}, "AUD016")
    assert findings == []


# ---- review cases: false positives and negatives ------------------------------------------------

PINNED = {
    "falco": {"receiver": {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.100.200.50"}}}
}


@pytest.mark.parametrize(
    ("rule_id", "spec", "fires"),
    [
        ("AUD013", {**PKS, **PINNED}, True),  # a pinned ClusterIP is unreachable from PKS masters
        ("AUD014", {**PKS, "audit": {"log": {"enabled": False, "path": "/var/lib/x/audit.log"}}}, False),
        ("AUD014", {**PKS, "audit": {"log": {"path": "/var/vcap/store/kube-apiserver/audit.log"}}}, True),
        ("AUD001", {"audit": {"policy": {"file": "p.yaml"}}}, False),  # verbs ["*"] matches nothing
        ("AUD016", {"audit": {"policy": {"file": "p.yaml"}}}, True),
        (
            "AUD009",
            {
                "kubernetes": {"version": "1.36"},
                "audit": {
                    "policy": {
                        "rules": [
                            {"level": "RequestResponse", "resources": [{"group": "*", "resources": ["*"]}]}
                        ]
                    }
                },
            },
            True,
        ),
        ("AUD010", {"falco": {"values": {"controller": {"deployment": {"replicas": "{{ n }}"}}}}}, False),
        ("AUD010", {"falco": {"values": {"controller": {"deployment": {"replicas": 2}}}}}, True),
        ("AUD010", {"falco": {"syscalls": True}, "audit": {"webhook": {"enabled": False}}}, False),
        (
            "AUD001",
            {
                "audit": {
                    "policy": {
                        "rules": [
                            {
                                "level": "RequestResponse",
                                "resources": [{"group": "", "resources": ["serviceaccounts/token"]}],
                            }
                        ]
                    }
                }
            },
            True,
        ),
        (
            "AUD001",
            {
                "audit": {
                    "policy": {
                        "rules": [
                            {
                                "level": "Request",
                                "resources": [{"group": "", "resources": ["serviceaccounts/token"]}],
                            }
                        ]
                    }
                }
            },
            False,  # a token request's body holds no secret; its response does
        ),
        (
            "AUD016",
            {
                "kubernetes": {"version": "1.36"},
                "audit": {
                    "policy": {
                        "rules": [
                            {
                                "level": "Metadata",
                                "resources": [
                                    {"group": "coordination.k8s.io", "resources": ["leasecandidates"]}
                                ],
                            }
                        ]
                    }
                },
            },
            False,
        ),
        (
            "AUD016",
            {
                "kubernetes": {"version": "1.36"},
                "audit": {
                    "policy": {
                        "rules": [
                            {"level": "Metadata", "resources": [{"group": "*", "resources": ["*/bogus"]}]}
                        ]
                    }
                },
            },
            True,
        ),
        ("AUD017", {"audit": {"webhook": {"truncate": {"maxEventSize": 300000}}}}, True),
    ],
)
def test_review_cases(tmp_path: Path, rule_id: str, spec: dict[str, Any], fires: bool) -> None:
    star = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n    verbs: ['*']\n"
    path = write_spec(tmp_path, spec, files={"p.yaml": star})
    findings = [f for f in analyse(path).findings if f.code == rule_id]
    assert bool(findings) == fires, findings


def test_unused_accept_is_a_warning(tmp_path: Path) -> None:
    findings = analyse(write_spec(tmp_path, {"lint": {"accept": ["AUD002", "AUD011"]}})).findings
    (unused,) = [f for f in findings if f.code == "AUD027"]
    assert unused.field == "spec.lint.accept[1]" and "AUD011 is accepted but nothing" in unused.message


def test_cis_ids_follow_the_kubernetes_version(tmp_path: Path) -> None:
    def cis(version: str) -> str:
        spec = write_spec(tmp_path, {"kubernetes": {"version": version}, "audit": {"log": {"maxBackup": 1}}})
        (finding,) = [f for f in analyse(spec).findings if f.code == "AUD006"]
        return finding.message

    assert "CIS 1.2.24, cis-1.6" in cis("1.17")
    assert "CIS 1.2.23, cis-1.20" in cis("1.20")
    assert "CIS 1.2.18, cis-1.9" in cis("1.27")
    assert "CIS 1.2.18, cis-1.12" in cis("1.34")
    assert "maps no benchmark to 1.36" in cis("1.36")
    assert "maps no benchmark to 1.14" in cis("1.14")


HANDWRITTEN = """\
apiVersion: auditc.dev/v1alpha1
kind: Site
metadata:
  name: lines
spec:
  kubernetes:
    version: "1.30"
  platform:
    type: kubeadm
    kubeadm:
      controlPlanes:
        - host: 10.0.0.1
  falco:
    receiver:
      address: 10.0.0.1
  audit:
    policy:
      preset: minimal
      rules:
        - level: Metadata
          resources:
            - group: ""
              resources: [pods, pods/logs]
    log:
      maxAge: 3
    webhook:
      mode: blocking
"""


def test_findings_point_at_the_lines_a_person_wrote(tmp_path: Path) -> None:
    """Line and column written down by hand, not computed by the code under test."""
    spec = tmp_path / "site.yaml"
    spec.write_text(HANDWRITTEN)
    where = {f.code: (f.location.line, f.location.col) for f in analyse(spec).findings if f.location}
    assert where["AUD016"] == (23, 33)  # pods/logs in the flow list
    assert where["AUD006"] == (25, 15)  # maxAge: 3
    assert where["AUD011"] == (27, 13)  # mode: blocking
    assert where["AUD003"] == (14, 5)  # tls not written: the receiver key
    assert where["AUD005"] == (14, 5)  # service not written: the receiver key


@pytest.mark.parametrize(
    ("spec", "rule_id", "where"),
    [
        ({"platform": GKE, "falco": {"receiver": {"port": 9000}}}, "AUD032", ("spec", "falco", "receiver")),
        (
            {"platform": EKS, "falco": {"receiver": None, "rules": {"artifactsVersion": "0.16.1"}}},
            "AUD032",
            ("spec", "falco", "rules", "artifactsVersion"),
        ),
        (
            {"platform": GKE, "falco": {"values": {"falco": {"priority": "error"}}}},
            "AUD030",
            ("spec", "falco", "values", "falco", "priority"),
        ),
    ],
)
def test_managed_sites_get_the_rules_that_apply_to_them(
    tmp_path: Path, spec: dict[str, Any], rule_id: str, where: tuple[str, ...]
) -> None:
    findings, _ = _findings(tmp_path, spec, rule_id)
    assert [f.field for f in findings] == [format_path(where)]


@pytest.mark.parametrize(
    ("platform", "rule_id", "controller", "says"),
    [
        (EKS, "AUD031", {"deployment": {"replicas": 0}}, "no pod, so nothing reads the log"),
        (EKS, "AUD031", {"deployment": {"replicas": 2}}, "2 pods, so every alert comes more than once"),
        (GKE, "AUD033", {"deployment": {"replicas": 3}}, "3 pods pulling one Pub/Sub subscription"),
    ],
)
def test_a_pull_plugin_needs_one_pod(
    tmp_path: Path, platform: dict[str, Any], rule_id: str, controller: dict[str, Any], says: str
) -> None:
    spec = {"platform": platform, "falco": {"receiver": None, "values": {"controller": controller}}}
    findings, _ = _findings(tmp_path, spec, rule_id)
    assert len(findings) == 1 and says in findings[0].message, findings


@pytest.mark.parametrize(
    "server",
    [
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc/",
        "https://kubernetes.default.svc:443",
    ],
)
def test_aud035_knows_argo_cds_own_server_however_written(tmp_path: Path, server: str) -> None:
    spec = {"gitops": {**ARGO, "argocd": {"destinationServer": server}}}
    assert _findings(tmp_path, spec, "AUD035")[0] == []
