"""How node files are read from a control-plane host: the ``Transport`` interface, ssh,
and the helpers a platform's own transport is written with.

Each transport turns "read this absolute path on that host" into a command (ssh here; a
platform folder may add its own, such as a CLI's ssh), every path quoted. ``root`` takes
every node path under a directory, as the patch script's ``--root`` does: for chroots and
for tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from compiler.errors import UserError
from compiler.templates import shq


class Transport(Protocol):
    @property
    def name(self) -> str:
        """How the host is named in snapshots and diffs."""
        ...

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        """Each file's bytes, or None when it does not exist on the host, in one round
        trip where the transport can (``remote_cat_many``)."""
        ...


@dataclass(frozen=True)
class Ran:
    code: int
    output: str  # stdout and stderr, as the command wrote them
    unreachable: bool = False  # the transport itself failed (ssh exit 255): state unknown


class NodeShell(Transport, Protocol):
    """A host apply can change: a fresh directory with files in it, a command run as root
    there. ``root`` is the prefix every node path takes on the host (``--node-root``)."""

    @property
    def root(self) -> str: ...

    def stage(self, staging_dir: str, files: Mapping[str, bytes]) -> str:
        """A fresh directory under ``staging_dir`` holding ``files``; its path on the host."""
        ...

    def run(self, command: str, timeout: float) -> Ran:
        """A POSIX sh command, run as root on the host."""
        ...


@dataclass(frozen=True)
class NodeAccess:
    """How to reach the nodes: ssh options and a root prefix for chroots/tests (``{host}``
    in it stands for each host's name, so several hosts can share one machine); ``local``:
    the hosts' files are on this machine (chroots, tests, auditc run on the node itself)."""

    root: str = ""
    identity: str | None = None
    ssh_options: tuple[str, ...] = ()
    local: bool = False

    def root_of(self, host: str) -> str:
        return self.root.replace("{host}", host).rstrip("/")


def cloud_cli(argv: list[str], what: str) -> str:
    """The standard output of a read-only cloud CLI command (aws, gcloud, az); a missing
    CLI or a refusal is the user's to fix (UserError with the last line the CLI wrote on
    stderr, where the three put the cause). ``what``: what the read is for, in the message.
    stderr is never parsed as an answer (warnings there would read as values)."""
    from compiler.errors import printable

    result = run(argv, what)
    if result.returncode != 0:
        errors = result.stderr.decode("utf-8", "replace").strip().splitlines()
        last = errors[-1] if errors else f"exit {result.returncode}"
        raise UserError(f"{' '.join(argv[:3])} failed: {printable(last)}")
    return result.stdout.decode("utf-8", "replace").strip()


def run_interruptible(argv: list[str], timeout: float, stdin: bytes | None = None) -> tuple[int, bytes]:
    """Run ``argv`` to the end, output and errors together. The child has a process group
    of its own: on Ctrl-C auditc passes the interrupt to all of it once (a shell and the
    patch script under it alike) and waits for it to finish (the patch script restores or
    stays patched in its trap, it is never cut off halfway), then the interrupt goes on."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(stdin, timeout=timeout)
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return 124, out + f"\n(no answer within {timeout:.0f} s)".encode()
    return process.returncode, out


def run(argv: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    """A read: output captured, stdin closed (nothing may stop to ask), 120 s at most."""
    try:
        return subprocess.run(argv, capture_output=True, check=False, timeout=120, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed; it is needed to read {what}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: no answer within 120 s") from None


_CONTROL_DIR: ContextVar[str | None] = ContextVar("auditc_ssh_control_dir", default=None)


@contextlib.contextmanager
def ssh_connections() -> Iterator[None]:
    """One ssh connection per host while the block runs: a read, staging, a health check and
    a patch become sessions over it, not a login each (about half a second apiece). The
    masters are closed when the block ends (ControlPersist bounds them if auditc is killed).
    An --ssh-option ControlMaster=no (given first, so it wins) turns it off."""
    # a unix socket path has ~104 bytes: ssh appends %C (40) and a 17-byte temporary suffix,
    # so the directory goes under /tmp, and multiplexing is off if even that is too long
    directory = tempfile.mkdtemp(prefix="auditc-ssh.", dir="/tmp" if Path("/tmp").is_dir() else None)
    token = _CONTROL_DIR.set(directory if len(directory) <= 40 else None)
    try:
        yield
    finally:
        _CONTROL_DIR.reset(token)
        for socket in sorted(Path(directory).iterdir()):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "auditc"],
                    capture_output=True,
                    check=False,
                    timeout=10,
                )
        shutil.rmtree(directory, ignore_errors=True)


_FILE, _ABSENT = "==auditc-file", "==auditc-absent"


def remote_cat_many(paths: list[str]) -> str:
    """A POSIX sh script printing each file as a header line and its base64 (lines that
    never start with "=="), or an absent marker: many files in one session, bytes intact."""
    return "".join(
        f"if [ -e {shq(path)} ]; then echo {_FILE}; base64 <{shq(path)} || exit 1; else echo {_ABSENT}; fi\n"
        for path in paths
    )


def parse_cat_many(paths: list[str], out: bytes) -> dict[str, bytes | None] | None:
    """What ``remote_cat_many`` printed, by path; None when it is not that output."""
    chunks: list[list[bytes]] = []
    for line in out.replace(b"\r\n", b"\n").splitlines():
        if line in (_FILE.encode(), _ABSENT.encode()):
            chunks.append([line])
        elif chunks and chunks[-1][0] == _FILE.encode():
            chunks[-1].append(line)
        elif line.strip():
            return None
    if len(chunks) != len(paths):
        return None
    try:
        return {
            path: base64.b64decode(b"".join(chunk[1:]), validate=True) if chunk[0] == _FILE.encode() else None
            for path, chunk in zip(paths, chunks, strict=True)
        }
    except ValueError:
        return None


@dataclass(frozen=True)
class Ssh:
    host: str
    port: int
    user: str
    root: str = ""
    identity: str | None = None
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.host

    def _ssh(self) -> list[str]:
        argv = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", *self.options]
        if self.identity:
            argv += ["-i", self.identity]
        directory = _CONTROL_DIR.get()
        if directory:
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={directory}/%C",
                "-o",
                "ControlPersist=60",
            ]
        return argv

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        script = remote_cat_many([self.root + path for path in paths])
        if self.user != "root":
            script = f"sudo -n sh -c {shq(script)}"
        where = f"{len(paths)} node files on {self.host}"
        result = run([*self._ssh(), "--", f"{self.user}@{self.host}", script], where)
        found = parse_cat_many(paths, result.stdout) if result.returncode == 0 else None
        if found is None:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError(
                f"ssh {self.user}@{self.host}: {detail[-1] if detail else 'cannot read the node files'}"
            )
        return found

    def stage(self, staging_dir: str, files: Mapping[str, bytes]) -> str:
        """mktemp -d on the host as the ssh user and the files into it, in one session: a
        script on its standard input that decodes each file from base64 (no length limit
        of a command line, and no scp that a node's sshd may not offer)."""
        make = f"set -e\nd=$(mktemp -d {shq(staging_dir)}/auditc.XXXXXX)\nprintf '%s\\n' \"$d\"\n"
        files_in = "".join(
            f"base64 -d >\"$d\"/{shq(name)} <<'AUDITC_FILE'\n"
            f"{base64.encodebytes(content).decode()}AUDITC_FILE\n"
            for name, content in sorted(files.items())
        )
        script = make + files_in
        copied = self.run_as_user("sh -s", 120, stdin=script.encode())
        stage = copied.output.strip().splitlines()[0] if copied.output.strip() else ""
        if copied.code != 0 or not stage.startswith(f"{staging_dir.rstrip('/')}/auditc."):
            raise UserError(
                f"ssh {self.user}@{self.host}: cannot copy the node files to {staging_dir}: "
                f"{copied.output.strip()}"
            )
        return stage

    def run_as_user(self, command: str, timeout: float, stdin: bytes | None = None) -> Ran:
        argv = [*self._ssh(), "--", f"{self.user}@{self.host}", command]
        code, out = run_interruptible(argv, timeout, stdin)
        return Ran(code, out.decode("utf-8", "replace"), unreachable=code == 255)

    def run(self, command: str, timeout: float) -> Ran:
        as_root = command if self.user == "root" else f"sudo -n sh -c {shq(command)}"
        return self.run_as_user(as_root, timeout)


@dataclass(frozen=True)
class Local:
    """A host whose files are on this machine, under ``root`` (chroots, tests, auditc run on
    the node itself): no transport, commands run here (as the user auditc runs as)."""

    host: str
    root: str = ""

    @property
    def name(self) -> str:
        return self.host

    def read(self, path: str) -> bytes | None:
        target = Path(self.root + path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"{self.host}: cannot read {target}: {exc.strerror or exc}") from None

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        return {path: self.read(path) for path in paths}

    def stage(self, staging_dir: str, files: Mapping[str, bytes]) -> str:
        base = staging_dir if Path(staging_dir).is_dir() else None
        stage = tempfile.mkdtemp(prefix="auditc.", dir=base)
        for name, content in files.items():
            Path(stage, name).write_bytes(content)
        return stage

    def run(self, command: str, timeout: float) -> Ran:
        code, out = run_interruptible(["sh", "-c", command], timeout)
        return Ran(code, out.decode("utf-8", "replace"))


def remove_stage(shell: NodeShell, stage: str) -> None:
    """Best effort: a temp dir left behind is named in no message and harms nothing."""
    if isinstance(shell, Local):
        shutil.rmtree(stage, ignore_errors=True)
        return
    shell.run(f"rm -rf -- {shq(stage)}", 60)


def run_json(argv: list[str], what: str) -> Any:
    result = run(argv, what)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{' '.join(argv[:4])}: {detail[-1] if detail else 'failed'}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise UserError(f"{' '.join(argv[:4])}: the output is not JSON") from None


class SshHost(Protocol):
    """A control-plane host as a platform's spec block names it (host, ssh port, user)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...


def host_shells(hosts: Sequence[SshHost], access: NodeAccess) -> list[NodeShell]:
    """A shell per host: ssh, or the host's files in place (--local, under --node-root)."""
    if access.local:
        return [Local(h.host, access.root_of(h.host)) for h in hosts]
    return [
        Ssh(h.host, h.port, h.user, access.root_of(h.host), access.identity, access.ssh_options)
        for h in hosts
    ]
