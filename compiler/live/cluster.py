"""Cluster objects as the API server returns them, read with kubectl."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from compiler.errors import UserError


@dataclass(frozen=True)
class Kubectl:
    context: str | None = None
    kubeconfig: str | None = None

    def get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The live object for a rendered one, or None when it does not exist."""
        group_version = str(obj["apiVersion"])
        group = group_version.split("/")[0] if "/" in group_version else ""
        version = group_version.split("/")[-1]
        kind = str(obj["kind"])
        resource = f"{kind}.{version}.{group}" if group else kind
        meta = obj.get("metadata", {})
        argv = ["kubectl", "get", f"{resource}/{meta['name']}", "-o", "json", "--ignore-not-found"]
        if meta.get("namespace"):
            argv += ["-n", str(meta["namespace"])]
        if self.context:
            argv += ["--context", self.context]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except FileNotFoundError:
            raise UserError("kubectl is not installed; it is needed to read the live cluster") from None
        if result.returncode != 0 and "doesn't have a resource type" in result.stderr:
            return None  # the kind's CRD is not installed (say Flux is not): the object is absent
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()
            raise UserError(f"kubectl get {resource}/{meta['name']}: {detail[-1] if detail else 'failed'}")
        if not result.stdout.strip():
            return None
        live = json.loads(result.stdout)
        assert isinstance(live, dict)
        return live


@dataclass(frozen=True)
class Clusters:
    """Where a live command reads: the site's cluster (a kubectl context and kubeconfig),
    and for a site whose engine runs in a management cluster, that cluster's context in
    the same kubeconfig (--management-context)."""

    context: str | None = None
    kubeconfig: str | None = None
    management: str | None = None

    def site(self) -> Kubectl:
        return Kubectl(self.context, self.kubeconfig)

    def hub(self) -> Kubectl | None:
        return Kubectl(self.management, self.kubeconfig) if self.management else None


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj['apiVersion']}/{obj['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"


@dataclass(frozen=True)
class Command:
    code: int
    stdout: str
    stderr: str

    @property
    def reason(self) -> str:
        """The last line the command wrote on stderr (kubectl and helm put the cause there)."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {self.code}"


def _call(
    argv: list[str], what: str, stdin: str | None, timeout: float, cwd: str | None, *, tty: bool = True
) -> Command:
    """``tty``: the child may read auditc's own stdin (a kubeconfig's exec plugin that
    asks for a login); without, it reads nothing there (a cloud CLI then never prompts)."""
    closed = None if tty or stdin is not None else subprocess.DEVNULL
    try:
        result = subprocess.run(
            argv,
            input=stdin,
            stdin=closed,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed; it is needed to {what}") from None
    except subprocess.TimeoutExpired:
        return Command(124, "", f"{argv[0]}: no answer within {timeout:.0f} s")
    return Command(result.returncode, result.stdout, result.stderr)


def call(argv: list[str], what: str, *, timeout: float = 120, cwd: str | None = None) -> Command:
    """Any other CLI a plan step runs (a platform's own), output kept; its stdin is closed
    (gcloud asks nothing without a terminal, the aws CLI pages nothing)."""
    return _call(argv, what, None, timeout, cwd, tty=False)


def kubectl(
    cluster: Kubectl,
    args: list[str],
    *,
    stdin: str | None = None,
    timeout: float = 120,
    cwd: str | None = None,
) -> Command:
    """kubectl with the cluster's --context and --kubeconfig."""
    argv = ["kubectl", *args]
    if cluster.context:
        argv += ["--context", cluster.context]
    if cluster.kubeconfig:
        argv += ["--kubeconfig", cluster.kubeconfig]
    return _call(argv, "reach the cluster", stdin, timeout, cwd)


def has_endpoints(cluster: Kubectl, namespace: str, service: str) -> bool:
    """Whether the Service has a ready address (a pod behind it that can take traffic)."""
    got = kubectl(cluster, ["-n", namespace, "get", f"endpoints/{service}", "-o", "json"], timeout=60)
    if got.code != 0:
        return False
    try:
        subsets = json.loads(got.stdout).get("subsets") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(subset, dict) and subset.get("addresses") for subset in subsets)


def helm(cluster: Kubectl, args: list[str], *, timeout: float = 600, cwd: str | None = None) -> Command:
    """helm with the same cluster (helm spells the context --kube-context)."""
    argv = ["helm", *args]
    if cluster.context:
        argv += ["--kube-context", cluster.context]
    if cluster.kubeconfig:
        argv += ["--kubeconfig", cluster.kubeconfig]
    return _call(argv, "install Falco's chart", None, timeout, cwd)


@dataclass(frozen=True)
class Release:
    chart_version: str  # what helm list calls falco-<version>, without the name
    values: Any  # the user-supplied values, as `helm get values -o json` gives them


def helm_release(cluster: Kubectl, name: str, namespace: str, chart: str) -> Release | None:
    """The deployed release ``name``, or None when there is none."""
    listed = helm(cluster, ["list", "-n", namespace, "--filter", f"^{name}$", "-o", "json"], timeout=120)
    if listed.code != 0:
        raise UserError(f"helm list -n {namespace}: {listed.reason}")
    try:
        rows = json.loads(listed.stdout or "[]")
    except ValueError:
        raise UserError("helm list: the output is not JSON") from None
    row = next((r for r in rows if isinstance(r, dict) and r.get("name") == name), None)
    if row is None:
        return None
    version = str(row.get("chart", "")).removeprefix(f"{chart}-")
    got = helm(cluster, ["get", "values", name, "-n", namespace, "-o", "json"], timeout=120)
    if got.code != 0:
        raise UserError(f"helm get values {name}: {got.reason}")
    try:
        values = json.loads(got.stdout or "null")
    except ValueError:
        raise UserError(f"helm get values {name}: the output is not JSON") from None
    return Release(version, values or {})
