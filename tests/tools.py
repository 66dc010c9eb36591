"""What the tests share to drive real tools: system tools, the YAML readers for what helm and
kubectl write, kubernetes-validate, shellcheck once per script body, and a hang guard."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml


def require_tool(name: str) -> None:
    """Skip when a system tool is missing, unless `make test` promised to install it."""
    import shutil

    if shutil.which(name) is not None:
        return
    if os.environ.get("AUDITC_REQUIRE_ALL_TOOLS") == "1":
        pytest.fail(f"{name} is not installed although `make test` installs it (make system-tools)")
    pytest.skip(f"{name} is not installed")


# the awk implementations a node may have: the patch script is run under each
AWKS = {"mawk": ("mawk",), "gawk-posix": ("gawk", "--posix"), "busybox-awk": ("busybox", "awk")}


# ---- reading what helm and kubectl write -----------------------------------------------------
# libyaml (PyYAML's C loader): YAML 1.1, like the Go YAML decoder the API server and kubectl
# use (sigs.k8s.io/yaml), and 20 to 50 times faster than a pure-Python reader on the large
# ConfigMaps of rules the Falco charts render. Duplicate keys are refused, as the API server's
# strict decoder refuses them.
class _StrictLoader(yaml.CSafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_all_strict(text: str) -> list[Any]:
    """Every document of a multi-document YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc]


class _Core12Loader(_StrictLoader):
    """libyaml with the YAML 1.2 core schema's plain scalars (yes/on/0644 stay what 1.2 says:
    text, text, 644), duplicate keys refused: what a pure-Python YAML 1.2 reader gives, at C
    speed."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {}

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)


_Core12Loader.add_constructor("tag:yaml.org,2002:int", _Core12Loader.construct_yaml_int)
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Core12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))


class Yaml12:
    """``load``/``load_all`` of YAML 1.2 text (the core schema), duplicate keys refused."""

    @staticmethod
    def load(text: str) -> Any:
        return yaml.load(text, Loader=_Core12Loader)

    @staticmethod
    def load_all(text: str) -> list[Any]:
        return list(yaml.load_all(text, Loader=_Core12Loader))


yaml12 = Yaml12()


def dump_all(documents: list[Any]) -> str:
    return yaml.dump_all(documents, Dumper=yaml.CSafeDumper, sort_keys=False)


@functools.cache
def _kubernetes_validate() -> Any:
    """The library, its schema file reader memoized: a schema is read and decoded once per
    process, not once per object (it is a pure read of files inside the package)."""
    import kubernetes_validate
    import kubernetes_validate.utils as utils

    utils.schema_contents = functools.cache(utils.schema_contents)
    return kubernetes_validate


def validate_strict(documents: list[dict[str, Any]], version: str) -> None:
    """kubernetes-validate --strict on each object: the library call its command line makes,
    in this process (the schemas load once, not once per file)."""
    kubernetes_validate = _kubernetes_validate()
    problems = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError, ...: all are failures
            name = (doc.get("metadata") or {}).get("name")
            problems.append(f"{doc.get('kind')}/{name}: {type(exc).__name__}: {exc}"[:2000])
    assert problems == [], "\n".join(problems)


@contextlib.contextmanager
def no_hang(what: str, seconds: int = 30) -> Iterator[None]:
    """Fail when the block has not finished after ``seconds``: a guard against a hang (a
    blocking read of a FIFO, an alias bomb expanded), not a speed check; the limit is many
    times what a loaded 2-core machine needs."""

    def expired(*_: object) -> None:
        raise AssertionError(f"{what}: still running after {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- shellcheck, once per script body ----------------------------------------------------
# The patch script hands every spec value to its body in lines "ctx KIND 'word'..." inside
# load_context(); the rest of it is the same for every spec of one shape. shellcheck reads
# each distinct body (the script without its context lines) once per test process, in
# full, and the context lines of every script on their own, the way load_context() runs
# them. A value that leaked out of its context line changes the body: checked in full.
CONTEXT_LINE = re.compile(rb"^[ \t]*ctx .*\n", re.MULTILINE)
_PASSED: set[tuple[str, ...]] = set()  # (options..., body digest) that shellcheck passed


# the shellcheck directives the script puts on load_context() hold for the harness too
CONTEXT_DIRECTIVES = re.compile(rb"((?:^# shellcheck [^\n]*\n)*)load_context\(\) \{", re.MULTILINE)


def _context_harness(script: bytes) -> bytes:
    lines = b"".join(CONTEXT_LINE.findall(script))
    found = CONTEXT_DIRECTIVES.search(script)
    directives = found.group(1) if found else b""
    return b"#!/bin/sh\nctx() { :; }\n" + directives + b"load_context() {\n" + lines + b"}\nload_context\n"


def shellcheck(scripts: list[Path], *options: str) -> None:
    """Assert that shellcheck passes every script (as split above), in batched calls."""
    require_tool("shellcheck")
    pending: dict[tuple[str, ...], Path] = {}
    for script in scripts:
        content = script.read_bytes()
        key = (*options, hashlib.sha256(CONTEXT_LINE.sub(b"", content)).hexdigest())
        if key not in _PASSED:
            pending.setdefault(key, script)
        if CONTEXT_LINE.search(content):
            harness = script.with_name(f".{script.name}.context.sh")
            harness.write_bytes(_context_harness(content))
            pending[(*options, str(harness))] = harness
    paths = list(pending.items())
    for start in range(0, len(paths), 40):
        batch = paths[start : start + 40]
        result = subprocess.run(
            ["shellcheck", "--norc", *options, *(str(p) for _, p in batch)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[:4000]
        _PASSED.update(key for key, path in batch if not path.name.endswith(".context.sh"))


def ssh_options(key: Path) -> list[str]:
    """auditc's ssh options for the suite's sshd on 127.0.0.1 (tests/conftest.py): its
    per-run key, no host key checks (a fresh host key each run), no chatter, and SHLVL=1
    (the sshd accepts it): the login shell is then not the outermost one, so bash skips
    this machine's ~/.bashrc, which costs 0.3 s a session here (pyenv init) and which no
    test is about."""
    return [
        "--ssh-option",
        "SetEnv=SHLVL=1",
        "--ssh-identity",
        str(key),
        "--ssh-option",
        "StrictHostKeyChecking=no",
        "--ssh-option",
        "UserKnownHostsFile=/dev/null",
        "--ssh-option",
        "LogLevel=ERROR",
    ]
