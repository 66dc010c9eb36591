"""Render speed as a user sees it. Prints figures; asserts nothing.

1. single site: `auditc render` of one example spec in a new process, median of 10 runs;
2. fleet: 100 generated sites (copies of the examples under distinct names) rendered by
   one `auditc render DIR` process.
Targets on the 2-core reference machine: single site <= 0.5 s median, 100 sites < 10 s.
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
AUDITC = [sys.executable, "-m", "compiler"]


def _run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*AUDITC, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def single_site(tmp: Path, runs: int = 10) -> list[float]:
    spec = ROOT / "specs" / "prod-east.yaml"
    out = tmp / "single"
    times = []
    for _ in range(runs):
        shutil.rmtree(out, ignore_errors=True)
        times.append(_run(["render", str(spec), "-o", str(out)]))
    return times


def fleet(tmp: Path, count: int = 100) -> float:
    specs = tmp / "fleet-specs"
    shutil.copytree(ROOT / "specs" / "files", specs / "files")
    examples = sorted((ROOT / "specs").glob("*.yaml"))
    for index in range(count):
        source = examples[index % len(examples)]
        text = source.read_text()
        name = next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("name:")
        )
        (specs / f"site-{index:03d}.yaml").write_text(
            text.replace(f"name: {name}", f"name: site-{index:03d}", 1)
        )
    return _run(["render", str(specs), "-o", str(tmp / "fleet-out")])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = single_site(Path(tmp))
        print(
            f"single site, new process each run: median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"
        )
        print(f"100 sites, one process: {fleet(Path(tmp)):.2f} s")


if __name__ == "__main__":
    main()
