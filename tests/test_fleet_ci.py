"""In users' own repositories: the pre-commit hooks (.pre-commit-hooks.yaml) and the check
the composite action runs (action.yml -> scripts/fleet-check.sh), run on a temporary git
repository of site specs, as pre-commit and the action would run them; `gh` is a stand-in
that records what would be posted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sites import ROOT
from tests.tools import yaml12

BIN = Path(sys.executable).parent  # the venv's auditc
GH = """#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_GH_LOG"
while [ $# -gt 0 ]; do
  [ "$1" = --body-file ] && cp "$2" "$FAKE_GH_LOG.body"
  shift
done
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def fleet(tmp_path: Path) -> dict[str, Any]:
    """A fleet repository: two site specs (managed platforms: no files they name), their
    committed output, one commit on main; auditc and the stand-in gh on PATH."""
    repo = tmp_path / "fleet"
    (repo / "specs").mkdir(parents=True)
    for name in ("eks-prod.yaml", "gke-prod.yaml"):
        shutil.copy(ROOT / "specs" / name, repo / "specs" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(GH)
    (bin_dir / "gh").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GH_LOG": str(tmp_path / "gh.log"),
    }
    subprocess.run([BIN / "auditc", "render", "specs", "-o", "output", "-q"], cwd=repo, check=True, env=env)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "fleet")
    return {"repo": repo, "env": env, "log": tmp_path / "gh.log", "base": _git(repo, "rev-parse", "HEAD")}


def _hook(fleet: dict[str, Any], hook_id: str) -> subprocess.CompletedProcess[str]:
    """Run a hook as pre-commit does: its entry, then its args (pass_filenames false)."""
    hooks = {h["id"]: h for h in yaml12.load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks[hook_id]
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    argv = [*hook["entry"].split(), *hook["args"]]
    return subprocess.run(argv, cwd=fleet["repo"], capture_output=True, text=True, env=fleet["env"])


def test_the_hooks_pass_on_a_current_fleet_and_catch_stale_output(fleet: dict[str, Any]) -> None:
    assert _hook(fleet, "auditc-validate").returncode == 0
    assert _hook(fleet, "auditc-render-check").returncode == 0
    spec = fleet["repo"] / "specs/eks-prod.yaml"
    spec.write_text(spec.read_text().replace("env: prod", "env: production"))  # not rendered
    stale = _hook(fleet, "auditc-render-check")
    assert stale.returncode == 1 and "eks-prod" in stale.stdout + stale.stderr
    spec.write_text(spec.read_text().replace("region: eu-west-1", "region: Europe"))
    broken = _hook(fleet, "auditc-validate")
    assert broken.returncode == 2 and "spec.platform.eks.region" in broken.stderr


def test_the_fleet_hook_catches_a_site_the_committed_fleet_objects_miss(fleet: dict[str, Any]) -> None:
    """auditc fleet -o writes the file (only when it changed), --check exits 1 once a site
    comes that it does not list, and the hook runs that check."""
    repo, env = fleet["repo"], fleet["env"]
    gitops = "  gitops: {engine: argocd, repoURL: https://git.example.com/fleet.git}\n"
    for name in ("eks-prod", "gke-prod"):
        spec = repo / "specs" / f"{name}.yaml"
        spec.write_text(spec.read_text() + gitops)

    def auditc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN / "auditc", *args], cwd=repo, capture_output=True, text=True, env=env)

    hooks = {h["id"]: h for h in yaml12.load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    args = hooks["auditc-fleet-check"]["args"]
    assert args[:3] == ["specs", "--engine", "argocd"]
    target = repo / args[args.index("-o") + 1]
    missing = _hook(fleet, "auditc-fleet-check")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    written = auditc("fleet", "specs", "--engine", "argocd", "-o", str(target))
    assert written.returncode == 0 and "wrote" in written.stderr, written.stderr
    (appset,) = [d for d in yaml12.load_all(target.read_text()) if d]
    assert [d["path"] for d in appset["spec"]["generators"][0]["git"]["directories"]] == [
        "output/eks-prod/cluster",
        "output/gke-prod/cluster",
    ]
    before, content = target.stat(), target.read_bytes()
    again = auditc("fleet", "specs", "--engine", "argocd", "-o", str(target))
    assert "is up to date" in again.stderr and target.stat().st_mtime_ns == before.st_mtime_ns
    assert _hook(fleet, "auditc-fleet-check").returncode == 0
    shutil.copy(repo / "specs/eks-prod.yaml", repo / "specs/eks-dr.yaml")
    spec = repo / "specs/eks-dr.yaml"
    spec.write_text(spec.read_text().replace("name: eks-prod", "name: eks-dr"))
    stale = _hook(fleet, "auditc-fleet-check")
    assert stale.returncode == 1 and "is stale" in stale.stderr
    assert target.read_bytes() == content and target.stat().st_mtime_ns == before.st_mtime_ns
    usage = auditc("fleet", "specs", "--engine", "argocd", "--check")
    assert usage.returncode == 2 and "give -o FILE" in usage.stderr


def _check(fleet: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "scripts/fleet-check.sh")],
        cwd=fleet["repo"],
        capture_output=True,
        text=True,
        env={**fleet["env"], "BASE": fleet["base"], "PR": "7", **env},
    )


def test_the_action_posts_the_review_and_keeps_the_exit_codes(fleet: dict[str, Any]) -> None:
    repo = fleet["repo"]
    for name in ("eks-prod.yaml", "gke-prod.yaml"):  # a change made alike in both, rendered
        spec = repo / "specs" / name
        spec.write_text(spec.read_text().replace("env: prod", "env: production"))
    subprocess.run([BIN / "auditc", "render", "specs", "-o", "output", "-q"], cwd=repo, check=True)
    changed = _check(fleet)
    assert changed.returncode == 0, changed.stderr  # differences are the review, not a failure
    posted = fleet["log"].read_text().splitlines()
    assert posted[0].startswith("pr comment 7 --body-file ") and posted[0].endswith(" --edit-last")
    body = Path(str(fleet["log"]) + ".body").read_text()
    assert "2 site(s) changed" in body and "env: production" in body
    assert not (repo / "review.md").exists(), "nothing left in the checkout"

    # (stale output: exit 1, as the render-check hook above)
    spec = repo / "specs/eks-prod.yaml"
    spec.write_text(spec.read_text().replace("region: eu-west-1", "region: Europe"))
    fleet["log"].unlink()
    broken = _check(fleet)
    assert broken.returncode == 2
    assert "spec.platform.eks.region" in broken.stderr
    assert fleet["log"].read_text().startswith("pr comment 7"), "the review is still posted"
    body = Path(str(fleet["log"]) + ".body").read_text()
    assert "eks-prod" in body and "spec.platform.eks.region" in body, body


def test_the_action_runs_the_script_of_its_own_version() -> None:
    action = yaml12.load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = [s.get("run", "") for s in action["runs"]["steps"]]
    assert any('pip install --quiet "$GITHUB_ACTION_PATH"' in s for s in steps), (
        "auditc pinned to the action's ref"
    )
    assert any('sh "$GITHUB_ACTION_PATH/scripts/fleet-check.sh"' in s for s in steps)
    subprocess.run(["shellcheck", str(ROOT / "scripts/fleet-check.sh")], check=True)
