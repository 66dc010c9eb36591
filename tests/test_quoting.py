"""A spec can never inject a command: every string either fails validation or reaches the
scripts as one quoted word, and the scripts treat it as data when they run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import __version__
from compiler.api import compile_site
from compiler.errors import UserError
from compiler.templates import render_template, shq
from tests import fuzz
from tests.sites import write_spec
from tests.tools import shellcheck, yaml12

HOSTILE = [
    "x'; touch PWNED; '",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a;touch PWNED",
    "a && touch PWNED",
    'a" ; touch PWNED ; "',
    "a\\'$(touch PWNED)",
    "$IFS$(touch${IFS}PWNED)",
    "/etc/$(touch PWNED)",
    "a\ntouch PWNED",
]

yaml = yaml12


def _spec(tmp: Path, host: str, user: str = "root", config_dir: str = "/etc/kubernetes/audit") -> Path:
    kubeadm = {"controlPlanes": [{"host": host, "user": user}], "configDir": config_dir}
    return write_spec(tmp, {"platform": {"kubeadm": kubeadm}, "falco": {"receiver": {"address": host}}})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_rejected_by_validation(value: str, tmp_path: Path) -> None:
    for spec in (
        _spec(tmp_path, value),
        _spec(tmp_path, "10.0.0.1", user=value),
        _spec(tmp_path, "10.0.0.1", config_dir="/etc/" + value),
    ):
        with pytest.raises(UserError):
            compile_site(spec)


FIELDS = ("host", "user", "configDir", "manifestPath", "logPath", "address")
SHELLISH = st.text(
    alphabet=st.sampled_from(list("abz019.-_/:@ ;&|$`'\"\\(){}<>*?!#~\n\t")), min_size=1, max_size=30
)


def _spec_with(tmp: Path, field: str, value: str) -> Path:
    spec: dict[str, Any]
    if field in ("host", "user"):
        spec = {"platform": {"kubeadm": {"controlPlanes": [{"host": "10.0.0.1", field: value}]}}}
    elif field in ("configDir", "manifestPath"):
        spec = {"platform": {"kubeadm": {field: value}}}
    elif field == "logPath":
        spec = {"audit": {"log": {"path": value}}}
    else:
        spec = {"falco": {"receiver": {"address": value}}}
    return write_spec(tmp, spec)


@pytest.mark.corpus
@settings(
    max_examples=fuzz.examples(30, 160),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(field=st.sampled_from(FIELDS), value=st.one_of(SHELLISH, st.text(min_size=1, max_size=30)))
def test_any_string_is_rejected_or_stays_data(field: str, value: str, tmp_path: Path) -> None:
    """Whatever a spec says, it is rejected, or the scripts it lands in are clean and run
    (dry run) without executing any part of it."""
    _rejected_or_data(field, value, tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "cp-1.example.com"),
        ("user", "ops_admin"),
        ("configDir", "/opt/audit-config"),
        ("manifestPath", "/etc/kubernetes/manifests/kube-apiserver.yaml"),
        ("logPath", "/var/log/k8s_audit/audit.log"),
        ("address", "fd00::10"),
    ],
)
def test_the_accepting_path_of_that_property_is_exercised(field: str, value: str, tmp_path: Path) -> None:
    assert _rejected_or_data(field, value, tmp_path) == "accepted"


def _rejected_or_data(field: str, value: str, tmp_path: Path) -> str:
    try:
        site = compile_site(_spec_with(tmp_path, field, value))
    except UserError:
        return "rejected"
    out = tmp_path / "out"
    for artifact in site.artifacts:
        target = out / artifact.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifact.content)
    scripts = [out / "plan/apply.sh", out / "node/apiserver-config.patch.sh"]
    shellcheck(scripts, "--severity=warning")
    root = tmp_path / "root"
    manifest = root / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(
        (Path(__file__).parent / "data/kube-apiserver-manifests/1.30.14-kubeadm.yaml").read_bytes()
    )
    for argv in (["bash", str(scripts[0])], ["sh", str(scripts[1]), "--root", str(root), "--dry-run"]):
        subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert not list(tmp_path.rglob("PWNED")) and not (Path.cwd() / "PWNED").exists()
    return "accepted"


def _shellcheck_all(scripts: list[Path]) -> None:
    """One shellcheck over every rendered variant (its start-up is most of its cost).
    SC2016 (info) says "this $(...) will not expand": exactly the point here."""
    lint = subprocess.run(
        ["shellcheck", "--norc", "--severity=warning", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


def _apply_sh_context(value: str) -> dict[str, object]:
    return {
        "patched_file": "manifest",
        "site": "q",
        "compiler_version": __version__,
        "files": ["apiserver-config.patch.sh", value],
        "hosts": [{"target": value, "copy_target": value, "port": value, "sudo": value}],
        "staging_dir": "/tmp",
        "engine": "none",
        "engine_name": "",
        "helm_install": ["upgrade", "--install", value, value, "--repo", value, "--version", value],
        "falco_namespace": value,
        "falco_workload": value,
        "falco_wait_timeout": 300,
        "bootstrap_file": value,
        "sync_path": value,
        "falco_after_nodes": False,
        "audit_sink_file": value,
    }


@pytest.mark.parametrize("platform", ["kubeadm", "k3s"])  # rke2: the same template, other words
def test_apply_sh_treats_hostile_values_as_data(platform: str, tmp_path: Path) -> None:
    """Even if a value got past validation, the script would only print it."""
    scripts = []
    for index, value in enumerate(HOSTILE):
        script = tmp_path / str(index) / "plan" / "apply.sh"
        script.parent.mkdir(parents=True)
        script.write_text(
            render_template(f"platforms/{platform}/templates/apply.sh.j2", _apply_sh_context(value))
        )
        scripts.append(script)
    _shellcheck_all(scripts)
    for script, value in zip(scripts, HOSTILE, strict=True):
        work = script.parent.parent
        result = subprocess.run(["bash", str(script)], cwd=work, capture_output=True, text=True, check=False)
        assert result.returncode == 0, (value, result.stderr)
        assert not list(work.rglob("PWNED*")), f"a command ran (touch PWNED, with any suffix): {value!r}"


def test_shq_round_trips_through_the_shell() -> None:
    for value in [*HOSTILE, "", "plain", "new\nline", "tab\there", "'", "''", "\\"]:
        out = subprocess.run(
            ["sh", "-c", f"printf %s {shq(value)}"], capture_output=True, text=True, check=True
        )
        assert out.stdout == value
    with pytest.raises(ValueError, match="NUL"):
        shq("a\0b")


def test_the_drop_in_node_script_treats_hostile_values_as_data(tmp_path: Path) -> None:
    """Every spec value the drop-in node script (k3s, RKE2) holds, and the drop-in it
    writes, is data (the site name, a DNS label, and the platform's own constants are what
    its comments name)."""
    scripts = []
    # five kinds (quote, $(), double quote, $IFS, newline): the script is long to check
    hostile = [HOSTILE[i] for i in (0, 1, 5, 7, 9)]
    for index, value in enumerate(hostile):
        context = {
            "product": "k3s",
            "config_env": "K3S_CONFIG_FILE",
            "service_field": "spec.platform.k3s.service",
            "ready_bin": "/usr/local/bin/k3s",
            "ready_args": [value, "get"],
            "pod_manifest": "/p/" + value,
            "pod_mark": value,
            "config_warnings": [[value, value]],
            "ready_on_path": value,
            "site": "q",
            "service": value,
            "compiler_version": __version__,
            "config_file": "/" + value,
            "drop_in": "/d/" + value,
            "drop_in_body": f"a: {value}\n{value}\nAUDITC_DROP_IN\n",
            "config_dir": "/c/" + value,
            "config_files": [value],
            "log_dir": "/l/" + value,
            "backup_dir": "/b/" + value,
            "wait_timeout": 5,
            "digest": value,
        }
        script = tmp_path / str(index) / "node.sh"
        script.parent.mkdir()
        script.write_text(render_template("nodepatch/drop-in.sh.j2", context))
        scripts.append(script)
    _shellcheck_all(scripts)
    for script, value in zip(scripts, hostile, strict=True):
        work = script.parent
        for args in (["--help"], ["--root", str(work), "--check-health"], ["--root", str(work)]):
            subprocess.run(["sh", str(script), *args], cwd=work, capture_output=True, text=True, timeout=30)
            assert not list(work.rglob("PWNED*")), value
