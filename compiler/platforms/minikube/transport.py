"""Reading node files of a minikube profile with `minikube ssh`."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import UserError
from compiler.templates import shq
from compiler.transport import parse_cat_many, remote_cat_many, run


@dataclass(frozen=True)
class MinikubeSsh:
    profile: str

    @property
    def name(self) -> str:
        return f"minikube/{self.profile}"

    def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        # one session; base64 survives the terminal minikube ssh allocates (CRLF)
        script = f"sudo -n sh -c {shq(remote_cat_many(paths))}"
        result = run(["minikube", "ssh", "-p", self.profile, "--", script], f"the node of {self.profile}")
        found = parse_cat_many(paths, result.stdout) if result.returncode == 0 else None
        if found is None:
            raise UserError(f"minikube ssh -p {self.profile}: cannot read the node files")
        return found
