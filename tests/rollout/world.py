"""The world plan, apply and verify run in: three control-plane hosts as directories holding
the real kubeadm 1.30 kube-apiserver manifest, each with a stand-in apiserver (an HTTPS
/readyz on the port its manifest names, following the documented readiness contract), and
a stand-in kubectl/helm over a state directory (tests/standins.py). Nothing reaches a real
cluster.
"""

from __future__ import annotations

import http.server
import json
import shutil
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
# World.applied: per spec text, the apiserver ports and every file a real apply left
_APPLIED: dict[str, tuple[dict[str, int], dict[str, tuple[bytes, int]]]] = {}
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

    def applied(self) -> None:
        """The world after ``auditc apply --no-verify`` of its spec: applied for real the first
        time this process sees the spec, later restored from a copy of what that apply left
        (the hosts' files, the stand-in cluster, the apply records and the call log), each
        host's manifest pointed at this world's apiserver again."""
        key = self.spec.read_text()
        if key not in _APPLIED:
            result = self.apply(None, "--no-verify")
            assert result.exit_code == 0, result.output
            files = {
                str(path.relative_to(self.tmp)): (path.read_bytes(), path.stat().st_mode & 0o7777)
                for top in (self.nodes, self.cluster, self.state, self.log)
                for path in ([top] if top.is_file() else sorted(top.rglob("*")))
                if path.is_file()
            }
            _APPLIED[key] = ({host: server.port for host, server in self.apiservers.items()}, files)
            return
        ports, files = _APPLIED[key]
        for top in (self.nodes, self.cluster, self.state):
            shutil.rmtree(top, ignore_errors=True)
        for name, (data, mode) in files.items():
            host = name.split("/")[1] if name.startswith("nodes/") else None
            if host in ports:
                old, new = ports[host], self.apiservers[host].port
                data = data.replace(f"--secure-port={old}\n".encode(), f"--secure-port={new}\n".encode())
            path = self.tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)

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
