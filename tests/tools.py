"""System tools the tests drive."""

from __future__ import annotations

import os

import pytest


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
