"""apply over ssh: the real OpenSSH server on 127.0.0.1 (the suite's sshd fixture), each
host a directory on it, reached through a ProxyCommand relay that can take a host down."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.rollout.world import HOSTS, MANIFEST, World
from tests.tools import ssh_options

RELAY = r"""
import os, socket, sys, threading, time
host, port, down = sys.argv[1], int(sys.argv[2]), sys.argv[3]
marker = os.path.join(down, host)
if os.path.exists(marker):
    sys.stderr.write(f"ssh: connect to host {host} port {port}: Connection refused\n")
    sys.exit(1)
connection = socket.create_connection(("127.0.0.1", port))
with open(os.path.join(down, "connections"), "a") as seen:
    seen.write(host + "\n")
def upstream():
    while data := os.read(0, 65536):
        connection.sendall(data)
    connection.shutdown(socket.SHUT_WR)
def unplug():  # a host going down takes its open connections with it
    while not os.path.exists(marker):
        time.sleep(0.05)
    os._exit(1)
threading.Thread(target=upstream, daemon=True).start()
threading.Thread(target=unplug, daemon=True).start()
while data := connection.recv(65536):
    os.write(1, data)
"""


def _ssh_world(world: World, sshd: tuple[int, Path]) -> Path:
    """Every host name reaches the test sshd (a ProxyCommand relay); a host whose name is
    in the returned directory is down (the relay refuses it, as a dead host would)."""
    port, key = sshd
    down = world.tmp / "down"
    down.mkdir()
    relay = world.tmp / "relay.py"
    relay.write_text(RELAY)
    hosts = [{"host": host, "port": port, "user": "root"} for host in HOSTS]
    world.respec({"platform": {"kubeadm": {"controlPlanes": hosts}}})
    world.node_args = lambda: [  # type: ignore[method-assign]
        "--node-root",
        f"{world.nodes}/{{host}}",
        *ssh_options(key),
        "--ssh-option",
        f"ProxyCommand={sys.executable} {relay} %h %p {down}",
    ]
    return down


def test_apply_over_ssh_then_plan_is_empty(world: World, sshd: tuple[int, Path]) -> None:
    down = _ssh_world(world, sshd)
    planned = world.plan()
    assert planned.exit_code == 1, planned.output
    # one ssh connection per host for the whole command (the reads are sessions over it)
    assert sorted((down / "connections").read_text().split()) == HOSTS
    result = world.apply()
    assert result.exit_code == 0, result.output
    assert [h["outcome"] for h in world.records()[-1]["hosts"]] == ["patched"] * 3
    again = world.plan()
    assert again.exit_code == 0, again.output


def test_a_host_unreachable_mid_rollout_stops_it_cleanly(world: World, sshd: tuple[int, Path]) -> None:
    """cp-2 goes down while cp-1 is being patched (its apiserver stand-in pulls the plug when
    it first sees cp-1's new manifest): cp-1 patched, cp-2 and cp-3 untouched, exit 1."""
    down = _ssh_world(world, sshd)
    cp1 = world.apiservers["cp-1"]
    handler = cp1.server.RequestHandlerClass
    original_get = handler.do_GET  # type: ignore[attr-defined]

    def do_get(self: Any) -> None:
        if b"--audit-webhook-config-file" in cp1.manifest.read_bytes():
            (down / "cp-2").touch()
        original_get(self)

    handler.do_GET = do_get  # type: ignore[attr-defined]
    before = world.snapshot()
    result = world.apply()
    assert result.exit_code == 1, result.output
    after = world.snapshot()
    assert after[f"cp-1/{MANIFEST}"] != before[f"cp-1/{MANIFEST}"]
    for host in ("cp-2", "cp-3"):
        assert {k: v for k, v in after.items() if k.startswith(host)} == {
            k: v for k, v in before.items() if k.startswith(host)
        }
    assert "  unreachable  cp-2:" in result.stdout and "nothing was changed" in result.stdout
    assert "  untouched    cp-3" in result.stdout
    assert [h["outcome"] for h in world.records()[-1]["hosts"]] == ["patched", "unreachable"]
