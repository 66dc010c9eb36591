"""minikube's node step for auditc apply: the files into minikube's file sync, the profile
stopped and started with the rendered --extra-config flags, /readyz waited for.

minikube copies $MINIKUBE_HOME/.minikube/files into the node at start, and `minikube start`
on an existing profile takes the --extra-config flags it is given (kubernetes/minikube
#9634); so a restart is the only way in, and a failed start cannot be taken back by
auditc: the files are put back, and the operator starts the profile with the flags it had.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compiler.platform import Restart
from compiler.transport import run_interruptible

AFTER = (
    "; the previous files are back in minikube's file sync: start the profile with the flags "
    "it had to restore it, then run auditc plan"
)


def minikube_home() -> Path:
    """minikube's own rule (MiniPath): $MINIKUBE_HOME/.minikube unless it ends in .minikube."""
    home = Path(os.environ.get("MINIKUBE_HOME") or Path.home())
    return home if home.name == ".minikube" else home / ".minikube"


@dataclass(frozen=True)
class Restarted:
    ok: bool
    touched: bool = True  # False: stopped before anything changed in the node
    detail: str = ""


def restart_profile(profile: str, config_dir: str, restart: Restart) -> Restarted:
    """Install the files into the file sync at ``config_dir``, stop, start with the start
    command, wait for /readyz. On failure the previous files are put back (the node keeps
    what the failed start synced until the profile starts again)."""
    files, start, wait_timeout = restart.files, restart.start, restart.wait_timeout
    target = minikube_home() / "files" / config_dir.lstrip("/")
    previous = {name: _read(target / name) for name in files}
    target.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(files.items()):
        _write(target / name, content)
    code, out = run_interruptible(["minikube", "stop", "-p", profile], 300)
    if code != 0:
        _put_back(target, previous)
        return Restarted(False, False, f"minikube stop failed: {_last(out)}; the files were put back")
    code, out = run_interruptible(start, wait_timeout + 600)
    if code != 0:
        _put_back(target, previous)
        return Restarted(False, True, f"minikube start with the new flags failed: {_last(out)}{AFTER}")
    readyz = ["kubectl", "get", "--raw", "/readyz", "--context", restart.context or profile]
    deadline = time.monotonic() + wait_timeout
    while True:
        code, out = run_interruptible(readyz, 60)
        if code == 0:
            return Restarted(True)
        if time.monotonic() >= deadline:
            _put_back(target, previous)
            return Restarted(
                False, True, f"the apiserver is not ready after {wait_timeout:g}s: {_last(out)}{AFTER}"
            )
        time.sleep(restart.poll)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.auditc")
    temporary.write_bytes(content)
    temporary.chmod(0o644)
    temporary.replace(path)


def _put_back(target: Path, previous: Mapping[str, bytes | None]) -> None:
    for name, content in previous.items():
        if content is None:
            (target / name).unlink(missing_ok=True)
        else:
            _write(target / name, content)


def _last(output: bytes) -> str:
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
