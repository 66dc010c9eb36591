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


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj['apiVersion']}/{obj['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"
