"""Runs the Python stand-in programs of the tests (kubectl, helm, minikube, bosh: see
tests/standins.py) without starting an interpreter for every call.

A stand-in installed by :func:`tests.standins.python_program` is two files: the program
``bin/NAME``, a few lines run by ``python -IS`` (no site, no imports beyond builtins), and
its body ``bin/.NAME.py``. The program connects to this server over a Unix socket and
hands it its stdin, stdout and stderr (SCM_RIGHTS) with its argv, environment and working
directory; the server, which has imported what the bodies import, forks, and the child runs
the body with exactly those, then sends back its exit status, which the program exits with.
To auditc the program is one process with the usual argv/stdio/exit-status contract. A
rollout test makes dozens of such calls; each costs about 10 ms this way instead of 50 ms.

Without the server (not started, or gone), the program runs its body itself with the full
interpreter: the same result, only slower. A program killed mid-call (a timeout) leaves
its child running to completion; the bodies never run longer than a second.
"""

from __future__ import annotations

# what the bodies import (the noqa: F401 ones) is loaded here once, for every child
import atexit
import calendar  # noqa: F401
import contextlib
import gc
import json  # noqa: F401
import marshal
import os
import re  # noqa: F401
import shutil  # noqa: F401
import signal
import socket
import subprocess  # noqa: F401
import sys
import time  # noqa: F401
import traceback
from pathlib import Path
from types import CodeType

import yaml  # noqa: F401

_compiled: dict[str, tuple[float, CodeType]] = {}


def _code(body: str) -> CodeType:
    source = Path(body)
    mtime = source.stat().st_mtime
    cached = _compiled.get(body)
    if cached is None or cached[0] != mtime:
        cached = (mtime, compile(source.read_text(encoding="utf-8"), body, "exec"))
        _compiled[body] = cached
    return cached[1]


def _exit_status(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


def _child(conn: socket.socket, fds: list[int], request: tuple[str, list[str], dict[str, str], str]) -> None:
    body, argv, env, cwd = request
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the body's own subprocesses are waited for
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    status = 0
    namespace = {"__name__": "__main__", "__file__": body}
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        exec(_code(body), namespace)
    except SystemExit as stop:
        status = _exit_status(stop)
    except BaseException:
        traceback.print_exc()
        status = 1
    # what the interpreter's exit would do: atexit functions, then every object the body
    # made is released (a file it left open is flushed and closed)
    atexit._run_exitfuncs()
    namespace.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    try:
        conn.sendall(bytes([status & 0xFF]))
    finally:
        os._exit(status & 0xFF)


def serve(path: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".new")
    server.listen(128)
    Path(path + ".new").rename(path)  # the path appears only once it accepts
    gc.freeze()  # a child's collection leaves what it inherited alone (no copy of the heap)
    while True:
        conn, _ = server.accept()
        fds: list[int] = []
        try:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            while chunk := conn.recv(1 << 16):
                data += chunk
            request = marshal.loads(data)
            _code(request[0])  # compiled here, once, not in every child
            if os.fork() == 0:
                server.close()
                _child(conn, fds, request)
        except Exception:
            if len(fds) == 3:  # the program's stderr: it exits 70
                os.write(fds[2], f"stand-in server: {traceback.format_exc()}".encode())
        finally:
            conn.close()
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1])
