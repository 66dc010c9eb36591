"""System tools the tests drive."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

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


def dump_all(documents: list[Any]) -> str:
    return yaml.dump_all(documents, Dumper=yaml.CSafeDumper, sort_keys=False)


def validate_strict(documents: list[dict[str, Any]], version: str) -> None:
    """kubernetes-validate --strict on each object: the library call its command line makes,
    in this process (the schemas load once, not once per file)."""
    import kubernetes_validate

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
