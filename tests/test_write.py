"""Writing output/<site>/: atomic swap, stale files removed, a failure loses nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from compiler import write
from compiler.bundle import Artifact
from compiler.write import MANIFEST, compare, with_manifest, write_site


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_lists_every_file_with_its_sha256() -> None:
    artifacts = with_manifest("s", "ab" * 32, [Artifact("b/x.yaml", b"x\n"), Artifact("a.sh", b"y\n", True)])
    assert [a.path for a in artifacts] == ["MANIFEST.json", "a.sh", "b/x.yaml"]
    manifest = json.loads(artifacts[0].content)
    assert manifest["specDigest"] == "sha256:" + "ab" * 32
    assert manifest["files"] == {
        "a.sh": "sha256:" + hashlib.sha256(b"y\n").hexdigest(),
        "b/x.yaml": "sha256:" + hashlib.sha256(b"x\n").hexdigest(),
    }
    assert manifest["compiler"]["name"] == "auditc"


def test_swap_replaces_the_whole_tree(tmp_path: Path) -> None:
    target = tmp_path / "out" / "s"
    write_site(target, [Artifact("a.yaml", b"1\n"), Artifact("old.yaml", b"old\n")], "s")
    changes = write_site(target, [Artifact("a.yaml", b"2\n"), Artifact("b.sh", b"#!/bin/sh\n", True)], "s")
    assert (changes.created, changes.updated, changes.deleted) == (["b.sh"], ["a.yaml"], ["old.yaml"])
    assert _tree(target) == {"a.yaml": b"2\n", "b.sh": b"#!/bin/sh\n"}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["s"], "no staging or old dirs left behind"


def test_unchanged_output_is_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "s"
    artifacts = [Artifact("a.yaml", b"1\n")]
    write_site(target, artifacts, "s")
    before = (target / "a.yaml").stat().st_mtime_ns
    assert not write_site(target, artifacts, "s").any
    assert (target / "a.yaml").stat().st_mtime_ns == before


def test_mode_change_counts_as_an_update(tmp_path: Path) -> None:
    target = tmp_path / "s"
    write_site(target, [Artifact("a.sh", b"x\n")], "s")
    assert compare(target, [Artifact("a.sh", b"x\n", True)], "s").updated == ["a.sh"]


def test_a_failure_while_writing_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "s"
    write_site(target, [Artifact("a.yaml", b"1\n"), Artifact(MANIFEST, b"{}\n")], "s")
    before = _tree(target)
    calls = {"n": 0}
    real = write._write_file

    def failing(path: Path, content: bytes, mode: int) -> os.stat_result:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(path, content, mode)

    monkeypatch.setattr(write, "_write_file", failing)
    with pytest.raises(OSError):
        write.write_site(target, [Artifact("a.yaml", b"2\n"), Artifact("b.yaml", b"3\n")], "s")
    monkeypatch.undo()
    assert _tree(target) == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["s"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_their_mode_and_are_listed_as_they_are_whatever_the_umask(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode is set where the umask took bits away (and only there is it set again), and
    what staging records of each folder and file is their stat as they then are, in place."""
    from compiler import current

    artifacts = [
        Artifact("a/b/run.sh", b"#!/bin/sh\n", executable=True),
        Artifact("a/x.yaml", b"x: 1\n"),
        Artifact(MANIFEST, b"{}\n"),
    ]
    written: dict[str, os.stat_result] = {}
    chmodded: list[int] = []
    fchmod = os.fchmod

    def counted(fd: int, mode: int) -> None:
        chmodded.append(mode)
        fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", counted)
    previous = os.umask(umask)
    try:
        staged = write.stage_site(tmp_path / "out" / "s", artifacts, "s", "r", written)
        write.commit(staged)
    finally:
        os.umask(previous)
    site = tmp_path / "out" / "s"
    assert (site / "a" / "b" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (site / "a" / "x.yaml").stat().st_mode & 0o7777 == 0o644
    assert sorted(written) == ["MANIFEST.json", "a/", "a/b/", "a/b/run.sh", "a/x.yaml"]
    assert current.listed(written) == current.outputs(site)
    modes = [0o755 if a.executable else 0o644 for a in artifacts]
    assert sorted(chmodded) == sorted(m for m in modes if m & umask), "set only where the umask took bits"
