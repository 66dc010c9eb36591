"""Fleet render speed (issue 13). Prints figures and ratios; asserts nothing.

For N copies of a plain kubeadm site (prod-east's shape under N names), each as a user
runs it (a new process): a full render into an empty output root (default --jobs, and
with -j 1), a render with nothing changed right after it (the render cache reads and
hashes the few files written in the clock tick of the render's stamp, too new to trust by
their stat) and once more (the cache trusts every stat), one with one spec changed, `cp
-r` of the same output (the floor: writing the bytes), and, when `kapitan` is installed
(the optional `bench` extra), Kapitan compiling the same artifacts as bare templates.
Then one site into a new output root, the median of 5. Peak RSS is that of the full
render (itself or a worker, from wait4).
File creation on ext4 varies several-fold over minutes: the kernel scans past inodes
deleted less than 60 s (up to 300 s) ago, so a run right after another, or after the
rm -rf of a large output, spends most of its time there; compare the ratio to cp -r,
measured alongside, or put the fleet on tmpfs (TMPDIR=/dev/shm) to see auditc's own cost.

    python bench/fleet.py [N ...] [--repeat R]     (default: 1 100 1000, R 1)

With --repeat R the full render and `cp -r` are each taken R times in turns, and the
medians are shown (the ratio is theirs), with each one's range on a line below: a figure
taken once on a shared host can be a slow spell's.

Targets (issue 13, the 2-core reference machine): 1,000 sites <= 2.5 s and <= 5x cp -r,
<= 150 MB; nothing changed <= 0.5 s; one spec changed among 1,000 <= 0.6 s; one site
<= 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDITC = [sys.executable, "-m", "compiler"]
TEMPLATE = ROOT / "specs" / "prod-east.yaml"


def _timed(argv: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Seconds, and the peak RSS in MB of that command (itself or a worker it waited for)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({child.returncode}): {errors.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def _fleet(directory: Path, count: int) -> Path:
    specs = directory / "specs"
    shutil.copytree(ROOT / "specs" / "files", specs / "files")
    text = TEMPLATE.read_text()
    for index in range(count):
        name = f"site-{index:04d}"
        (specs / f"{name}.yaml").write_text(text.replace("name: prod-east", f"name: {name}", 1))
    return specs


def _kapitan(directory: Path, output: Path) -> float | None:
    """Kapitan compiling the rendered files as bare templates (no validation at all), when
    it is installed: what a template compiler costs for the same bytes."""
    kapitan = shutil.which("kapitan")
    if kapitan is None:
        return None
    inventory = directory / "kapitan"
    (inventory / "inventory" / "targets").mkdir(parents=True)
    (inventory / "inventory" / "classes").mkdir()
    (inventory / "templates").mkdir()
    for site in sorted(p for p in output.iterdir() if p.is_dir()):
        for path in sorted(site.rglob("*")):
            if path.is_file():
                target = inventory / "templates" / path.relative_to(output).as_posix().replace("/", "__")
                # a bare template: the bytes as they are (shell's ${#x} is Jinja2 syntax)
                target.write_bytes(b"{% raw %}" + path.read_bytes() + b"{% endraw %}")
        (inventory / "inventory" / "targets" / f"{site.name}.yml").write_text(
            f"parameters:\n  kapitan:\n    vars:\n      target: {site.name}\n    compile:\n"
            "      - output_path: .\n        input_type: jinja2\n"
            f"        input_paths: [templates/{site.name}__*]\n"
        )
    started = time.perf_counter()
    done = subprocess.run([kapitan, "compile"], capture_output=True, text=True, cwd=inventory)
    if done.returncode != 0:
        raise SystemExit(f"kapitan compile failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def main(counts: list[int], repeat: int = 1) -> None:
    columns = [("sites", 6), ("render", 9), ("-j 1", 8), ("unchanged", 10), ("again", 8), ("1 changed", 10)]
    columns += [("cp -r", 8), ("ratio", 7), ("peak RSS", 9), ("kapitan", 9), ("vs kapitan", 11)]
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="auditc-fleet-") as tmp:
            directory = Path(tmp)
            specs = _fleet(directory, count)
            output = directory / "output"
            render = [*AUDITC, "render", str(specs), "-o", str(output), "-q"]
            fulls: list[float] = []
            copies: list[float] = []
            rss = 0.0
            for _ in range(repeat):  # in turns: a slow spell slows both
                os.sync()  # writes still in flight from setting up slow the next ones down
                took, peak = _timed(render)
                fulls.append(took)
                rss = max(rss, peak)
                os.sync()
                copies.append(_timed(["cp", "-r", str(output), str(directory / "copy")])[0])
                shutil.rmtree(directory / "copy")
                shutil.rmtree(output)
            full, copy = statistics.median(fulls), statistics.median(copies)
            os.sync()
            serial, _ = _timed([*render, "-j", "1"])
            os.sync()
            verified, _ = _timed(render)  # reads what the render before wrote in its stamp's tick
            again, _ = _timed(render)
            first = specs / "site-0000.yaml"
            first.write_text(first.read_text().replace("env: prod", "env: production", 1))
            one, _ = _timed(render)
            kapitan = _kapitan(directory, output)
            shown = f"{kapitan:8.2f}s" if kapitan is not None else "  (none)"
            versus = f"{full / kapitan:10.2f}x" if kapitan else "          -"
            ratio = full / copy if copy else float("inf")
            print(
                f"{count:>6} {full:8.2f}s {serial:7.2f}s {verified:9.2f}s {again:7.2f}s {one:9.2f}s"
                f" {copy:7.2f}s {ratio:6.1f}x {rss:7.0f}MB {shown} {versus}"
            )
            if repeat > 1:
                print(
                    f"{'':>6}   render {min(fulls):.2f} to {max(fulls):.2f}s, cp -r {min(copies):.2f} to"
                    f" {max(copies):.2f}s, medians of {repeat}"
                )
    with tempfile.TemporaryDirectory(prefix="auditc-one-") as tmp:
        times = sorted(
            _timed([*AUDITC, "render", str(TEMPLATE), "-o", str(Path(tmp) / str(n)), "-q"])[0]
            for n in range(5)
        )
        print(f"one site, a new process and a new output root: median {times[2]:.2f}s of 5")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("counts", metavar="N", type=int, nargs="*", help="fleet sizes (default 1 100 1000)")
    parser.add_argument("--repeat", metavar="R", type=int, default=1, help="full renders in the median")
    arguments = parser.parse_args()
    if arguments.repeat < 1 or any(n < 1 for n in arguments.counts):
        parser.error("N and R are at least 1")
    main(arguments.counts or [1, 100, 1000], arguments.repeat)
