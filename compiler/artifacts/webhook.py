"""node/audit-webhook.kubeconfig: how kube-apiserver reaches the Falco receiver."""

from __future__ import annotations

import base64
from typing import Any

from compiler.resolve import Resolved


def webhook_kubeconfig(resolved: Resolved) -> dict[str, Any]:
    tls = resolved.site.spec.falco.receiver.tls
    cluster: dict[str, Any] = {"server": resolved.receiver.url}
    if tls.enabled and tls.ca_file:
        cluster["certificate-authority-data"] = base64.b64encode(resolved.files[tls.ca_file]).decode("ascii")
    if tls.enabled and tls.insecure_skip_verify:
        cluster["insecure-skip-tls-verify"] = True
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "falco", "cluster": cluster}],
        # the receiver does not authenticate clients; the user entry exists so the context is complete
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "falco", "context": {"cluster": "falco", "user": "kube-apiserver"}}],
        "current-context": "falco",
        "preferences": {},
    }
