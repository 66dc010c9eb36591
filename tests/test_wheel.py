"""A wheel built from the repo (not an editable install) renders the same bytes:
platform data and templates ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.sites import ROOT, compiled, example_specs


def test_wheel_renders_the_same_bytes_as_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("auditc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "compiler/platforms/kubeadm/platform.yaml" in names
    assert "compiler/platforms/kubeadm/templates/apply.sh.j2" in names
    assert "compiler/platforms/pks/lint-rules.yaml" in names
    assert "compiler/lower/cluster-layer.sh.j2" in names
    assert "compiler/data/versions.yaml" in names
    for part in ("yaml.awk", "args.awk", "static-pod.awk", "bpm.awk"):  # the patch script embeds them
        assert f"compiler/nodepatch/{part}" in names

    site_dir = tmp_path / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site_dir),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(site_dir)}
    probe = subprocess.run(
        [sys.executable, "-c", "import compiler, sys; print(compiler.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(site_dir)), probe.stdout
    result = subprocess.run(
        [sys.executable, "-m", "compiler", "render", *map(str, example_specs()), "-o", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for spec in example_specs():
        site = compiled(spec)
        for artifact in site.artifacts:
            assert (out / site.name / artifact.path).read_bytes() == artifact.content, artifact.path
