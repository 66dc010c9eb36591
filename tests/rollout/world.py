"""The world plan, apply and verify run in: three control-plane hosts as directories holding
the real kubeadm 1.30 kube-apiserver manifest, each with a stand-in apiserver (an HTTPS
/readyz on the port its manifest names, following the documented readiness contract), and
a stand-in kubectl/helm over a state directory (tests/standins.py). Nothing reaches a real
cluster.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from compiler.cli import app
from tests.paths import DATA
from tests.sites import write_spec

MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"
REAL_MANIFEST = DATA / "kube-apiserver-manifests/1.30.14-kubeadm.yaml"
HOSTS = ["cp-1", "cp-2", "cp-3"]


class Apiserver:
    """/readyz of one host's kube-apiserver: 200, unless ``breaks`` and the manifest carries
    the audit webhook flag (an apiserver that does not come back with the new config)."""

    def __init__(self, manifest: Path, tls: tuple[Path, Path]) -> None:
        self.manifest, self.breaks, self.never_ready = manifest, False, False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                patched = b"--audit-webhook-config-file" in outer.manifest.read_bytes()
                healthy = not outer.never_ready and not (outer.breaks and patched)
                self.send_response(200 if healthy and self.path == "/readyz" else 500)
                self.end_headers()
                self.wfile.write(b"ok" if healthy else b"[-]etcd failed")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    tmp: Path
    spec: Path
    nodes: Path
    log: Path
    cluster: Path
    state: Path
    apiservers: dict[str, Apiserver] = field(default_factory=dict)

    def respec(self, extra: dict[str, Any] | None = None) -> Path:
        """(Re)write the world's spec: its three hosts, label env=lab, ``extra`` merged in."""
        spec: dict[str, Any] = {"platform": {"kubeadm": {"controlPlanes": [{"host": h} for h in HOSTS]}}}
        return write_spec(self.tmp, {**spec, **(extra or {})}, metadata={"labels": {"env": "lab"}})

    def manifest(self, host: str) -> Path:
        return self.nodes / host / MANIFEST

    def node_args(self) -> list[str]:
        return ["--local", "--node-root", f"{self.nodes}/{{host}}"]

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    def plan(self, *args: str) -> Any:
        return self.cli("plan", str(self.spec), *self.node_args(), *args)

    def apply(self, target: Path | None = None, *args: str) -> Any:
        return self.cli("apply", str(target or self.spec), "--yes", *self.node_args(), *args)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(path.relative_to(self.nodes)): path.read_bytes()
            for path in sorted(self.nodes.rglob("*"))
            if path.is_file() and "/var/lib/auditc/backup/" not in f"/{path.relative_to(self.nodes)}/"
        }

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.state / "t").glob("apply-*.json"))]
