"""The node-side patch script in bpm mode (TKGI / BOSH masters).

The same template as tests/nodepatch/test_patch_script.py (whose helpers this module reuses),
rendered with the bpm context keys (``default_mode``, ``bpm_path``, ``bpm_process``), run
with ``--mode bpm --root`` against hand-made bpm.yml files (tests/data/bpm, see its
README.md). A stand-in ``monit`` first on PATH records every call; a stand-in
``ensure_apiserver_healthy`` under the root plays the job's health check. The behavioural
tests run under the default awk, like the static-pod suite; the awk programs themselves
run under every awk in tests/nodepatch/test_awk.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.nodepatch.helpers import awk_shim, shellcheck_context
from tests.nodepatch.test_patch_script import (
    CONFIG_FILES,
    HOSTILE,
    MANIFESTS,
    POLL_INTERVAL,
    SHELLS,
    Node,
    digest,
    flag_name,
    free_port,
    is_owned_flag,
    load,
    make_context,
    render,
    snapshot,
)
from tests.paths import DATA
from tests.tools import AWKS, require_tool

BPM_DIR = DATA / "bpm"
PATCHED = sorted(p for p in BPM_DIR.glob("*.yml") if not p.name.startswith("refuse-"))
JOB_CONFIG = "/var/vcap/jobs/kube-apiserver/config"
BPM_PATH = f"{JOB_CONFIG}/bpm.yml"
HEALTH_CHECK = "/var/vcap/jobs/kube-apiserver/bin/ensure_apiserver_healthy"
TKGI_LOG = "/var/vcap/sys/log/kube-apiserver/audit/log/audit.log"

# What each refusal case must say on stderr (a fragment of the message).
REFUSALS = {
    "refuse-flow-args.yml": "flow sequence",
    "refuse-multi-doc.yml": "more than one YAML document",
    "refuse-no-apiserver.yml": "no process named kube-apiserver",
    "refuse-no-args.yml": "has no args:",
    "refuse-no-processes.yml": "no processes:",
    "refuse-split-flag.yml": "--name=value",
    "refuse-tabs.yml": "tab",
}

# The quote character of args appended to each fixture: the style most of its args use.
APPEND_QUOTE = {"four-space-comments.yml": '"', "tkgi-master.yml": '"', "two-processes.yml": ""}


# --- the context -----------------------------------------------------------------------------


def bpm_context(
    *, narrow: bool = True, files: Mapping[str, str] = CONFIG_FILES, **overrides: Any
) -> dict[str, Any]:
    """The context for a TKGI master; bpm_path and bpm_process are left to their defaults.

    narrow (the SPEC's TKGI default): own only the webhook flags and the policy file, leaving
    TKGI's own --audit-log-* flags alone. Otherwise the kubeadm set: every --audit-* flag.
    """
    context = make_context(
        config_dir=JOB_CONFIG,
        log_dir="/var/vcap/sys/log/kube-apiserver/audit/log",
        files=files,
        volumes=[],
        default_mode="bpm",
    )
    if narrow:
        context["flags"] = [
            {"name": "audit-policy-file", "value": f"{JOB_CONFIG}/audit-policy.yaml"},
            {"name": "audit-webhook-config-file", "value": f"{JOB_CONFIG}/audit-webhook.kubeconfig"},
            {"name": "audit-webhook-batch-max-wait", "value": "5s"},
        ]
        context["owned_prefixes"] = ["audit-webhook-", "audit-policy-file"]
    context.update(overrides)
    return context


# --- a fake master -------------------------------------------------------------------------------


@dataclass
class Master(Node):
    """A --root for a TKGI master, a bundle dir, and a bin dir with a stand-in monit."""

    @property
    def bpm(self) -> Path:
        return self.path(self.context.get("bpm_path", BPM_PATH))

    @property
    def bin_dir(self) -> Path:
        return self.tmp / "bin"

    @property
    def health_check(self) -> Path:
        return self.path(HEALTH_CHECK)

    def monit_calls(self) -> list[str]:
        log = self.bin_dir / "monit.log"
        return log.read_text().splitlines() if log.exists() else []

    def put_monit(self, *, fails: bool = False) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        monit = self.bin_dir / "monit"
        status = 1 if fails else 0
        monit.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$*" >>"$(dirname "$0")/monit.log"\nexit {status}\n')
        monit.chmod(0o755)

    def put_bpm(self, content: bytes, mode: int = 0o644) -> None:
        self.bpm.parent.mkdir(parents=True, exist_ok=True)
        self.bpm.write_bytes(content)
        self.bpm.chmod(mode)

    def put_health_check(self, body: str) -> None:
        self.health_check.parent.mkdir(parents=True, exist_ok=True)
        self.health_check.write_text(f"#!/bin/sh\n{body}\n")
        self.health_check.chmod(0o755)

    def run(self, *args: str, root: bool = True, path: str | None = None) -> subprocess.CompletedProcess[str]:
        if path is None:
            path = os.pathsep.join(
                [*([str(self.awk_dir)] if self.awk_dir else []), str(self.bin_dir), os.environ["PATH"]]
            )
        command = [*self.shell, str(self.script), *(["--root", str(self.root)] if root else []), *args]
        return subprocess.run(
            command,
            cwd=self.tmp,
            env={**os.environ, "PATH": path, "AUDITC_POLL_INTERVAL": POLL_INTERVAL},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_bpm(self, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("--mode", "bpm", *args, path=path)


def new_master(tmp: Path, awk: Path | None, context: dict[str, Any] | None = None, **kw: Any) -> Master:
    master = Master(tmp, awk, **kw)
    master.install(bpm_context() if context is None else context)
    master.put_monit()
    return master


@pytest.fixture
def master(tmp_path: Path, awk_dir: Path) -> Master:
    return new_master(tmp_path, awk_dir)


def fixture(name: str) -> bytes:
    return (BPM_DIR / name).read_bytes()


# --- reading bpm.yml -----------------------------------------------------------------------------


def apiserver_process(doc: Any) -> Any:
    found = [p for p in doc["processes"] if p.get("name") == "kube-apiserver"]
    assert len(found) == 1
    return found[0]


def without_owned(doc: Any, context: Mapping[str, Any]) -> Any:
    process = apiserver_process(doc)
    process["args"] = [a for a in process["args"] if not is_owned_flag(str(a), context)]
    return doc


def arg_lines(text: str) -> dict[int, str]:
    """0-based line number -> text of each item of kube-apiserver's args."""
    lines = text.splitlines()
    args = apiserver_process(YAML().load(text))["args"]
    return {args.lc.item(i)[0]: lines[args.lc.item(i)[0]] for i in range(len(args))}


def quote_of(line: str) -> str:
    item = line.lstrip()[1:].lstrip()
    return item[0] if item[0] in "\"'" else ""


def owned_args(args: Mapping[int, str], context: Mapping[str, Any]) -> set[int]:
    return {n for n, line in args.items() if is_owned_flag(str(load(line.strip())[0]), context)}


def check_bpm_patched(original: str, patched: str, context: Mapping[str, Any], append_quote: str) -> None:
    """Everything the issue asks of a patched bpm.yml."""
    before, after = load(original), load(patched)
    args = [str(a) for a in apiserver_process(after)["args"]]
    wanted = {f["name"]: f["value"] for f in context["flags"]}
    for name, value in wanted.items():
        assert [a for a in args if flag_name(a) == name] == [f"--{name}={value}"], name
    lists = {i["name"] for i in context["list_items"]}
    assert [a for a in args if is_owned_flag(a, context) and flag_name(a) not in wanted.keys() | lists] == []
    assert without_owned(before, context) == without_owned(after, context)

    # every line but owned args is kept as it was: none changed, moved, added or dropped
    old_args, new_args = arg_lines(original), arg_lines(patched)
    owned_before, owned_after = owned_args(old_args, context), owned_args(new_args, context)
    kept = [line for i, line in enumerate(original.splitlines()) if i not in owned_before]
    kept_after = [line for i, line in enumerate(patched.splitlines()) if i not in owned_after]
    assert kept_after == kept, "a line the script does not own was changed, added or dropped"
    assert original.endswith("\n") == patched.endswith("\n")

    # quoting: a replaced arg keeps the quotes of the line it replaces; an added one takes
    # the style most args use
    old_quote = {}
    for line in old_args.values():
        old_quote.setdefault(flag_name(str(load(line.strip())[0])), quote_of(line))
    for line in new_args.values():
        name = flag_name(str(load(line.strip())[0]))
        if name in wanted:
            assert quote_of(line) == old_quote.get(name, append_quote), line


def assert_applied(
    master: Master, original: bytes, result: subprocess.CompletedProcess[str], append_quote: str = '"'
) -> None:
    """The run patched ``original``, installed the files 0644, kept a backup, restarted once."""
    assert result.returncode == 0, result.stdout + result.stderr
    check_bpm_patched(original.decode(), master.bpm.read_text(), master.context, append_quote)
    assert stat.S_IMODE(master.bpm.stat().st_mode) == 0o644, "the bpm.yml mode changed"
    for name in master.context["config_files"]:
        installed = master.config_dir / name
        assert installed.read_bytes() == (master.script.parent / name).read_bytes()
        assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    for directory in (master.config_dir, master.bpm.parent):
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")], "stray files"
    assert [p.read_bytes() for p in master.backup_dir.glob(f"*/{master.bpm.name}")] == [original]
    assert master.monit_calls() == ["restart kube-apiserver"]


def assert_noop(master: Master) -> None:
    """A second run changes nothing and restarts nothing."""
    before, calls = snapshot(master.tmp), master.monit_calls()
    result = master.run_bpm("--no-wait")
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stdout
    assert snapshot(master.tmp) == before
    assert master.monit_calls() == calls


def assert_refused(
    master: Master, result: subprocess.CompletedProcess[str], before: Any, message: str
) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused" in result.stderr
    assert message in result.stderr
    assert snapshot(master.root) == before
    assert master.monit_calls() == []


# --- the rendered script -------------------------------------------------------------------------


def hostile_bpm_context() -> dict[str, Any]:
    context = bpm_context(
        config_dir=f"{JOB_CONFIG} {HOSTILE}",
        site=HOSTILE,
        compiler_version=HOSTILE,
        backup_dir=f"/var/lib/auditc/{HOSTILE}",
        bpm_path=f"/var/vcap/jobs/kube-apiserver/{HOSTILE}/bpm.yml",
    )
    context["flags"].append({"name": "audit-webhook-initial-backoff", "value": HOSTILE})
    return context


# every context a shellcheck test names
SHELLCHECK_CONTEXTS = {
    "bpm-narrow": bpm_context(),
    "bpm-broad": bpm_context(narrow=False),
    "bpm-hostile": hostile_bpm_context(),
    "bpm-static-pod-default": bpm_context(
        default_mode="static-pod", list_items=[{"name": "feature-gates", "item": "A=true"}]
    ),
    "bpm-empty-lists": bpm_context(flags=[], config_files=[], owned_prefixes=[]),
}


@pytest.mark.parametrize("case", sorted(SHELLCHECK_CONTEXTS))
def test_shellcheck_clean(case: str, tmp_path: Path) -> None:
    shellcheck_context(tmp_path, SHELLCHECK_CONTEXTS[case])


def test_bpm_mode_only_with_bpm_keys() -> None:
    """Contexts without the bpm keys render the static-pod-only script (the goldens)."""
    legacy = render(make_context())
    assert "--mode" not in legacy and "bpm" not in legacy
    dual = render(make_context(default_mode="static-pod"))
    assert "--mode static-pod|bpm" in dual
    assert "ctx bpm-path '/var/vcap/jobs/kube-apiserver/config/bpm.yml'" in dual
    assert "ctx bpm-process 'kube-apiserver'" in dual


def test_help_and_usage_errors(tmp_path: Path) -> None:
    master = new_master(tmp_path, None)
    result = master.run("--help", root=False)
    assert result.returncode == 0
    assert "--mode MODE" in result.stdout and "(default bpm)" in result.stdout
    assert BPM_PATH in result.stdout and "monit restart kube-apiserver" in result.stdout
    master.put_bpm(fixture("tkgi-master.yml"))
    before = snapshot(master.root)
    for args in (
        ["--mode", "daemonset"],
        ["--mode"],
        ["--mode="],
        ["--bpm"],
        ["--mode", "bpm", "--bpm", "var/vcap/bpm.yml"],
        ["--mode", "bpm", "--manifest", "/etc/kubernetes/manifests/kube-apiserver.yaml"],
        ["--mode", "static-pod", "--bpm", BPM_PATH],
    ):
        result = master.run(*args)
        assert result.returncode == 2, args
        assert result.stderr, args
    assert snapshot(master.root) == before
    assert master.monit_calls() == []


# --- patching ------------------------------------------------------------------------------------


@pytest.mark.parametrize("narrow", [True, False], ids=["narrow", "broad"])
@pytest.mark.parametrize("bpm", PATCHED, ids=lambda p: p.name)
def test_patch_and_idempotent(master: Master, bpm: Path, narrow: bool) -> None:
    original = bpm.read_bytes()
    master.install(bpm_context(narrow=narrow))
    master.put_bpm(original)
    assert_applied(master, original, master.run_bpm("--no-wait"), APPEND_QUOTE[bpm.name])
    assert master.awk_dir is not None and (master.awk_dir / "used").exists(), "the awk shim was not used"
    assert_noop(master)


def args_region(text: str) -> list[str]:
    """The lines of ``text`` up to its last kube-apiserver arg."""
    return text.splitlines()[: max(arg_lines(text)) + 1]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) of the args changed in place (args are only ever appended at the end)."""
    old = args_region(before)
    return [(a, b) for a, b in zip(old, after.splitlines()[: len(old)], strict=True) if a != b]


def test_narrow_prefixes_keep_tkgi_audit_log_flags(master: Master) -> None:
    original = fixture("tkgi-master.yml").decode()
    master.put_bpm(original.encode())
    assert master.run_bpm("--no-wait").returncode == 0
    patched = master.bpm.read_text()
    assert [line for line in patched.splitlines() if "--audit-log-" in line] == [
        line for line in original.splitlines() if "--audit-log-" in line
    ]
    assert changed_lines(original, patched) == [
        (
            '  - "--audit-policy-file=/var/vcap/jobs/kube-apiserver/config/audit_policy.yml"',
            '  - "--audit-policy-file=/var/vcap/jobs/kube-apiserver/config/audit-policy.yaml"',
        )
    ]
    assert args_region(patched)[len(args_region(original)) :] == [
        '  - "--audit-webhook-config-file=/var/vcap/jobs/kube-apiserver/config/audit-webhook.kubeconfig"',
        '  - "--audit-webhook-batch-max-wait=5s"',
    ]
    tail = len(original.splitlines()) - len(args_region(original))
    assert patched.splitlines()[-tail:] == original.splitlines()[-tail:], "env, limits or hooks changed"


def test_broad_prefixes_replace_tkgi_values_in_place(master: Master) -> None:
    original = fixture("tkgi-master.yml").decode()
    master.install(bpm_context(narrow=False))
    master.put_bpm(original.encode())
    assert master.run_bpm("--no-wait").returncode == 0
    patched = master.bpm.read_text()
    assert changed_lines(original, patched) == [
        ('  - "--audit-log-maxage=0"', '  - "--audit-log-maxage=30"'),
        ('  - "--audit-log-maxbackup=7"', '  - "--audit-log-maxbackup=10"'),
        ('  - "--audit-log-maxsize=49"', '  - "--audit-log-maxsize=100"'),
        (
            '  - "--audit-policy-file=/var/vcap/jobs/kube-apiserver/config/audit_policy.yml"',
            '  - "--audit-policy-file=/var/vcap/jobs/kube-apiserver/config/audit-policy.yaml"',
        ),
    ]
    assert f'  - "--audit-log-path={TKGI_LOG}"' in patched.splitlines(), "an equal value was rewritten"
    assert len(args_region(patched)) == len(args_region(original)) + 3, "only the webhook flags are new"


def test_owned_single_quoted_and_duplicate_args(master: Master) -> None:
    original = fixture("two-processes.yml").decode()
    master.install(bpm_context(narrow=False))
    master.put_bpm(original.encode())
    assert master.run_bpm("--no-wait").returncode == 0
    patched = master.bpm.read_text()
    assert "    - '--audit-webhook-batch-max-wait=5s'\n" in patched
    assert "    - '--audit-webhook-mode=blocking'" not in patched, "a stale owned flag stays"
    assert patched.count("--audit-log-maxbackup=") == 1
    assert "--audit-dynamic-configuration" not in patched, "a stale bare owned flag stays"
    assert '  - "--audit-log-path=/not/an/apiserver/flag"\n' in patched, "another process was changed"
    assert "      - --audit-policy-file=/tmp/not-a-flag\n" in patched, "a block scalar was changed"
    assert patched.endswith("...")


def test_list_items_are_merged_in_place(master: Master) -> None:
    original = fixture("tkgi-master.yml").decode()
    master.install(bpm_context(list_items=[{"name": "feature-gates", "item": "DynamicAuditing=true"}]))
    master.put_bpm(original.encode())
    assert_applied(master, original.encode(), master.run_bpm("--no-wait"))
    assert (
        '  - "--feature-gates=RotateKubeletServerCertificate=true"',
        '  - "--feature-gates=RotateKubeletServerCertificate=true,DynamicAuditing=true"',
    ) in changed_lines(original, master.bpm.read_text())
    assert_noop(master)


def test_io_failure_changes_nothing(master: Master) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    blocker = master.backup_dir.parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the backup dir's parent should be\n")
    before = snapshot(master.root)
    result = master.run_bpm("--no-wait")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot create the backup directory" in result.stderr
    assert snapshot(master.root) == before
    assert master.monit_calls() == []


def test_policy_only_change_restarts(master: Master) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    assert master.run_bpm("--no-wait").returncode == 0
    first = snapshot(master.root)
    bpm_state = first[str(master.bpm.relative_to(master.root))]
    webhook = master.config_dir / "audit-webhook.kubeconfig"
    webhook_state = first[str(webhook.relative_to(master.root))]

    files = {**CONFIG_FILES, "audit-policy.yaml": CONFIG_FILES["audit-policy.yaml"] + "- level: None\n"}
    master.install(bpm_context(files=files), files)
    result = master.run_bpm("--no-wait")
    assert result.returncode == 0, result.stderr
    after = snapshot(master.root)
    assert after[str(master.bpm.relative_to(master.root))] == bpm_state, "bpm.yml changed"
    assert after[str(webhook.relative_to(master.root))] == webhook_state, "an unchanged file was rewritten"
    assert (master.config_dir / "audit-policy.yaml").read_text() == files["audit-policy.yaml"]
    assert master.monit_calls() == ["restart kube-apiserver"] * 2
    assert_noop(master)


def test_no_restart_for_pre_start(master: Master) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    result = master.run_bpm("--no-restart")
    assert result.returncode == 0, result.stderr
    check_bpm_patched(original.decode(), master.bpm.read_text(), master.context, '"')
    assert master.monit_calls() == []
    assert "not restarting" in result.stdout


def test_dry_run_changes_nothing(master: Master) -> None:
    master.put_bpm(fixture("tkgi-master.yml"))
    before = snapshot(master.root)
    result = master.run_bpm("--dry-run")
    assert result.returncode == 0, result.stderr
    assert snapshot(master.root) == before
    assert master.monit_calls() == []
    assert '+  - "--audit-webhook-batch-max-wait=5s"' in result.stdout
    assert f"would restart kube-apiserver: {master.bin_dir / 'monit'} restart kube-apiserver" in result.stdout
    for name in CONFIG_FILES:
        assert f"would install {master.config_dir / name}" in result.stdout


def test_bpm_option(master: Master) -> None:
    original = fixture("four-space-comments.yml")
    elsewhere = master.path("/srv/bpm.yml")
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(original)
    result = master.run_bpm("--no-wait", "--bpm", "/srv/bpm.yml")
    assert result.returncode == 0, result.stderr
    check_bpm_patched(original.decode(), elsewhere.read_text(), master.context, '"')
    assert not master.bpm.exists()


def test_job_dir_is_a_symlink(master: Master) -> None:
    """On a BOSH VM /var/vcap/jobs/JOB links to /var/vcap/data/jobs/JOB/<hash>."""
    original = fixture("tkgi-master.yml")
    job = master.path("/var/vcap/jobs/kube-apiserver")
    rendered = master.path("/var/vcap/data/jobs/kube-apiserver/0123abcd")
    (rendered / "config").mkdir(parents=True)
    job.parent.mkdir(parents=True)
    job.symlink_to(rendered)
    master.put_bpm(original)
    assert_applied(master, original, master.run_bpm("--no-wait"))
    assert job.is_symlink()
    assert sorted(p.name for p in (rendered / "config").iterdir()) == [*sorted(CONFIG_FILES), "bpm.yml"]


def test_mode_defaults_from_the_context(tmp_path: Path) -> None:
    original = fixture("tkgi-master.yml")
    master = new_master(tmp_path / "bpm", None, bpm_context(bpm_path="/srv/job/bpm.yml"))
    master.put_bpm(original)
    assert master.run("--no-wait").returncode == 0, "default_mode bpm needs no --mode"
    check_bpm_patched(original.decode(), master.bpm.read_text(), master.context, '"')

    master = new_master(tmp_path / "static", None, bpm_context(default_mode="static-pod"))
    master.put_bpm(original)
    result = master.run("--no-wait")
    assert result.returncode == 2 and "kube-apiserver.yaml does not exist" in result.stderr
    assert master.run_bpm("--no-wait").returncode == 0, "--mode bpm overrides the default"
    assert master.monit_calls() == ["restart kube-apiserver"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_static_pod_mode_is_unchanged(tmp_path: Path, manifest: Path) -> None:
    """The script with the bpm keys, in static-pod mode, writes what the kubeadm script writes."""
    results = []
    for name, context in (("kubeadm", make_context()), ("dual", make_context(default_mode="static-pod"))):
        node = Node(tmp_path / name, None)
        node.install(context)
        node.put_manifest(manifest.read_bytes())
        result = node.run("--no-wait")
        assert result.returncode == 0, result.stderr
        results.append((node.manifest.read_bytes(), sorted(p.name for p in node.config_dir.iterdir())))
    assert results[0] == results[1]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", sorted(REFUSALS), ids=str)
def test_refuses_unsafe_bpm_files(master: Master, bpm: str) -> None:
    master.put_bpm(fixture(bpm))
    before = snapshot(master.root)
    result = master.run_bpm("--no-wait")
    assert_refused(master, result, before, REFUSALS[bpm])
    assert "bpm.yml was not changed" in result.stderr


def test_every_refusal_case_is_listed() -> None:
    assert sorted(p.name for p in BPM_DIR.glob("refuse-*.yml")) == sorted(REFUSALS)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("crlf-line-endings", "CRLF"),
        ("bpm-symlink", "symbolic link"),
        ("bpm-missing", "does not exist"),
        ("config-file-missing", "missing next to the script"),
        ("config-file-is-bpm", "would overwrite"),
        ("no-monit", "monit is not installed"),
        ("no-health-check-tool", "readiness cannot be checked"),
    ],
)
def test_refuses_unsafe_setups(master: Master, setup: str, message: str) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    args = ["--no-wait"]
    if setup == "crlf-line-endings":
        master.put_bpm(original.replace(b"\n", b"\r\n"))
    elif setup == "bpm-symlink":
        target = master.path("/srv/bpm.yml")
        target.parent.mkdir(parents=True)
        master.bpm.rename(target)
        master.bpm.symlink_to(target)
    elif setup == "bpm-missing":
        master.bpm.unlink()
    elif setup == "config-file-missing":
        (master.script.parent / "audit-policy.yaml").unlink()
    elif setup == "config-file-is-bpm":
        files = {**CONFIG_FILES, "bpm.yml": "processes: []\n"}
        master.install(bpm_context(files=files), files)
    path = None
    if setup in ("no-monit", "no-health-check-tool"):
        if setup == "no-monit":
            shutil.rmtree(master.bin_dir)
        else:
            args = []  # wait, but no ensure_apiserver_healthy and no curl or wget to poll with
        path = tools_path(master, without=("monit", "curl", "wget"))
    before = snapshot(master.root)
    assert_refused(master, master.run_bpm(*args, path=path), before, message)


def tools_path(master: Master, without: tuple[str, ...]) -> str:
    """A PATH with the awk shim, the stand-in monit and the tools the script uses, minus ``without``."""
    tools = master.tmp / "tools"
    tools.mkdir()
    names = ("sh", "mawk", "gawk", "busybox", "cat", "cmp", "cp", "date", "diff", "dirname", "install")
    names += ("mkdir", "mktemp", "mv", "rm", "sed", "sleep", "tail", "tr", "chmod", "curl", "wget")
    for name in names:
        found = shutil.which(name)
        if found and name not in without:
            (tools / name).symlink_to(found)
    dirs = [str(master.awk_dir)] if master.awk_dir else []
    if master.bin_dir.exists():
        dirs.append(str(master.bin_dir))
    return os.pathsep.join([*dirs, str(tools)])


# --- waiting and rolling back --------------------------------------------------------------------


def test_waits_for_ensure_apiserver_healthy(master: Master) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    seen = master.tmp / "seen-by-health-check"
    bpm = shlex.quote(str(master.bpm))
    master.put_health_check(f"cp {bpm} {shlex.quote(str(seen))}\nexit 0")
    result = master.run_bpm("--wait-timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kube-apiserver is ready" in result.stdout
    assert seen.read_bytes() == master.bpm.read_bytes() != original, "checked before bpm.yml was patched"
    assert master.monit_calls() == ["restart kube-apiserver"]


@pytest.mark.parametrize("health", ["fails", "hangs", "monit-fails"])
def test_rollback_when_not_healthy(master: Master, health: str) -> None:
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    old_policy = "# the policy of an earlier run\n"
    (master.config_dir / "audit-policy.yaml").write_text(old_policy)
    if health == "fails":
        master.put_health_check("exit 1")
    elif health == "hangs":
        master.put_health_check("exec sleep 30")
    else:
        master.put_health_check("exit 0")
        master.put_monit(fails=True)
    started = time.monotonic()
    result = master.run_bpm("--wait-timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert "rolling back" in result.stderr
    assert master.bpm.read_bytes() == original
    assert stat.S_IMODE(master.bpm.stat().st_mode) == 0o644
    assert (master.config_dir / "audit-policy.yaml").read_text() == old_policy
    assert not (master.config_dir / "audit-webhook.kubeconfig").exists(), "a created file remains"
    assert sorted(p.name for p in master.config_dir.iterdir()) == ["audit-policy.yaml", "bpm.yml"]
    assert master.monit_calls() == ["restart kube-apiserver"] * 2
    if health == "monit-fails":
        assert "RESTART FAILED" in result.stderr


def bpm_on_port(port: int) -> bytes:
    text = fixture("tkgi-master.yml").decode()
    assert '"--secure-port=8443"\n' in text
    return text.replace('"--secure-port=8443"\n', f'"--secure-port={port}"\n').encode()


def test_without_health_check_polls_readyz(master: Master) -> None:
    port = free_port()  # nothing listens there
    original = bpm_on_port(port)
    master.put_bpm(original)
    result = master.run_bpm("--wait-timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"https://127.0.0.1:{port}/readyz" in result.stdout, "--secure-port of bpm.yml not used"
    assert master.bpm.read_bytes() == original
    assert master.monit_calls() == ["restart kube-apiserver"] * 2


def test_without_health_check_ready_on_readyz(master: Master, readyz_server: int) -> None:
    original = bpm_on_port(readyz_server)
    master.put_bpm(original)
    result = master.run_bpm("--wait-timeout", "20")
    assert_applied(master, original, result)
    assert "kube-apiserver is ready" in result.stdout


def test_run_limited_without_timeout(tmp_path: Path) -> None:
    """The fallback for hosts without timeout(1): the health check is stopped after N seconds."""
    script = render(bpm_context())
    match = re.search(r"^run_limited\(\) \{.*?^\}\n", script, re.DOTALL | re.MULTILINE)
    assert match
    check = tmp_path / "check"
    for body, seconds, status in (("exit 3", 5, 3), ("exit 0", 5, 0), ("exec sleep 30", 1, 124)):
        check.write_text(f"#!/bin/sh\n{body}\n")
        check.chmod(0o755)
        program = f"has() {{ return 1; }}\n{match.group(0)}run_limited {seconds} {shlex.quote(str(check))}\n"
        started = time.monotonic()
        result = subprocess.run(
            ["sh", "-c", program], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == status, body
        assert time.monotonic() - started < 10


# --- hostile values ------------------------------------------------------------------------------


def test_hostile_values_are_data(master: Master) -> None:
    files = {**CONFIG_FILES, f"extra {HOSTILE}.yaml": "x: 1\n"}
    context = hostile_bpm_context()
    context["config_files"] = sorted(files)
    context["config_digest"] = digest(files)
    master.install(context, files)
    original = fixture("tkgi-master.yml")
    master.put_bpm(original)
    assert_applied(master, original, master.run_bpm("--no-wait"))
    assert_noop(master)
    assert not list(master.tmp.rglob("PWNED"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bpm_process": "kube-apiserver; touch PWNED"}, "bpm_process"),
        ({"bpm_path": "$(touch PWNED)/bpm.yml"}, "absolute"),
        ({"bpm_path": "/var/vcap/jobs/../../tmp/`touch PWNED`"}, ".."),
        ({"default_mode": "bpm; touch PWNED"}, "default_mode"),
        ({"flags": [{"name": "audit-policy-file", "value": "x\n$(touch PWNED)"}]}, "control character"),
    ],
    ids=["process", "relative-bpm-path", "dotdot-bpm-path", "mode", "newline-in-value"],
)
def test_hostile_values_are_refused(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    master = new_master(tmp_path, None, bpm_context(**overrides))
    master.put_bpm(fixture("tkgi-master.yml"))
    before = snapshot(master.root)
    result = master.run("--no-wait")
    assert_refused(master, result, before, message)
    assert not list(master.tmp.rglob("PWNED"))


# --- other shells --------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_other_shells_give_the_same_result(tmp_path: Path, awk_dir: Path, shell: str) -> None:
    command = SHELLS[shell]
    require_tool(command[0])
    original = fixture("four-space-comments.yml")
    results = []
    for name, sh in (("reference", ("sh",)), (shell, command)):
        master = new_master(tmp_path / name, awk_dir, shell=sh)
        master.put_bpm(original)
        assert master.run_bpm("--no-wait").returncode == 0
        assert_noop(master)
        results.append((master.bpm.read_bytes(), master.monit_calls()))
    assert results[0] == results[1]


@pytest.mark.parametrize("awk", sorted(AWKS))
def test_other_awks_give_the_same_result(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, awk_dir: Path, awk: str
) -> None:
    original = fixture("four-space-comments.yml")
    results = []
    for name, shim in (("reference", awk_dir), (awk, awk_shim(tmp_path_factory, awk))):
        master = new_master(tmp_path / name, shim)
        master.put_bpm(original)
        assert master.run_bpm("--no-wait").returncode == 0
        assert_noop(master)
        results.append(master.bpm.read_bytes())
    assert results[0] == results[1]
