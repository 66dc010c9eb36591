"""AKS: a managed control plane. The example renders no node files and a plan whose own
steps are on the Azure side; plan/apply.sh and auditc plan / apply / diff --live run
against a stand-in `az` over a state directory (the documented command lines and output
shapes of `az eventhubs eventhub`, `az storage container` and `az monitor
diagnostic-settings`), with the suite's stand-in kubectl and helm. The connection strings
never appear: the values name environment variables that come from the spec's Secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compiler.api import compile_site
from compiler.cli import app
from compiler.errors import UserError
from tests import standins
from tests.sites import ROOT, compiled, write_spec, write_tree
from tests.tools import yaml12

EXAMPLE = ROOT / "specs" / "aks-prod.yaml"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
CLUSTER_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod/providers/Microsoft.ContainerService"
    "/managedClusters/prod-aks"
)
RULE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod/providers/Microsoft.EventHub/namespaces"
    "/acme-audit-hubs/authorizationRules/RootManageSharedAccessKey"
)
SECRET = "falco-aks-audit"

# az over $FAKE_AZ/state.json, as the Azure CLI documents these commands:
# `eventhubs eventhub list --subscription S --resource-group G --namespace-name N --query
# "[?name=='H'].name" --output tsv` prints H when the hub exists (nothing otherwise);
# `eventhub create ... --name H` (a JSON object); `storage container exists --account-name A
# --auth-mode login --name C --query exists --output tsv` prints true/false; `container
# create`; `monitor diagnostic-settings list --resource ID --query "[?name=='N']" --output
# json` (a JSON list; ARM answers with the resource group lowercased in ids) and `create
# --name N --resource ID --event-hub H --event-hub-rule RULE --logs JSON` (a PUT: replaces
# the setting of that name). The subscription and namespace must be the example's; every
# call is appended to $FAKE_LOG; errors go to stderr with exit 1 (ResourceNotFound: 3).
AZ = r"""
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("az " + " ".join(args) + "\n")
path = os.path.join(os.environ["FAKE_AZ"], "state.json")
state = json.load(open(path)) if os.path.exists(path) else {"hubs": [], "containers": [], "settings": {}}
def option(name):
    return args[args.index(name) + 1] if name in args else None
def save():
    json.dump(state, open(path, "w"))
def fail(text, code=1):
    print(f"ERROR: {text}", file=sys.stderr); sys.exit(code)
def named(query):
    found = re.fullmatch(r"\[\?name=='([^']*)'\](\.name)?", query or "")
    if not found:
        fail(f"stand-in az: unexpected --query {query}", 2)
    return found.group(1), bool(found.group(2))
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
CLUSTER = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod/providers"
CLUSTER += "/Microsoft.ContainerService/managedClusters/prod-aks"
if args[:2] == ["eventhubs", "eventhub"]:
    if option("--subscription") != SUBSCRIPTION or option("--namespace-name") != "acme-audit-hubs":
        fail("(ResourceNotFound) The Resource 'Microsoft.EventHub/namespaces' was not found.", 3)
    if args[2] == "list":
        if os.path.exists(os.path.join(os.environ["FAKE_AZ"], "refuse")):
            fail("(AuthorizationFailed) The client does not have authorization to perform action", 1)
        if option("--query") != "[].name":
            fail(f"stand-in az: unexpected --query {option('--query')}", 2)
        for name in state["hubs"]:
            print(name)
    elif args[2] == "create":
        state["hubs"].append(option("--name")); save()
        print(json.dumps({"name": option("--name"), "partitionCount": 4, "status": "Active"}))
elif args[:2] == ["storage", "container"]:
    if option("--auth-mode") != "login" or option("--account-name") != "acmeauditcheckpoints":
        fail("stand-in az: auditc reads the account with --auth-mode login", 2)
    name = option("--name")
    if args[2] == "exists":
        print("true" if name in state["containers"] else "false")
    elif args[2] == "create":
        created = name not in state["containers"]
        state["containers"] = sorted(set(state["containers"]) | {name}); save()
        print(json.dumps({"created": created}))
elif args[:2] == ["monitor", "diagnostic-settings"]:
    resource = option("--resource")
    if resource != CLUSTER:
        fail(f"(ResourceNotFound) The Resource '{resource}' was not found.", 3)
    if args[2] == "list":
        name, _ = named(option("--query"))
        found = [s for n, s in state["settings"].items() if n == name]
        print(json.dumps(found, indent=2))
    elif args[2] == "create":
        logs = json.loads(option("--logs"))
        rule = option("--event-hub-rule").replace("/resourceGroups/rg-prod/", "/resourcegroups/rg-prod/")
        state["settings"][option("--name")] = {
            "name": option("--name"), "eventHubName": option("--event-hub"),
            "eventHubAuthorizationRuleId": rule,
            "logs": [dict(e, categoryGroup=None, retentionPolicy={"days": 0}) for e in logs],
        }
        save(); print(json.dumps(state["settings"][option("--name")]))
else:
    fail(f"stand-in az: unexpected: {args}", 2)
"""

SECRET_YAML = f"""apiVersion: v1
kind: Secret
metadata: {{name: {SECRET}, namespace: falco}}
stringData:
  eventhub-connection-string: "Endpoint=sb://x/;SharedAccessKeyName=l;SharedAccessKey=k"
  storage-connection-string: "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k"
"""


def _operator_applies(manifest: Path) -> None:
    """Create the operator's Secret in the stand-in cluster, as the operator would."""
    made = subprocess.run(
        ["kubectl", "apply", "--server-side", "--field-manager=operator", "-f", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in az, kubectl and helm on PATH, the operator's Secret in the stand-in
    cluster; the az state directory."""
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    standins.python_program(bin_dir / "az", AZ)
    state = tmp_path / "az"
    state.mkdir()
    (tmp_path / "cluster").mkdir()
    for name, value in {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLUSTER": str(tmp_path / "cluster"),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_REAL_KUBECTL": real_kubectl,
        "FAKE_AZ": str(state),
        "AUDITC_STATE_DIR": str(tmp_path / "state"),
        "AUDITC_POLL_INTERVAL": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "secret.yaml").write_text(SECRET_YAML)
    _operator_applies(tmp_path / "secret.yaml")
    (tmp_path / "log").unlink()
    return state


def _state(azure: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((azure / "state.json").read_text())
    return loaded


def _calls(tmp_path: Path, verb: str = "") -> list[str]:
    log = tmp_path / "log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("az ") and f" {verb} " in f" {line} "]


def _wired(azure: Path) -> None:
    state = _state(azure)
    assert state["hubs"] == ["aks-audit"] and state["containers"] == ["falco-checkpoints"]
    setting = state["settings"]["falco-audit"]
    assert setting["eventHubName"] == "aks-audit"
    assert setting["eventHubAuthorizationRuleId"].lower() == RULE.lower()
    assert [(log["category"], log["enabled"]) for log in setting["logs"]] == [("kube-audit", True)]


def _script(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(out / "plan/apply.sh"), *args], capture_output=True, text=True, env=dict(os.environ)
    )


def test_the_example_names_secrets_never_connection_strings() -> None:
    site = compiled(EXAMPLE)
    assert not [a.path for a in site.artifacts if a.path.startswith("node/")]
    files = {a.path: a.content.decode() for a in site.artifacts}
    plan = yaml12.load(files["plan/plan.yaml"])
    actions = [step["action"] for step in plan["spec"]["steps"]]
    assert actions[:6] == [
        "check-event-hub",
        "create-event-hub",
        "check-checkpoint-container",
        "create-checkpoint-container",
        "check-diagnostic-setting",
        "diagnostic-setting",
    ]
    assert actions[-3:] == ["cluster-objects", "install-falco", "wait-for-falco"]
    assert plan["spec"]["secrets"] == [SECRET]
    values = yaml12.load(files["helm/falco-values.yaml"])
    (plugin,) = [p for p in values["falco"]["plugins"] if p["name"] == "k8saudit-aks"]
    assert plugin["init_config"]["event_hub_namespace_connection_string"] == (
        "${FALCO_AKS_EVENT_HUB_CONNECTION_STRING}"
    )
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in values["extra"]["env"]}
    assert env == {
        "FALCO_AKS_EVENT_HUB_CONNECTION_STRING": {"name": SECRET, "key": "eventhub-connection-string"},
        "FALCO_AKS_CHECKPOINT_CONNECTION_STRING": {"name": SECRET, "key": "storage-connection-string"},
    }
    assert not any("SharedAccessKey=" in text or "AccountKey=" in text for text in files.values())


def test_apply_sh_sets_up_the_azure_side_once(azure: Path, tmp_path: Path) -> None:
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    for _ in range(2):
        result = _script(out, "--execute")
        assert result.returncode == 0, result.stdout + result.stderr
        _wired(azure)
    assert len(_calls(tmp_path, "create")) == 4  # hub, container, setting; the setting again
    first_kubectl_apply = next(
        i
        for i, line in enumerate((tmp_path / "log").read_text().splitlines())
        if "apply --server-side" in line
    )
    log = (tmp_path / "log").read_text().splitlines()
    assert any(line.startswith("az monitor") for line in log[:first_kubectl_apply]), "Azure side first"


def test_a_missing_secret_stops_before_anything(azure: Path, tmp_path: Path) -> None:
    subprocess.run(["kubectl", "-n", "falco", "delete", "secret", SECRET], check=True, capture_output=True)
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    result = _script(out, "--execute")
    assert result.returncode == 1
    assert f"the Secret {SECRET} is not in namespace falco" in result.stderr
    assert _calls(tmp_path) == []
    applied = CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"])
    assert applied.exit_code == 1
    assert f"the Secret {SECRET} is not in namespace falco" in applied.output
    assert "nothing was touched" in applied.output and _calls(tmp_path, "create") == []


def test_a_secret_without_the_key_stops_before_anything(azure: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.yaml").write_text(SECRET_YAML.split("  storage-connection-string")[0])
    subprocess.run(["kubectl", "-n", "falco", "delete", "secret", SECRET], check=True, capture_output=True)
    _operator_applies(tmp_path / "secret.yaml")
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    result = _script(out, "--execute")
    assert result.returncode == 1
    assert f"the Secret {SECRET} in namespace falco has no key storage-connection-string" in result.stderr
    applied = CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"])
    assert applied.exit_code == 1 and "has no key storage-connection-string" in applied.output
    assert _calls(tmp_path, "create") == []


def test_a_refused_read_is_not_a_missing_hub(azure: Path, tmp_path: Path) -> None:
    (azure / "refuse").touch()
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    result = _script(out, "--execute")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "az eventhubs eventhub list" in result.stderr and "nothing more was changed" in result.stderr
    assert _calls(tmp_path, "create") == []


def test_changes_are_shown_as_they_run(azure: Path, tmp_path: Path) -> None:
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    result = _script(out, "--execute")
    assert result.returncode == 0, result.stderr
    for line in (
        "+ az eventhubs eventhub create",
        "+ az storage container create",
        "+ az monitor diagnostic-settings create",
    ):
        assert line in result.stdout


def test_a_hub_named_in_other_case_is_the_same_hub(azure: Path, tmp_path: Path) -> None:
    (azure / "state.json").write_text(json.dumps({"hubs": ["AKS-Audit"], "containers": [], "settings": {}}))
    planned = CliRunner().invoke(app, ["plan", str(EXAMPLE)])
    assert (
        "  unchanged  cloud setting aks rg-prod/prod-aks: event hub acme-audit-hubs/aks-audit"
        in planned.stdout
    )
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    assert _script(out, "--execute").returncode == 0
    assert not [c for c in _calls(tmp_path, "create") if " eventhub " in c]


def test_a_dry_run_changes_nothing(azure: Path, tmp_path: Path) -> None:
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    result = _script(out)
    assert result.returncode == 0, result.stderr
    assert _calls(tmp_path) == [] and not (azure / "state.json").exists()
    assert "+ az monitor diagnostic-settings create --name falco-audit" in result.stdout


def test_plan_apply_then_an_empty_plan(azure: Path, tmp_path: Path) -> None:
    planned = CliRunner().invoke(app, ["plan", str(EXAMPLE)])
    assert planned.exit_code == 1, planned.output
    setting = "aks rg-prod/prod-aks: diagnostic setting falco-audit"
    assert f"    changed    {setting}: rendered kube-audit to aks-audit via {RULE}, live absent" in (
        planned.stdout.splitlines()
    ), planned.stdout
    applied = CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--verify-timeout", "2"])
    assert applied.exit_code == 0, applied.output
    _wired(azure)
    again = CliRunner().invoke(app, ["plan", str(EXAMPLE)])
    assert again.exit_code == 0, again.output  # ARM's lowercased resource group reads as the same id
    assert CliRunner().invoke(app, ["diff", str(EXAMPLE), "--live"]).exit_code == 0


def test_a_setting_sending_elsewhere_is_replaced(azure: Path, tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"]).exit_code == 0
    state = _state(azure)
    state["settings"]["falco-audit"]["logs"] = [{"category": "kube-apiserver", "enabled": True}]
    (azure / "state.json").write_text(json.dumps(state))
    live = CliRunner().invoke(app, ["diff", str(EXAMPLE), "--live"])
    assert live.exit_code == 1 and "live kube-apiserver to aks-audit" in live.stdout, live.stdout
    assert CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"]).exit_code == 0
    _wired(azure)
    assert len(_calls(tmp_path, "create")) == 4  # hub, container, setting, then the setting again


AKS = {
    "subscription": SUBSCRIPTION,
    "resourceGroup": "rg-prod",
    "cluster": "prod-aks",
    "eventHub": {
        "namespace": "acme-audit-hubs",
        "name": "aks-audit",
        "connectionSecret": {"name": "s", "key": "k"},
    },
    "checkpoint": {
        "storageAccount": "acct123",
        "container": "cps",
        "connectionSecret": {"name": "s", "key": "b"},
    },
}


@pytest.mark.parametrize(
    ("aks", "spec", "field", "message"),
    [
        ({**AKS, "subscription": "prod"}, {}, "spec.platform.aks.subscription", "an Azure subscription id"),
        (
            {**AKS, "checkpoint": {**AKS["checkpoint"], "container": "Falco"}},
            {},
            "spec.platform.aks.checkpoint.container",
            "a Blob container name",
        ),
        (
            {**AKS, "eventHub": {**AKS["eventHub"], "namespace": "hub"}},
            {},
            "spec.platform.aks.eventHub.namespace",
            "an Event Hubs namespace name",
        ),
        (AKS, {"falco": {"version": "0.41"}}, "spec.falco.version", "AKS needs Falco 0.42 or later"),
        (
            AKS,
            {"falco": {"values": {"extra": {"env": [{"name": "A", "value": "b"}]}}}},
            "spec.falco.values.extra.env",
            "auditc writes extra.env",
        ),
    ],
)
def test_spec_errors_point_at_the_field(
    tmp_path: Path, aks: dict[str, Any], spec: dict[str, Any], field: str, message: str
) -> None:
    path = write_spec(tmp_path, {"platform": {"type": "aks", "kubeadm": None, "aks": aks}, **spec})
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0
