"""The real tools that consume each artifact accept it: kubectl kustomize,
kubernetes-validate --strict, shellcheck and bash itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from compiler.api import CompiledSite
from tests.sites import compiled, example_specs, kubeadm_specs, platform_of, spec_data, write_tree
from tests.tools import dump_all, load_all_strict, shellcheck, validate_strict, yaml12

# kinds kubernetes-validate has schemas for (built into Kubernetes); custom resources
# (Argo CD, Flux) and the long-removed AuditSink are checked by their own tests
BUILT_IN = {
    "Namespace",
    "ServiceAccount",
    "Service",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}
OLDEST_SCHEMA = (1, 25)  # kubernetes-validate ships schemas from 1.25 on


def _site(spec: Path, tmp_path: Path) -> tuple[CompiledSite, Path]:
    site = compiled(spec)
    return site, write_tree(site, tmp_path / site.name)


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_cluster_dir_builds_with_kubectl_kustomize(spec: Path, tmp_path: Path) -> None:
    _, root = _site(spec, tmp_path)
    result = _run("kubectl", "kustomize", root / "cluster")
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml12.load_all(result.stdout) if doc}
    assert {"Namespace", "ServiceAccount"} <= kinds


def _schema_version(site_version: str) -> str:
    parts = tuple(int(p) for p in site_version.split(".")[:2])
    major, minor = max(parts, OLDEST_SCHEMA)
    return f"{major}.{minor}.0"


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_built_in_objects_pass_kubernetes_validate_strict(spec: Path, tmp_path: Path) -> None:
    _, root = _site(spec, tmp_path)
    version = _schema_version(spec_data(spec)["spec"]["kubernetes"]["version"])
    checked = [
        doc
        for path in sorted((root / "cluster").glob("*.yaml"))
        for doc in load_all_strict(path.read_text())
        if doc.get("kind") in BUILT_IN
    ]
    validate_strict(checked, version)
    assert len(checked) >= 2


def test_kubernetes_validate_refuses_what_the_api_server_would(tmp_path: Path) -> None:
    """The validator the tests call in-process is the one its command line runs: both refuse
    an unknown field (--strict) and a wrong type, and both pass the corrected object."""
    good = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "falco", "namespace": "falco"},
    }
    for bad in ({**good, "spec": {}}, {**good, "metadata": {"name": 1}}):
        single = tmp_path / "bad.yaml"
        single.write_text(dump_all([bad]))
        result = _run("kubernetes-validate", "--strict", "-k", "1.30.0", single)
        assert result.returncode != 0, result.stdout
        with pytest.raises(AssertionError, match="ServiceAccount"):
            validate_strict([bad], "1.30.0")
    single.write_text(dump_all([good]))
    assert _run("kubernetes-validate", "--strict", "-k", "1.30.0", single).returncode == 0
    validate_strict([good], "1.30.0")


@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: p.stem)
def test_scripts_pass_shellcheck(spec: Path, tmp_path: Path) -> None:
    site, root = _site(spec, tmp_path)
    scripts = [root / a.path for a in site.artifacts if a.executable]
    # minikube takes flags through --extra-config; the k3s and RKE2 node scripts write a drop-in
    patched = platform_of(spec) in ("kubeadm", "pks", "k3s", "rke2")
    expected = {"apply.sh", "apiserver-config.patch.sh"} if patched else {"apply.sh"}
    assert {s.name for s in scripts} == expected
    runtime_config = root / "plan/runtime-config.yaml"
    if runtime_config.exists():  # the pre-start script a BOSH runtime config carries
        (addon,) = yaml12.load(runtime_config.read_text())["addons"]
        pre_start = root / "plan/pre-start.sh"
        pre_start.write_text(addon["jobs"][0]["properties"]["script"])
        scripts.append(pre_start)
    shellcheck(scripts)  # a patch script body another spec shares is read once


@pytest.mark.parametrize("spec", kubeadm_specs(), ids=lambda p: p.stem)
def test_apply_sh_dry_run_lists_every_host_and_runs_nothing(spec: Path, tmp_path: Path) -> None:
    _, root = _site(spec, tmp_path)
    plan = yaml12.load((root / "plan/plan.yaml").read_text())
    result = _run("bash", root / "plan/apply.sh")
    assert result.returncode == 0, result.stderr
    for host in plan["spec"]["hosts"]:
        assert f"{host['user']}@{host['host']}" in result.stdout
    assert "dry run: nothing was changed" in result.stdout
    unknown = _run("bash", root / "plan/apply.sh", "--bogus")
    assert unknown.returncode == 2


def test_webhook_kubeconfig_is_read_by_kubectl(tmp_path: Path) -> None:
    """kubectl (client-go, like kube-apiserver's webhook client) resolves the current context."""
    checked = 0
    for spec in example_specs():
        _, root = _site(spec, tmp_path)
        kubeconfig = root / "node/audit-webhook.kubeconfig"
        if not kubeconfig.exists():
            continue  # a site without the webhook backend
        checked += 1
        result = _run(
            "kubectl",
            "--kubeconfig",
            kubeconfig,
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.current-context} {.clusters[0].cluster.server}",
        )
        assert result.returncode == 0, result.stderr
        context, server = result.stdout.split()
        assert context == "falco"
        assert server.startswith(("http://", "https://"))
    assert checked >= 2


# strings a YAML 1.1 reader takes for numbers, booleans, nulls or times when written plain
# (Go's drops every "_" of one that starts with a sign or digit, and knows 0X, 0B and 0O),
# and strings any reader takes as they are, the emitter's plain fast path among them
LOOKALIKES = [
    *["0X1F", "-0X1F", "0B1", "+0B1", "0O7", "0x_1F", "0b_1", "-_0x1", "+_1", "1__0", "1_", "-_.5"],
    *["012", "0o17", "1e3", "1E+3", "1.", ".5", "-.5", "+1", "1_000", "1:20", "2001-12-14", "2001-1-2"],
    *["y", "Y", "yes", "No", "on", "OFF", "true", "False", "~", "null", "NULL", ".inf", "-.Inf", ".NaN"],
    *["...", ".../a", "....", "..", "0x", "_1", "0X", "1.2.3", "a-1", "./b", "v1.30.2", "0.0.0.0"],
    *[".5_0e+1_0", ".5e1_0", ".5E+1_0", "0b+1", "0b-1", "0b+_1", "0o+7", "0b+101"],
]


@pytest.mark.parametrize("whole", [False, True], ids=["entry by entry", "whole"])
def test_strings_that_look_like_other_types_reach_kubectl_as_strings(tmp_path: Path, whole: bool) -> None:
    """Go's YAML reader (sigs.k8s.io/yaml, in kubectl and the API server) reads every string
    auditc writes as that string, through the memo's entry-by-entry path and the emitter's."""
    import json

    from compiler import emit

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": word, "cluster": {"server": "https://x"}} for word in LOOKALIKES],
        "contexts": [{"name": word, "context": {"cluster": word, "user": word}} for word in LOOKALIKES],
        "users": [{"name": word, "user": {"username": word}} for word in LOOKALIKES],
        "current-context": LOOKALIKES[0],
        "preferences": {},
    }
    emit._MEMO.clear()
    text = emit._emit(emit.canonical(config)) if whole else emit.yaml_bytes(config).decode()
    (tmp_path / "config").write_text(text)
    result = _run("kubectl", "--kubeconfig", tmp_path / "config", "config", "view", "-o", "json")
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert sorted(c["name"] for c in read["contexts"]) == sorted(LOOKALIKES)
    assert all(c["context"]["cluster"] == c["context"]["user"] == c["name"] for c in read["contexts"])
    assert sorted(u["user"]["username"] for u in read["users"]) == sorted(LOOKALIKES)
    assert read["current-context"] == LOOKALIKES[0]


MANIFESTS = sorted((Path(__file__).parent / "data" / "kube-apiserver-manifests").glob("*.yaml"))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("spec", kubeadm_specs(), ids=lambda p: p.stem)
def test_rendered_patch_script_on_real_manifests_agrees_with_kubeadm_config(
    spec: Path, manifest: Path, tmp_path: Path
) -> None:
    """The compiler's own node/ files, run as an operator would, give the flags and volumes
    that node/kubeadm-config.yaml describes; a second run changes nothing."""
    _, out = _site(spec, tmp_path)
    yaml = yaml12
    plan = yaml.load((out / "plan/plan.yaml").read_text())
    config = yaml.load((out / "node/kubeadm-config.yaml").read_text())["apiServer"]
    root = tmp_path / "root"
    target = root / "etc/kubernetes/manifests/kube-apiserver.yaml"
    target.parent.mkdir(parents=True)
    target.write_bytes(manifest.read_bytes())
    assert plan["spec"]["files"][0] == "node/apiserver-config.patch.sh"

    def patch() -> subprocess.CompletedProcess[str]:
        return _run("sh", out / "node/apiserver-config.patch.sh", "--root", root, "--no-wait")

    first = patch()
    assert first.returncode == 0, first.stderr
    blank = [line for line in target.read_text().splitlines() if not line.strip()]
    assert len(blank) == len([line for line in manifest.read_text().splitlines() if not line.strip()])
    pod = yaml.load(target.read_text())
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver"]
    flags = dict(arg[2:].split("=", 1) for arg in container["command"][1:])
    args = config["extraArgs"]
    wanted = {a["name"]: a["value"] for a in args} if isinstance(args, list) else args
    for name, value in wanted.items():
        if name in ("feature-gates", "runtime-config"):
            assert value in flags[name].split(","), name
        else:
            assert flags[name] == value, name
    assert sorted(n for n in flags if n.startswith("audit-")) == sorted(
        n for n in wanted if n.startswith("audit-")
    )
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for volume in config["extraVolumes"]:
        assert mounts[volume["name"]]["mountPath"] == volume["mountPath"]
        assert mounts[volume["name"]].get("readOnly", False) == volume["readOnly"]
        assert volumes[volume["name"]]["hostPath"]["path"] == volume["hostPath"]
    config_dir = next(v for v in config["extraVolumes"] if v["name"] == "auditc-config")["hostPath"]
    installed = root / config_dir.lstrip("/")
    for name in plan["spec"]["files"][1:]:
        assert (installed / name.removeprefix("node/")).read_bytes() == (out / name).read_bytes()

    before = target.read_bytes()
    second = patch()
    assert second.returncode == 0, second.stderr
    assert target.read_bytes() == before


def test_shellcheck_split_still_catches_a_value_that_breaks_its_context_line(tmp_path: Path) -> None:
    """tools.shellcheck reads a known script body only once; the context lines of every
    variant still go through shellcheck, so a value that escapes its quotes fails."""
    _, root = _site(kubeadm_specs()[0], tmp_path)
    script = root / "node/apiserver-config.patch.sh"
    text = script.read_bytes()
    shellcheck([script])  # the body is now known
    variant = tmp_path / "variant.sh"
    variant.write_bytes(text.replace(b"  ctx site '", b"  ctx site $(id)'x' '", 1))
    assert variant.read_bytes() != text
    with pytest.raises(AssertionError, match="SC2046"):
        shellcheck([variant])
