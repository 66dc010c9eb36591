"""The ``world`` fixture of the rollout tests (tests/rollout/world.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import standins
from tests.rollout.world import HOSTS, REAL_MANIFEST, Apiserver, World


@pytest.fixture
def world(tmp_path: Path, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    real_kubectl = shutil.which("kubectl")
    if real_kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it)")
    bin_dir = tmp_path / "bin"
    standins.install_cluster(bin_dir)
    world = World(
        tmp_path,
        tmp_path / "site.yaml",
        tmp_path / "nodes",
        tmp_path / "calls.log",
        tmp_path / "cluster",
        tmp_path / "state",
    )
    world.spec = world.respec()
    world.cluster.mkdir()
    for host in HOSTS:
        manifest = world.manifest(host)
        manifest.parent.mkdir(parents=True)
        manifest.write_bytes(REAL_MANIFEST.read_bytes())  # the port is set below
        server = Apiserver(manifest, tls_files)
        text = REAL_MANIFEST.read_text().replace("--secure-port=6443\n", f"--secure-port={server.port}\n")
        manifest.write_text(text)
        world.apiservers[host] = server
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLUSTER", str(world.cluster))
    monkeypatch.setenv("FAKE_APISERVER_CONFIGS", os.pathsep.join(str(world.manifest(h)) for h in HOSTS))
    monkeypatch.setenv("FAKE_LOG", str(world.log))
    monkeypatch.setenv("FAKE_REAL_KUBECTL", real_kubectl)
    monkeypatch.setenv("AUDITC_STATE_DIR", str(world.state))
    monkeypatch.setenv("AUDITC_POLL_INTERVAL", "0.05")
    yield world
    for server in world.apiservers.values():
        server.close()
