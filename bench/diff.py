"""Live diff speed against saved snapshots. Prints figures; asserts nothing.

1. one site: `auditc diff SPEC --live-dir DIR` in a new process, median of 10 runs;
2. 100 sites: one process diffing 100 sites against their snapshots.
Targets on the 2-core reference machine: 0.5 s and 10 s. The snapshots hold what the
real patch script leaves on a node (a kubeadm 1.30 manifest patched, files installed).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"


def _site(tmp: Path, index: int) -> tuple[Path, Path]:
    from compiler.api import compile_site
    from compiler.live.snapshot import Snapshot, save

    specs = tmp / "specs"
    if not (specs / "files").exists():
        shutil.copytree(ROOT / "specs" / "files", specs / "files")
    text = (
        (ROOT / "specs" / "prod-east.yaml")
        .read_text()
        .replace("name: prod-east", f"name: site-{index:03d}", 1)
    )
    spec = specs / f"site-{index:03d}.yaml"
    spec.write_text(text)
    site = compile_site(spec)
    out = tmp / "out" / site.name
    for artifact in site.artifacts:
        (out / artifact.path).parent.mkdir(parents=True, exist_ok=True)
        (out / artifact.path).write_bytes(artifact.content)
    node = tmp / "node" / site.name
    (node / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "tests/data/kube-apiserver-manifests/1.30.14-kubeadm.yaml", node / MANIFEST)
    subprocess.run(
        ["sh", str(out / "node/apiserver-config.patch.sh"), "--root", str(node), "--no-wait"],
        check=True,
        capture_output=True,
    )
    files = [
        "/" + MANIFEST,
        "/etc/kubernetes/audit/audit-policy.yaml",
        "/etc/kubernetes/audit/audit-webhook.kubeconfig",
    ]
    snapshot = Snapshot(site.name)
    for host in ("10.0.1.171", "10.0.1.172", "10.0.1.173"):
        snapshot.nodes[host] = {path: (node / path.lstrip("/")).read_bytes() for path in files}
    snap = tmp / "snap" / site.name
    save(snapshot, snap)
    return spec, snap


def main() -> None:
    from compiler.api import live_diff
    from compiler.transport import NodeAccess

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        spec, snap = _site(tmp, 0)
        times = []
        for _ in range(10):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "compiler", "diff", str(spec), "--live-dir", str(snap)],
                capture_output=True,
                check=False,
            )
            times.append(time.perf_counter() - started)
        print(
            f"one site, new process each run: median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"
        )
        sites = [_site(tmp, i) for i in range(1, 101)]
        started = time.perf_counter()
        for spec, snap in sites:
            live_diff(spec, snapshot_dir=snap, access=NodeAccess())
        print(f"100 sites, one process: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
