"""Fixtures of the patch script suites: the flow tests run under one default awk (every awk
runs the awk programs themselves in test_awk.py, and the cross-check tests add the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nodepatch.helpers import DEFAULT_AWK, awk_shim
from tests.nodepatch.test_patch_script import Node, make_context


@pytest.fixture(scope="session")
def awk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return awk_shim(tmp_path_factory, DEFAULT_AWK)


@pytest.fixture
def node(tmp_path: Path, awk_dir: Path) -> Node:
    """A static-pod control-plane node under tmp_path, the default context installed."""
    result = Node(tmp_path, awk_dir)
    result.install(make_context())
    return result
