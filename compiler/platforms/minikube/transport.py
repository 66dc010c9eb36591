"""Reading node files of a minikube profile with `minikube ssh`."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import UserError
from compiler.transport import MISSING, remote_cat, run


@dataclass(frozen=True)
class MinikubeSsh:
    profile: str

    @property
    def name(self) -> str:
        return f"minikube/{self.profile}"

    def read(self, path: str) -> bytes | None:
        result = run(["minikube", "ssh", "-p", self.profile, "--", remote_cat(path, sudo=True)], path)
        if result.returncode != 0:
            raise UserError(f"minikube ssh -p {self.profile}: failed to read {path}")
        out = result.stdout.replace(b"\r\n", b"\n")  # minikube ssh allocates a terminal
        return None if out == MISSING.encode() else out

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        return {path: self.read(path) for path in paths}
