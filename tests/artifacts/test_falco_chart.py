"""helm/falco-values.yaml through `helm template` of the real chart it is pinned to, for one
Falco release per chart range (0.17.1 .. 0.44.1), for pairings the chart was not made for,
and for every example spec; each rendering passes kubernetes-validate --strict and the
rendered objects are checked for a working audit pipeline (tests/falco_chart.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from compiler import falco_matrix
from compiler.api import CompiledSite, compile_site
from compiler.artifacts.falco_values import (
    IDENTITY_ANNOTATION,
    deep_merge,
    pod_selector,
    receiver_service_name,
)
from compiler.pipeline import compile_spec
from compiler.probe import FIELDS, PROBE_FILE, shown_at
from compiler.versions import Version
from tests import falco_chart as fc
from tests.sites import example_specs, spec_data, write_spec, write_tree
from tests.tools import yaml12

yaml = yaml12
RULES_FILE = "- macro: lab_users\n  condition: ka.user.name in (lab-admin)\n"
RULES = {
    "custom": ["rules/lab.yaml"],
    "lists": {"allowed_k8s_users": ["ci-bot"]},
    "disable": ["Create NodePort Service"],
}
PLUGINS_DIR = "/usr/share/falco/plugins"  # where Falco's library_path names resolve
EXACT = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+$")  # the chart may add full OCI references


# chart 1.0.x works only with dynamic auditing (its own AuditSink dials a pinned clusterIP)
DYNAMIC = {
    "kubernetes": {"version": "1.16.0"},
    "audit": {"dynamic": True, "webhook": {"enabled": False}},
    "falco": {"receiver": {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.50"}}},
}


def _matrix_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every row of the matrix: its newest Falco release on its default chart."""
    cases = []
    for release in falco_matrix.releases():
        assert str(release.chart) in fc.packaged_charts(), f"chart {release.chart} is not in tests/data"
        spec = DYNAMIC if release.chart == Version.parse("1.0.12") else {}
        cases.append((f"{release.newest}", deep_merge(spec, {"falco": {"version": str(release.newest)}})))
    return cases


MATRIX = _matrix_cases()
TLS = {"tls": {"enabled": True, "existingSecret": "receiver-tls"}}
PINNED = {"address": None, "service": {"type": "ClusterIP", "clusterIP": "10.96.0.9"}}
PAIRINGS = [
    # rules_file on a chart whose falco.yaml has rules_files, and the other way round
    ("0.37.1-on-9.1.0", {"falco": {"version": "0.37.1", "chart": {"version": "9.1.0"}}}),
    ("0.38.2-on-4.3.1", {"falco": {"version": "0.38.2", "chart": {"version": "4.3.1"}}}),
    ("0.36.2-on-4.8.3", {"falco": {"version": "0.36.2", "chart": {"version": "4.8.3"}}}),  # bundled plugin
    ("0.44.1-syscalls", {"falco": {"version": "0.44.1", "syscalls": True}}),
    ("0.36.2-syscalls", {"falco": {"version": "0.36.2", "syscalls": True}}),
    ("0.33.1-syscalls", {"falco": {"version": "0.33.1", "syscalls": True}}),
    ("0.44.1-follow", {"falco": {"version": "0.44.1", "rules": {"follow": True}}}),
    ("0.31.1-tls", {"falco": {"version": "0.31.1", "receiver": TLS}}),
    ("0.23.0-dynamic", deep_merge(DYNAMIC, {"falco": {"version": "0.23.0"}})),
    ("0.44.1-tls-clusterip", {"falco": {"version": "0.44.1", "receiver": {**TLS, **PINNED}}}),
]


def test_every_row_and_chart_range_has_a_case() -> None:
    assert len(MATRIX) == len(falco_matrix.releases())
    ranges = {(r.low, r.high) for r in falco_matrix.chart_ranges() if r.shape}
    covered = set()
    for _, spec in MATRIX:
        row = falco_matrix.release_for(Version.parse(spec["falco"]["version"]))
        assert row is not None
        where = falco_matrix.chart_range(row.chart)
        assert where is not None
        covered.add((where.low, where.high))
    assert covered == ranges
    assert {s["falco"]["version"] for _, s in MATRIX} >= {"0.17.1", "0.44.1"}


def _site(tmp_path: Path, case: dict[str, Any]) -> CompiledSite:
    base = {"kubernetes": {"version": "1.30", "serviceCIDR": "10.96.0.0/12"}, "falco": {"rules": RULES}}
    spec = deep_merge(base, case)
    labels = {"labels": {"env": "lab"}}
    path = write_spec(tmp_path, spec, files={"rules/lab.yaml": RULES_FILE}, metadata=labels)
    return compile_site(path)


@pytest.mark.parametrize(("case", "spec"), MATRIX + PAIRINGS, ids=[c for c, _ in MATRIX + PAIRINGS])
def test_matrix_release_runs_on_its_chart(case: str, spec: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    _check_pipeline(_site(tmp_path / "spec", spec), tmp_path)


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_example_runs_on_its_chart(spec: Path, tmp_path: Path) -> None:
    _check_pipeline(compile_site(spec), tmp_path)


def _check_pipeline(site: CompiledSite, tmp_path: Path) -> None:
    root = write_tree(site, tmp_path / "out")
    manifest = json.loads((root / "MANIFEST.json").read_text())
    chart = manifest["falco"]["chart"]["version"]
    falco_version = Version.parse(manifest["falco"]["version"])
    spec = spec_data(site.spec)["spec"]
    site_labels = spec_data(site.spec)["metadata"].get("labels", {})
    falco_spec = spec.get("falco") or {}
    namespace = falco_spec.get("namespace", "falco")
    kube = fc.kube_version(spec["kubernetes"]["version"])

    text = fc.helm_template(
        chart, root / "helm/falco-values.yaml", release="falco", namespace=namespace, kube=kube, home=tmp_path
    )
    # AuditSink (auditregistration.k8s.io/v1alpha1, Kubernetes 1.13 .. 1.18) has no schema in
    # kubernetes-validate (1.25 on); its URL is checked below
    objects = fc.documents(text)
    fc.validate_strict([doc for doc in objects if doc["kind"] != "AuditSink"], spec["kubernetes"]["version"])

    extra = [
        doc
        for path in sorted((root / "cluster").glob("*.yaml"))
        if path.name not in ("kustomization.yaml", "falco-release.yaml")
        for doc in yaml.load_all(path.read_text())
        if doc
    ]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    assert len(workloads) == 1, [w["metadata"]["name"] for w in workloads]
    rendered = fc.render(objects, workloads[0]["metadata"]["name"], extra)
    falco = rendered.falco_yaml
    container = rendered.falco_container

    # the image runs the Falco the values were written for
    assert container["image"].endswith(f":{falco_version}"), container["image"]

    pod_labels = rendered.pod["metadata"]["labels"]
    resolved = compile_spec(site.spec).built.resolved
    if resolved.pull is None:
        _check_receiver(site, root, objects, rendered, falco)
    else:
        _check_pull(resolved, root, rendered, falco)

    # every rules file Falco lists is in the pod, the k8s audit rules first of all
    listed = fc.rules_list(falco, falco_version)
    audit_rules = "/etc/falco/k8s_audit_rules.yaml"
    assert audit_rules in listed
    sources = {entry: fc.provided(rendered, entry) for entry in listed}
    custom = (falco_spec.get("rules") or {}).get("custom") or []
    overrides = bool(
        (falco_spec.get("rules") or {}).get("lists") or (falco_spec.get("rules") or {}).get("disable")
    )
    probe_on = falco_spec.get("probe", True)
    for entry, source in sources.items():
        if entry == "/etc/falco/rules.d" and not (custom or overrides or probe_on):
            continue
        assert source is not None, f"Falco lists {entry} but nothing puts it in the pod"
    if "/etc/falco/rules.d" in listed:
        assert listed.index(audit_rules) < listed.index("/etc/falco/rules.d"), "overrides load after the base"
    source = sources[audit_rules]
    assert source is not None
    base = fc.base_rules(rendered, source)

    # custom rules and overrides in the syntax of this Falco, against rules it really loads
    rules_data = rendered.configmap(f"{rendered.fullname}-rules") or {}
    for name in custom:
        stem = Path(name).name
        assert stem in rules_data, f"custom rules file {stem} is not in the rules ConfigMap"
    # auditc's probe rule (auditc verify): loaded from rules.d, after the k8s audit rules, in
    # the words of this Falco: the source, fields and operator its own k8s audit rules use
    if probe_on:
        assert "/etc/falco/rules.d" in listed
        (probe,) = yaml.load(rules_data[PROBE_FILE])
        base_entries = [e for e in yaml.load(base) if isinstance(e, dict)]
        assert probe["source"] in {e.get("source") for e in base_entries if "rule" in e}
        assert set(FIELDS) <= set(re.findall(r"\bka\.[a-z.]+[a-z]", base)), "a field this Falco lacks"
        assert " startswith " in base
        assert probe["priority"] in {e.get("priority") for e in base_entries if "rule" in e}
        assert shown_at(str(falco.get("priority", "debug"))), "Falco's priority drops the probe alert"
    else:
        assert PROBE_FILE not in rules_data
    rules_spec = falco_spec.get("rules") or {}
    lists, disabled = rules_spec.get("lists") or {}, rules_spec.get("disable") or []
    entries = yaml.load(rules_data.get("zz-auditc-overrides.yaml", "[]")) or []
    for name in lists:
        assert name in fc.named(base, "list"), f"list {name} is not in the rules this Falco loads"
    for name in disabled:
        assert name in fc.named(base, "rule"), f"rule {name} is not in the rules this Falco loads"
    appended = {e["list"]: e for e in entries if "list" in e}
    assert set(appended) == set(lists)
    rules_off = {e["rule"]: e for e in entries if "rule" in e}
    args = container.get("args") or []
    if falco_version >= Version.parse("0.37.0"):
        assert all(e["override"] == {"items": "append"} and "append" not in e for e in appended.values())
        assert all(e["override"] == {"enabled": "replace"} for e in rules_off.values())
        assert set(rules_off) == set(disabled)
    elif falco_version >= Version.parse("0.31.0"):
        assert all(e.get("append") is True and "override" not in e for e in appended.values())
        assert all(set(e) == {"rule", "enabled"} and e["enabled"] is False for e in rules_off.values())
        assert set(rules_off) == set(disabled)
    else:
        assert all(e.get("append") is True and "override" not in e for e in appended.values())
        assert rules_off == {}, "Falco < 0.31 refuses an `enabled`-only rule"
        pairs = {args[i + 1] for i in range(len(args) - 1) if args[i] == "-D"}
        assert pairs == set(disabled)

    # falcoctl installs exact versions and follows nothing unless the spec asks
    config = rendered.falcoctl
    followers = [c for c in rendered.pod["spec"]["containers"] if c["name"] == "falcoctl-artifact-follow"]
    follow = bool(rules_spec.get("follow"))
    if config is not None:
        refs = config["artifact"]["install"]["refs"]
        assert refs and all(EXACT.match(ref) for ref in refs), refs
        if follow:
            assert followers and config["artifact"]["follow"]["refs"]
            assert all(
                r.startswith(("k8saudit-rules:", "falco-rules:"))
                for r in config["artifact"]["follow"]["refs"]
            )
        else:
            assert not followers, "falcoctl follows artifacts nobody asked it to"
        if falco_version >= Version.parse("0.37.0"):  # images without plugins: falcoctl brings it
            plugin = "k8saudit" if resolved.pull is None else resolved.pull.plugin
            assert any(ref.startswith(f"{plugin}:") for ref in refs)
    else:
        assert not follow
        assert falco_version < Version.parse("0.37.0"), "no falcoctl and no plugin in the image"

    # every plugin Falco loads is in the pod: the image's own, or installed by falcoctl
    loaded = falco.get("load_plugins") or []
    plugins_dir = [m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == PLUGINS_DIR]
    if loaded and plugins_dir:  # falcoctl's emptyDir, which hides whatever the image has there
        assert config is not None
        install = config["artifact"]["install"]
        (init,) = [
            c for c in rendered.pod["spec"]["initContainers"] if c["name"] == "falcoctl-artifact-install"
        ]
        (target,) = [m for m in init["volumeMounts"] if m["name"] == plugins_dir[0]["name"]]
        assert install["pluginsDir"] == target["mountPath"], "falcoctl writes plugins where Falco reads them"
        for name in loaded:
            # a short name from falcoctl's index, or a full OCI reference the chart adds itself
            by_ref = any(ref.rsplit("/", 1)[-1].partition(":")[0] == name for ref in install["refs"])
            assert by_ref or (name == "json" and install.get("resolveDeps")), f"nothing installs {name}"
    elif loaded:
        assert falco_version < Version.parse("0.37.0"), "Falco >= 0.37 images ship no plugins"

    # one receiver, not a stream split across pods (logfile: one per node, _check_pull)
    receiver = resolved.pull is None
    if receiver and "k8saudit" in (falco.get("load_plugins") or []) and not falco_spec.get("syscalls"):
        assert rendered.workload["kind"] == "Deployment"
        assert rendered.workload["spec"]["replicas"] == 1

    # every k8s audit alert names its site (falco.yaml append_output, Falco 0.39 and later)
    if falco_version >= Version.parse("0.39.0"):
        site_name = spec_data(site.spec)["metadata"]["name"]
        stamps = [e for e in falco.get("append_output") or [] if e.get("match") == {"source": "k8s_audit"}]
        assert [s["extra_output"] for s in stamps] == [f"site={site_name}"]
        assert {"auditc.site": site_name} in stamps[0]["extra_fields"]
        default = yaml12.load(fc.chart_file(chart, "values.yaml"))["falco"].get("append_output") or []
        assert falco["append_output"][: len(default)] == default, "the chart's own default stays, as it is"
        assert falco["append_output"][len(default) :] == stamps, "and nothing more"
    else:  # no such setting in that Falco (a newer chart's default may still list one)
        assert not [e for e in falco.get("append_output") or [] if "extra_output" in e]

    # the plan waits for exactly the workload helm renders
    plan = yaml.load((root / "plan/plan.yaml").read_text())
    (wait,) = [s for s in plan["spec"]["steps"] if s["action"] == "wait-for-falco"]
    kind, name = wait["command"][5].split("/")
    assert (kind, name) == (rendered.workload["kind"].lower(), rendered.workload["metadata"]["name"])
    assert wait["command"][2] == namespace

    # the site's labels reach the chart's pods and workload where the chart has values for them
    keys = falco_matrix.chart_keys(_keys_file(chart))
    wanted = {**site_labels, "app.kubernetes.io/managed-by": "auditc"}
    if "podLabels.*" in keys:
        assert wanted.items() <= pod_labels.items()
    elif "daemonset.podAnnotations.*" in keys:
        assert wanted.items() <= rendered.pod["metadata"]["annotations"].items()
    if "controller.labels.*" in keys:
        assert site_labels.items() <= rendered.workload["metadata"]["labels"].items()


def _check_receiver(
    site: CompiledSite,
    root: Path,
    objects: list[dict[str, Any]],
    rendered: fc.Rendered,
    falco: dict[str, Any],
) -> None:
    """What the apiserver dials reaches the port and path Falco listens on."""
    scheme, port, path = fc.receiver_listens(falco)
    kubeconfig = root / "node/audit-webhook.kubeconfig"
    if kubeconfig.exists():
        server = yaml.load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    else:  # dynamic auditing: the AuditSink, auditc's (applied by the plan) or the chart's own
        own = root / "plan/audit-sink.yaml"
        sinks = [o for o in objects if o["kind"] == "AuditSink"]
        sinks += [yaml.load(own.read_text())] if own.exists() else []
        (sink,) = sinks
        server = sink["spec"]["webhook"]["clientConfig"]["url"]
    dial = fc.urlsplit(server)
    assert dial.port is not None and dial.hostname is not None
    service, target = fc.service_to(rendered, dial.hostname, dial.port)
    # auditc verify reads the receiver's endpoints and pods through this Service by name
    assert service["metadata"]["name"] == receiver_service_name(compile_spec(site.spec).built.resolved)
    assert target == port, f"{service['metadata']['name']} forwards to {target}, Falco listens on {port}"
    assert (dial.scheme, dial.path) == (scheme, path)
    pod_labels = rendered.pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects the Falco pods"


def _check_pull(resolved: Any, root: Path, rendered: fc.Rendered, falco: dict[str, Any]) -> None:
    """A managed control plane: Falco loads the platform's plugin with what the spec names,
    the rules it loads accept that plugin, one pod reads the log, as the cloud identity."""
    pull = resolved.pull
    assert falco["load_plugins"] == [pull.plugin, "json"]
    (plugin,) = [p for p in falco["plugins"] if p["name"] == pull.plugin]
    assert plugin["library_path"] == pull.library and plugin["open_params"] == pull.open_params
    assert plugin["init_config"] == dict(pull.init_config)
    assert not rendered.services, "nothing dials Falco: no Service"
    # the k8s audit rules falcoctl installs name this plugin (or accept it as an alternative
    # to k8saudit) at a version at or below the pinned one
    base = (fc.RULES / f"k8s_audit_rules-{pull.rules}.yaml").read_text()
    (entries,) = fc.load_all_strict(base)
    (required,) = [e["required_plugin_versions"] for e in entries if "required_plugin_versions" in e]
    accepted = {r["name"]: r["version"] for r in required}
    for entry in required:
        accepted |= {a["name"]: a["version"] for a in entry.get("alternatives") or []}
    pinned = Version.parse(pull.artifact.partition(":")[2])
    assert pull.plugin in accepted and Version.parse(accepted[pull.plugin]) <= pinned
    assert Version.parse(accepted["json"]) <= Version.parse(pull.json)
    # the pod runs as auditc's ServiceAccount, which carries the identity
    account = rendered.pod["spec"].get("serviceAccountName")
    (own,) = [
        doc
        for doc in yaml.load_all((root / "cluster/rbac.yaml").read_text())
        if doc and doc["kind"] == "ServiceAccount"
    ]
    assert account == own["metadata"]["name"]
    assert (own["metadata"].get("annotations") or {}) == dict(pull.service_account_annotations)
    # the pods name that identity (a new one restarts them: they keep the credentials they
    # started with), and apply/verify find them by the labels pod_selector gives
    annotations = rendered.pod["metadata"].get("annotations") or {}
    assert annotations.get(IDENTITY_ANNOTATION) == pull.identity
    labels = rendered.pod["metadata"].get("labels") or {}
    wanted = dict(pair.split("=", 1) for pair in pod_selector(resolved).split(","))
    assert wanted.items() <= labels.items()
    if pull.host_log_dir is None:  # the cloud's log: one pod reads it
        assert rendered.workload["kind"] == "Deployment" and rendered.workload["spec"]["replicas"] == 1
    else:  # falco.receiver.mode logfile: a pod on every control-plane node, the log's directory mounted
        assert rendered.workload["kind"] == "DaemonSet"
        (container,) = [c for c in rendered.pod["spec"]["containers"] if c["name"] == "falco"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[pull.host_log_dir].get("readOnly") is True
        volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
        assert volumes[mounts[pull.host_log_dir]["name"]]["hostPath"]["path"] == pull.host_log_dir
        assert pull.open_params == f"file://{resolved.paths.log_path}"
        assert pull.open_params.removeprefix("file://").startswith(pull.host_log_dir + "/")
        terms = rendered.pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        (expression,) = terms["nodeSelectorTerms"][0]["matchExpressions"]
        assert expression == {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
        taints = {t["key"] for t in rendered.pod["spec"]["tolerations"]}
        assert "node-role.kubernetes.io/control-plane" in taints
    # connection strings reach the Falco container from the spec's Secrets, by the names
    # init_config expands (${NAME}); never as values
    (container,) = [c for c in rendered.pod["spec"]["containers"] if c["name"] == "falco"]
    env = {e["name"]: e for e in container.get("env") or []}
    for name, (secret, key) in pull.secret_env.items():
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": key}}
        assert "value" not in env[name]
        assert f"${{{name}}}" in plugin["init_config"].values()


def _keys_file(chart: str) -> str:
    version = Version.parse(chart)
    where = falco_matrix.chart_range(version)
    assert where is not None
    return falco_matrix.keys_file(version, where)
