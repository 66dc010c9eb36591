"""A spec can never inject a command: every string either fails validation or reaches the
scripts as one quoted word, and the scripts treat it as data when they run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from compiler import __version__
from compiler.api import compile_site
from compiler.errors import UserError
from compiler.templates import render_template, shq

HOSTILE = [
    "x'; touch PWNED; '",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a;touch PWNED",
    "a && touch PWNED",
    'a" ; touch PWNED ; "',
    "a\\'$(touch PWNED)",
    "$IFS$(touch${IFS}PWNED)",
]

yaml = YAML(typ="safe", pure=True)


def _spec(tmp: Path, host: str, user: str = "root", config_dir: str = "/etc/kubernetes/audit") -> Path:
    data = {
        "apiVersion": "auditc.dev/v1alpha1",
        "kind": "Site",
        "metadata": {"name": "q"},
        "spec": {
            "kubernetes": {"version": "1.30"},
            "platform": {
                "type": "kubeadm",
                "kubeadm": {"controlPlanes": [{"host": host, "user": user}], "configDir": config_dir},
            },
            "falco": {"receiver": {"address": host}},
        },
    }
    path = tmp / "site.yaml"
    with path.open("w") as handle:
        yaml.dump(data, handle)
    return path


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_rejected_by_validation(value: str, tmp_path: Path) -> None:
    for spec in (
        _spec(tmp_path, value),
        _spec(tmp_path, "10.0.0.1", user=value),
        _spec(tmp_path, "10.0.0.1", config_dir="/etc/" + value),
    ):
        with pytest.raises(UserError):
            compile_site(spec)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1, max_size=40))
def test_any_string_is_rejected_or_quoted(value: str, tmp_path: Path) -> None:
    try:
        site = compile_site(_spec(tmp_path, value))
    except UserError:
        return
    apply = next(a.content.decode() for a in site.artifacts if a.path == "plan/apply.sh")
    assert shq(f"root@{value}") in apply


@pytest.mark.parametrize("value", HOSTILE)
def test_apply_sh_treats_hostile_values_as_data(value: str, tmp_path: Path) -> None:
    """Even if a value got past validation, the script would only print it."""
    context = {
        "site": "q",
        "compiler_version": __version__,
        "files": ["apiserver-config.patch.sh", value],
        "hosts": [{"target": value, "port": value, "sudo": value}],
    }
    script = tmp_path / "plan" / "apply.sh"
    script.parent.mkdir()
    script.write_text(render_template("kubeadm/templates/apply.sh.j2", context))
    # SC2016 (info) says "this $(...) will not expand": exactly the point here
    lint = subprocess.run(
        ["shellcheck", "--norc", "--severity=warning", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "plan" / "PWNED").exists()


def test_shq_round_trips_through_the_shell() -> None:
    for value in [*HOSTILE, "", "plain", "new\nline", "tab\there", "'", "''", "\\"]:
        out = subprocess.run(
            ["sh", "-c", f"printf %s {shq(value)}"], capture_output=True, text=True, check=True
        )
        assert out.stdout == value
    with pytest.raises(ValueError, match="NUL"):
        shq("a\0b")
