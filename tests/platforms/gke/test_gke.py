"""GKE: a managed control plane. The example renders no node files and a plan whose own
steps are on the Google side; plan/apply.sh and auditc plan / apply / diff --live run
against a stand-in `gcloud` over a state directory (the documented command lines and
output shapes of `gcloud pubsub`, `gcloud logging sinks` and the IAM policy commands),
with the suite's stand-in kubectl and helm."""

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

EXAMPLE = ROOT / "specs" / "gke-prod.yaml"
PROJECT, GSA = "acme-prod-123", "falco-audit@acme-prod-123.iam.gserviceaccount.com"
TOPIC = SUBSCRIPTION = SINK = "falco-audit-prod-gke"
WRITER = "serviceAccount:service-123456789@gcp-sa-logging.iam.gserviceaccount.com"

# gcloud over $FAKE_GCLOUD/state.json: `pubsub topics|subscriptions list --filter=name=FULL
# --format=value(name|topic)` (nothing when absent), `create` (ALREADY_EXISTS, exit 1, when it
# is there), `logging sinks list --filter=name=N --format=json` (a JSON list; a sink gets a
# writerIdentity when created), `sinks create|update NAME DESTINATION --log-filter=F`,
# `get-iam-policy --format=json` (NOT_FOUND, exit 1, for a missing resource) and
# `add-iam-policy-binding --member=M --role=R` (the member must be TYPE:id, as gcloud
# checks); --project must be the example's. Every call is appended to $FAKE_LOG.
GCLOUD = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("gcloud " + " ".join(args) + "\n")
path = os.path.join(os.environ["FAKE_GCLOUD"], "state.json")
empty = {"topics": [], "subscriptions": {}, "sinks": {}, "iam": {}}
state = json.load(open(path)) if os.path.exists(path) else empty
if args[-2:] != ["--project", "acme-prod-123"]:
    print("ERROR: (gcloud) unexpected project", file=sys.stderr); sys.exit(2)
args = args[:-2]
def option(name):
    found = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return found[0] if found else None
def fail(text):
    print(f"ERROR: (gcloud.{'.'.join(args[:3])}) {text}", file=sys.stderr); sys.exit(1)
def save():
    json.dump(state, open(path, "w"))
PROJECT = "acme-prod-123"
prefix = f"projects/{PROJECT}/"
group, kind, verb = args[0], args[1], args[2]
if (group, kind) == ("pubsub", "topics") or (group, kind) == ("pubsub", "subscriptions"):
    names = state["topics"] if kind == "topics" else list(state["subscriptions"])
    if verb == "list":
        wanted = option("--filter").removeprefix("name=").removeprefix(prefix + kind + "/")
        field = option("--format")
        if wanted in names:
            print(prefix + kind + "/" + wanted if field == "value(name)" else state["subscriptions"][wanted])
        sys.exit(0)
    name = args[3]
    resource = f"{kind}/{name}"
    if verb == "create":
        if name in names:
            fail(f"ALREADY_EXISTS: Resource already exists in the project (resource={name}).")
        if kind == "topics":
            state["topics"].append(name)
        else:
            topic = option("--topic")
            if topic not in state["topics"]:
                fail(f"NOT_FOUND: Resource not found (resource={topic}).")
            state["subscriptions"][name] = prefix + "topics/" + topic
        save(); print(f"Created {kind[:-1]} [{prefix}{kind}/{name}]."); sys.exit(0)
    if name not in names:
        fail(f"NOT_FOUND: Resource not found (resource={name}).")
elif (group, kind) == ("iam", "service-accounts"):
    resource = f"serviceAccounts/{args[3]}"
elif (group, kind) == ("logging", "sinks"):
    if verb == "list":
        wanted = option("--filter").removeprefix("name=")
        print(json.dumps([{"name": n, **s} for n, s in state["sinks"].items() if n == wanted], indent=2))
        sys.exit(0)
    name, destination, log_filter = args[3], args[4], option("--log-filter")
    if verb == "create":
        if name in state["sinks"]:
            fail(f"ALREADY_EXISTS: sink {name} exists")
        writer = "serviceAccount:service-123456789@gcp-sa-logging.iam.gserviceaccount.com"
        state["sinks"][name] = {"destination": destination, "filter": log_filter, "writerIdentity": writer}
    else:
        if name not in state["sinks"]:
            fail(f"NOT_FOUND: sink {name}")
        state["sinks"][name] |= {"destination": destination, "filter": log_filter}
    save()
    print(f"Created [https://logging.googleapis.com/v2/projects/{PROJECT}/sinks/{name}].", file=sys.stderr)
    sys.exit(0)
else:
    sys.exit(2)
bindings = state["iam"].setdefault(resource, [])
if verb == "get-iam-policy":
    print(json.dumps({"bindings": bindings, "etag": "BwX", "version": 1} if bindings else {"etag": "ACAB"}))
elif verb == "add-iam-policy-binding":
    member, role = option("--member"), option("--role")
    if not member or ":" not in member or member.startswith("<"):
        print(f"ERROR: (gcloud) Invalid member: {member}", file=sys.stderr); sys.exit(2)
    entry = next((b for b in bindings if b["role"] == role), None)
    if entry is None:
        bindings.append({"role": role, "members": [member]})
    elif member not in entry["members"]:
        entry["members"].append(member)
    save(); print("Updated IAM policy")
else:
    sys.exit(2)
"""


@pytest.fixture
def google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in gcloud, kubectl and helm on PATH; the gcloud state directory."""
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    standins.python_program(bin_dir / "gcloud", GCLOUD)
    state = tmp_path / "gcloud"
    state.mkdir()
    (tmp_path / "cluster").mkdir()
    for name, value in {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLUSTER": str(tmp_path / "cluster"),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_REAL_KUBECTL": real_kubectl,
        "FAKE_GCLOUD": str(state),
        "AUDITC_STATE_DIR": str(tmp_path / "state"),
        "AUDITC_POLL_INTERVAL": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    return state


def _state(google: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((google / "state.json").read_text())
    return loaded


def _calls(tmp_path: Path, verb: str) -> list[str]:
    log = tmp_path / "log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("gcloud ") and f" {verb} " in f" {line} "]


def _wired(google: Path) -> None:
    """Everything the site needs is there: a second run must change nothing."""
    state = _state(google)
    assert state["topics"] == [TOPIC]
    assert state["subscriptions"] == {SUBSCRIPTION: f"projects/{PROJECT}/topics/{TOPIC}"}
    sink = state["sinks"][SINK]
    assert sink["destination"] == f"pubsub.googleapis.com/projects/{PROJECT}/topics/{TOPIC}"
    assert 'protoPayload.serviceName="k8s.io"' in sink["filter"]
    assert 'resource.labels.cluster_name="prod-gke"' in sink["filter"]
    iam = state["iam"]
    assert iam[f"topics/{TOPIC}"] == [{"role": "roles/pubsub.publisher", "members": [WRITER]}]
    assert iam[f"subscriptions/{SUBSCRIPTION}"] == [
        {"role": "roles/pubsub.subscriber", "members": [f"serviceAccount:{GSA}"]}
    ]
    assert iam[f"serviceAccounts/{GSA}"] == [
        {
            "role": "roles/iam.workloadIdentityUser",
            "members": [f"serviceAccount:{PROJECT}.svc.id.goog[falco/falco]"],
        }
    ]


def test_the_example_has_no_node_files_and_google_steps_first() -> None:
    site = compiled(EXAMPLE)
    assert not [a.path for a in site.artifacts if a.path.startswith("node/")]
    plan = yaml12.load(next(a.content for a in site.artifacts if a.path == "plan/plan.yaml").decode())
    actions = [step["action"] for step in plan["spec"]["steps"]]
    assert actions[-3:] == ["cluster-objects", "install-falco", "wait-for-falco"]
    assert (
        actions.index("create-sink") < actions.index("publisher-binding") < actions.index("cluster-objects")
    )
    assert plan["spec"]["auditLog"] == f"Pub/Sub subscription projects/{PROJECT}/subscriptions/{SUBSCRIPTION}"
    rbac = next(a.content for a in site.artifacts if a.path == "cluster/rbac.yaml").decode()
    assert f"iam.gke.io/gcp-service-account: {GSA}" in rbac


def test_apply_sh_sets_up_the_google_side_once(google: Path, tmp_path: Path) -> None:
    out = write_tree(compiled(EXAMPLE), tmp_path / "out")
    for _ in range(2):
        result = subprocess.run(
            ["bash", str(out / "plan/apply.sh"), "--execute"],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        _wired(google)
    assert len(_calls(tmp_path, "create")) == 3  # topic, subscription, sink: the first run only


def test_plan_apply_then_an_empty_plan(google: Path, tmp_path: Path) -> None:
    planned = CliRunner().invoke(app, ["plan", str(EXAMPLE)])
    assert planned.exit_code == 1, planned.output
    assert f"  update     cloud setting gke {PROJECT}/prod-gke: Pub/Sub topic {TOPIC}" in planned.stdout
    assert planned.stdout.splitlines()[-1] == "apply: the cloud side, then the cluster layer"
    applied = CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--verify-timeout", "2"])
    assert applied.exit_code == 0, applied.output
    _wired(google)
    # the publisher binding names the writer identity the sink got in this same apply
    (binding,) = [c for c in _calls(tmp_path, "add-iam-policy-binding") if " topics " in c]
    assert f"--member={WRITER}" in binding
    again = CliRunner().invoke(app, ["plan", str(EXAMPLE)])
    assert again.exit_code == 0, again.output
    live = CliRunner().invoke(app, ["diff", str(EXAMPLE), "--live"])
    assert live.exit_code == 0, live.output


def test_a_sink_routed_elsewhere_is_updated(google: Path, tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"]).exit_code == 0
    state = _state(google)
    state["sinks"][SINK]["filter"] = 'protoPayload.serviceName="k8s.io"'  # all clusters, edited by hand
    (google / "state.json").write_text(json.dumps(state))
    live = CliRunner().invoke(app, ["diff", str(EXAMPLE), "--live"])
    assert live.exit_code == 1 and f"log sink {SINK}" in live.stdout
    assert CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"]).exit_code == 0
    _wired(google)
    assert len(_calls(tmp_path, "update")) == 1


def test_a_subscription_on_another_topic_stops_before_anything(google: Path, tmp_path: Path) -> None:
    state = {
        "topics": [TOPIC, "other"],
        "subscriptions": {SUBSCRIPTION: f"projects/{PROJECT}/topics/other"},
        "sinks": {},
        "iam": {},
    }
    (google / "state.json").write_text(json.dumps(state))
    result = CliRunner().invoke(app, ["apply", str(EXAMPLE), "--yes", "--no-verify"])
    assert result.exit_code == 1
    assert "auditc cannot change that, fix it by hand; nothing was touched" in result.stdout
    assert _calls(tmp_path, "create") == []
    assert not (tmp_path / "cluster/objects/namespace.-.falco.json").exists()  # Falco not installed


@pytest.mark.parametrize(
    ("gke", "field", "message"),
    [
        (
            {"project": "X", "cluster": "c", "location": "europe-west1", "serviceAccount": GSA},
            "spec.platform.gke.project",
            "a Google Cloud project ID",
        ),
        (
            {"project": PROJECT, "cluster": "Prod", "location": "europe-west1", "serviceAccount": GSA},
            "spec.platform.gke.cluster",
            "a GKE cluster name",
        ),
        (
            {"project": PROJECT, "cluster": "c", "location": "europe-west1", "serviceAccount": "falco"},
            "spec.platform.gke.serviceAccount",
            "a Google service account email",
        ),
        (
            {
                "project": PROJECT,
                "cluster": "c",
                "location": "europe-west1",
                "serviceAccount": GSA,
                "topic": "goog-audit",
            },
            "spec.platform.gke.topic",
            "a Pub/Sub name",
        ),
    ],
)
def test_spec_errors_point_at_the_field(
    tmp_path: Path, gke: dict[str, Any], field: str, message: str
) -> None:
    path = write_spec(tmp_path, {"platform": {"type": "gke", "kubeadm": None, "gke": gke}})
    with pytest.raises(UserError) as refusal:
        compile_site(path)
    found = [d for d in refusal.value.diagnostics if d.field == field]
    assert found and message in found[0].message, refusal.value.diagnostics
    assert found[0].location is not None and found[0].location.line > 0
