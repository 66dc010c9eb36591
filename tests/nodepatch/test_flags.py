"""compiler/nodepatch/flags.py, the Python reader of kube-apiserver's flags and mounts, and
its agreement with the awk patcher: what the patcher writes, the reader reads back as the
change wanted, and every flag the change does not own keeps its effective value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compiler.nodepatch.flags import (
    apiserver_args,
    apiserver_flags,
    apiserver_mounts,
    manifest_format,
    mount_of,
    normal_path,
    parse_flags,
)
from tests.nodepatch.helpers import DEFAULT_AWK, run_awk
from tests.nodepatch.test_awk import CASES, CASES_DIR, case_context, mode_of
from tests.nodepatch.test_patch_script import MANIFESTS, make_context
from tests.nodepatch.test_patch_script_bpm import PATCHED, bpm_context


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        (["--a=1", "--a=2"], {"a": "2"}),
        (["--a", "x", "--b=2"], {"a": "x", "b": "2"}),
        (["--a", "-", "--b", "-1", "--c", "--d"], {"a": "-", "b": "-1", "c": "", "d": ""}),
        (["--a", "-v=2"], {"a": ""}),
        (["--a=x=y", "positional", "-v=2"], {"a": "x=y"}),
        (["--a", "--a=2", "--a", "3"], {"a": "3"}),
    ],
)
def test_parse_flags(args: list[str], flags: dict[str, str]) -> None:
    assert parse_flags(args) == flags


def test_command_and_args_and_bpm() -> None:
    pod = (
        b"kind: Pod\nspec:\n  containers:\n  - name: side\n    command: [sh]\n"
        b"  - command: [/usr/local/bin/kube-apiserver, --a=1]\n    args: [--a, '2', --b=3]\n"
    )
    assert apiserver_args(pod) == ["--a=1", "--a", "2", "--b=3"]
    assert apiserver_flags(pod) == {"a": "2", "b": "3"}
    assert manifest_format(pod) == "static-pod"
    bpm = b"processes:\n- name: other\n  args: [--x=1]\n- name: kube-apiserver\n  args: [--y=2]\n"
    assert apiserver_flags(bpm) == {"y": "2"}
    assert manifest_format(bpm) == "bpm"
    assert apiserver_flags(b"{not: [yaml") is None
    assert apiserver_flags(b"kind: Pod\nspec: {containers: [{command: [etcd]}]}\n") is None


def test_mounts_and_adopted_mounts() -> None:
    pod = (
        b"kind: Pod\nspec:\n  containers:\n  - command: [kube-apiserver]\n    volumeMounts:\n"
        b"    - {name: audit-log, mountPath: /var/log//kubernetes/audit/}\n"
        b"    - {name: auditc-config, mountPath: /etc/kubernetes/audit, readOnly: true}\n"
        b"  volumes:\n  - {name: audit-log, hostPath: {path: /var/log/kubernetes/audit/}}\n"
        b"  - {name: auditc-config, hostPath: {path: /etc/kubernetes/audit}}\n"
    )
    mounts = apiserver_mounts(pod)
    assert [(m.name, m.mount_path, m.read_only, m.host_path) for m in mounts] == [
        ("audit-log", "/var/log/kubernetes/audit", False, "/var/log/kubernetes/audit"),
        ("auditc-config", "/etc/kubernetes/audit", True, "/etc/kubernetes/audit"),
    ]
    adopted = mount_of(mounts, "auditc-log", "/var/log/kubernetes/audit", "/var/log/kubernetes/audit", False)
    assert adopted is not None and adopted.name == "audit-log"
    assert mount_of(mounts, "auditc-log", "/srv/logs", "/var/log/kubernetes/audit", False) is None
    # a read-only hand-made mount serves a read-only volume of auditc's, never a written one
    # (the patcher refuses that manifest: tests/data/nodepatch/adopt-read-only-refused)
    config = ("auditc-config2", "/etc/kubernetes/audit", "/etc/kubernetes/audit")
    assert mount_of(mounts, *config, True) is not None
    assert mount_of(mounts, *config, False) is None
    assert normal_path("/a/./b//c/") == "/a/b/c"


# --- the awk patcher and this reader agree ---------------------------------------------------


def owned(name: str, context: dict[str, Any]) -> bool:
    return (
        any(name.startswith(p) for p in context["owned_prefixes"])
        or name in {f["name"] for f in context["flags"]}
        or name in {i["name"] for i in context["list_items"]}
    )


def check_agreement(before: bytes, after: bytes, context: dict[str, Any], mode: str) -> None:
    old, new = apiserver_flags(before), apiserver_flags(after)
    assert old is not None and new is not None
    wanted = {f["name"]: f["value"] for f in context["flags"]}
    assert {
        n: v
        for n, v in new.items()
        if owned(n, context) and n not in {i["name"] for i in context["list_items"]}
    } == wanted
    for item in context["list_items"]:
        assert item["item"] in new[item["name"]].split(","), item
    assert {n: v for n, v in new.items() if not owned(n, context)} == {
        n: v for n, v in old.items() if not owned(n, context)
    }, "a flag auditc does not own changed its effective value"
    if mode == "bpm":
        return
    mounts = apiserver_mounts(after)
    for volume in context["volumes"]:
        mount = mount_of(
            mounts, volume["name"], volume["host_path"], volume["mount_path"], bool(volume["read_only"])
        )
        assert mount is not None, volume["name"]
        assert mount.host_path == normal_path(volume["host_path"])
        assert mount.read_only == volume["read_only"] or volume["read_only"]


FEATURE_GATES = [{"name": "feature-gates", "item": "DynamicAuditing=true"}]
AGREEMENT = [
    *((f"manifest:{p.name}", "static-pod", p, make_context(list_items=FEATURE_GATES)) for p in MANIFESTS),
    *((f"bpm:{p.name}", "bpm", p, bpm_context(narrow=False, list_items=FEATURE_GATES)) for p in PATCHED),
    *(
        (f"case:{c}", mode_of(c), CASES_DIR / c / "input", case_context(c))
        for c in CASES
        if not (CASES_DIR / c / "refused").exists()
    ),
]


@pytest.mark.parametrize(
    ("mode", "path", "context"), [a[1:] for a in AGREEMENT], ids=[a[0] for a in AGREEMENT]
)
def test_awk_and_python_agree(tmp_path: Path, mode: str, path: Path, context: dict[str, Any]) -> None:
    before = path.read_bytes()
    result = run_awk(DEFAULT_AWK, mode, before, context, tmp_path)
    assert result.status == 0 and result.output is not None, result.error
    check_agreement(before, result.output, context, mode)


def test_the_live_diff_counts_an_adopted_mount(tmp_path: Path) -> None:
    """After the patcher adopted a hand-made audit-log mount, the live diff sees no change."""
    from compiler.artifacts.apiserver import ApiserverChange, Volume
    from compiler.live.compare import _volumes

    context = make_context()
    result = run_awk(
        DEFAULT_AWK, "static-pod", (CASES_DIR / "adopt-audit-mount" / "input").read_bytes(), context, tmp_path
    )
    assert result.output is not None
    change = ApiserverChange(
        tuple((f["name"], f["value"]) for f in context["flags"]),
        (),
        tuple(Volume(v["name"], v["host_path"], v["mount_path"], v["read_only"]) for v in context["volumes"]),
    )
    assert _volumes("cp-1", "/etc/kubernetes/manifests/kube-apiserver.yaml", result.output, change) == []
    assert [
        c.path for c in _volumes("cp-1", "m", (CASES_DIR / "real-1.30" / "input").read_bytes(), change)
    ] == [
        "volume auditc-config",
        "volumeMount auditc-config",
        "volume auditc-log",
        "volumeMount auditc-log",
    ]
