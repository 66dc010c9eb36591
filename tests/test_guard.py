"""The guard of tests/conftest.py holds: no test reaches the network, the real home
directory or a real kubeconfig."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import REAL_HOME
from tests.paths import ROOT


def test_a_connect_beyond_loopback_fails_the_test() -> None:
    for address in (("192.0.2.1", 443), ("2001:db8::1", 443, 0, 0)):
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(pytest.fail.Exception):
            sock.connect(address)
        with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(pytest.fail.Exception):
            sock.connect_ex(address)


def test_loopback_stays_open() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass


def test_home_kubeconfig_and_proxies_point_away_from_the_machine() -> None:
    home = Path(os.environ["HOME"])
    assert home != REAL_HOME and home.name.startswith("auditc-test-home-")
    assert Path.home() == home
    assert Path(os.environ["KUBECONFIG"]).is_relative_to(home)
    assert not Path(os.environ["KUBECONFIG"]).exists()
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "MINIKUBE_HOME"):
        assert Path(os.environ[name]).is_relative_to(home), name
    assert os.environ["HTTPS_PROXY"] == "http://127.0.0.1:9"
    assert os.environ["PIP_NO_INDEX"] == "1"


def test_temporary_files_go_to_the_tmpdir_given_else_to_the_suites_own_ram_folder(tmp_path: Path) -> None:
    """A TMPDIR set before the suite starts is kept; without one, tempfile answers the
    folder tests/conftest.py chose (its own on /dev/shm where that qualifies) or the default."""

    def chosen(env: dict[str, str]) -> str:
        probe = "import tempfile, tests.conftest; print(tempfile.gettempdir())"
        ran = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.strip()

    assert chosen({**os.environ, "TMPDIR": str(tmp_path)}) == str(tmp_path)
    ram = f"/dev/shm/auditc-tests-{os.getuid()}" if conftest._ram_tmpdir() else "/tmp"
    assert chosen({k: v for k, v in os.environ.items() if k != "TMPDIR"}) == ram
