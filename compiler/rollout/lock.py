"""One apply per site at a time, from any machine: a coordination.k8s.io Lease.

Every operator's apply talks to the same cluster, so the lock lives there: ``kubectl
create`` of the Lease either makes it or fails with AlreadyExists, atomically. It sits in
kube-system because that namespace exists before Falco's does (the first apply creates
Falco's). The holder names the user, machine and process and when it took the lock; the
lock is released on every exit path, and ``--force-unlock`` deletes a dead holder's.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import secrets
import socket
from dataclasses import dataclass

from compiler.errors import Refusal, UserError
from compiler.live.cluster import Kubectl, kubectl

NAMESPACE = "kube-system"


class Locked(Refusal):
    """Another apply holds the site's lock."""

    def __init__(self, site: str, holder: str, since: str) -> None:
        self.holder, self.since = holder, since
        super().__init__(
            [
                f"another apply of site {site} holds the lock: {holder}, since {since}; nothing was touched",
                "if that apply is dead: auditc apply SPEC --force-unlock "
                f"(Lease {NAMESPACE}/{lease_name(site)})",
            ]
        )


def lease_name(site: str) -> str:
    return f"auditc-apply-{site}"


def holder_identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"


@dataclass
class Lock:
    cluster: Kubectl
    site: str
    holder: str
    held: bool = False

    def acquire(self) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease_name(self.site),
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "auditc"},
            },
            "spec": {"holderIdentity": self.holder, "acquireTime": now},
        }
        made = kubectl(self.cluster, ["create", "-f", "-", "-o", "name"], stdin=json.dumps(lease))
        if made.code == 0:
            self.held = True
            return
        if "AlreadyExists" in made.stderr or "already exists" in made.stderr:
            holder, since = self.current()
            raise Locked(self.site, holder, since)
        raise UserError(
            f"cannot take the apply lock (Lease {NAMESPACE}/{lease_name(self.site)}): {made.reason}"
        )

    def current(self) -> tuple[str, str]:
        """Who holds the lock and since when ("unknown" when it cannot be read)."""
        got = kubectl(self.cluster, ["get", "lease", lease_name(self.site), "-n", NAMESPACE, "-o", "json"])
        try:
            spec = json.loads(got.stdout).get("spec", {}) if got.code == 0 else {}
        except ValueError:
            spec = {}
        return str(spec.get("holderIdentity", "unknown")), str(spec.get("acquireTime", "unknown"))

    def release(self) -> None:
        """Delete the Lease if it is still this apply's (never another holder's)."""
        if not self.held:
            return
        holder, _ = self.current()
        if holder == self.holder:
            kubectl(
                self.cluster,
                ["delete", "lease", lease_name(self.site), "-n", NAMESPACE, "--ignore-not-found"],
            )
        self.held = False


def force_unlock(cluster: Kubectl, site: str) -> str | None:
    """Delete the site's Lease whoever holds it; the holder it had, or None when unlocked."""
    holder, _ = Lock(cluster, site, "").current()
    deleted = kubectl(cluster, ["delete", "lease", lease_name(site), "-n", NAMESPACE, "--ignore-not-found"])
    if deleted.code != 0:
        raise UserError(f"cannot delete Lease {NAMESPACE}/{lease_name(site)}: {deleted.reason}")
    return None if holder == "unknown" else holder
