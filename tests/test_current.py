"""The render cache (compiler.current): a site is skipped only when nothing that decides
its output changed, and every input that must invalidate it does."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiler import api, current, write
from compiler.cli import app
from compiler.errors import Location
from tests.sites import ROOT

# the examples these tests edit, with the bases and files they name: enough sites for
# the parallel workers (api.PARALLEL_FROM), fewer than all to keep the tests quick
ALL = {"prod-east", "branch-office", "edge-tls", "eks-prod", "gke-prod", "k3s-edge", "legacy-lab", "aks-prod"}


def _copy_specs(target: Path) -> Path:
    shutil.copytree(
        ROOT / "specs",
        target,
        ignore=lambda d, names: [
            n for n in names if n.endswith(".yaml") and Path(d) == ROOT / "specs" and n[:-5] not in ALL
        ],
    )
    return target


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A copy of the example specs (with their bases and files), rendered once."""
    _copy_specs(tmp_path / "specs")
    _render(tmp_path)
    return tmp_path


def _render(root: Path, specs: Path | None = None, **options: object) -> set[str]:
    """Render ``specs`` (default root/specs) into root/out; the sites that were compiled."""
    result = api.render([specs or root / "specs"], root / "out", **options)  # type: ignore[arg-type]
    return {site.name for site in result.sites if not site.current}


def _tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".auditc-cache" not in p.parts
    }


def _fresh(root: Path) -> dict[str, bytes]:
    """What a render without the cache writes, into a new directory."""
    api.render([root / "specs"], root / "fresh", cache=False)
    return _tree(root / "fresh")


def test_nothing_changed_compiles_nothing_and_writes_nothing(fleet: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (fleet / "out").glob("[!.]*/**/*")}
    assert _render(fleet) == set()
    assert {p: p.stat().st_mtime_ns for p in (fleet / "out").glob("[!.]*/**/*")} == before
    assert (fleet / "out" / ".auditc-cache" / ".gitignore").read_text() == "*\n"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _same_size_edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] = ord("#") if data[-2] != ord("#") else ord("!")
    path.write_bytes(bytes(data))


RETARGET = "retarget"


# (what changes, how, the sites that must be compiled again)
CASES: list[tuple[str, Callable[[Path], None], set[str]]] = [
    ("the spec", lambda r: _edit(r / "specs/prod-east.yaml", "# A modern", "# A new"), {"prod-east"}),
    (
        "a named file (through a base, too)",
        lambda r: _edit(r / "specs/files/prod-rules.yaml", "\n", "\n# edited\n"),
        {"prod-east", "branch-office"},
    ),
    (
        "a base",
        lambda r: _edit(r / "specs/bases/corp-kubeadm.yaml", "org: corp", "org: corp2"),
        {"branch-office"},
    ),
    (
        "an output file edited, same size, at once",
        lambda r: _same_size_edit(r / "out/edge-tls/cluster/namespace.yaml"),
        {"edge-tls"},
    ),
    ("an output file deleted", lambda r: (r / "out/eks-prod/helm/falco-values.yaml").unlink(), {"eks-prod"}),
    (
        "a file added to an output",
        lambda r: (r / "out/gke-prod/cluster/extra.yaml").write_text("x: 1\n"),
        {"gke-prod"},
    ),
    ("an output folder replaced", lambda r: shutil.rmtree(r / "out/k3s-edge/node"), {"k3s-edge"}),
    (RETARGET, lambda r: None, {"prod-east", "branch-office"}),
]


@pytest.mark.parametrize(("what", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_input_that_decides_the_output_invalidates_its_sites(
    tmp_path: Path, what: str, change: Callable[[Path], None], expected: set[str]
) -> None:
    _copy_specs(tmp_path / "specs")
    rules = tmp_path / "specs/files/prod-rules.yaml"
    if what == RETARGET:  # the named file is a symlink; it comes to point at an identical copy
        for name in ("a", "b"):
            shutil.copy(rules, rules.with_name(f"rules-{name}.yaml"))
        rules.unlink()
        rules.symlink_to("rules-a.yaml")
    _render(tmp_path)
    if what == RETARGET:
        rules.unlink()
        rules.symlink_to("rules-b.yaml")
    change(tmp_path)
    assert _render(tmp_path) == expected
    assert _tree(tmp_path / "out") == _fresh(tmp_path)
    assert _render(tmp_path) == set(), "and then it is current"


def test_an_edit_that_keeps_the_timestamps_is_found_while_they_are_recent(fleet: Path) -> None:
    """A same-size edit whose mtime is put back: within RACY_NS of the record the content is
    read (it is found); later the ctime, which no one can put back, still shows it."""
    path = fleet / "out/prod-east/helm/falco-values.yaml"
    stamp = path.stat()
    _same_size_edit(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert _render(fleet) == {"prod-east"}


def test_a_ctime_change_alone_invalidates(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(current, "RACY_NS", 0)  # no content reading: the stat decides
    path = fleet / "out/prod-east/helm/falco-values.yaml"
    stamp = path.stat()
    _same_size_edit(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_mtime_ns == stamp.st_mtime_ns and path.stat().st_size == stamp.st_size
    assert _render(fleet) == {"prod-east"}


def _reads(monkeypatch: pytest.MonkeyPatch, out: Path) -> list[str]:
    """The output files the cache reads and hashes from now on (not trusting their stat)."""
    read: list[str] = []
    digest = current._digest

    def counted(path: str) -> str | None:
        if Path(path).is_relative_to(out):
            read.append(Path(path).relative_to(out).as_posix())
        return digest(path)

    monkeypatch.setattr(current, "_digest", counted)
    return read


def _stamped(monkeypatch: pytest.MonkeyPatch, clock: Callable[[tuple[int, int]], tuple[int, int]]) -> None:
    stamp = current.Cache.stamp

    def shifted(self: current.Cache) -> tuple[int, int] | None:
        found = stamp(self)
        return None if found is None else clock(found)

    monkeypatch.setattr(current.Cache, "stamp", shifted)


def test_files_written_before_the_stamp_are_trusted_by_their_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a render, what it wrote before the file system's clock was read (every
    file, once a tick has passed) is not read again; an edit to one is still found."""
    import time

    _copy_specs(tmp_path / "specs")
    read_clock = current.Cache.stamp

    def later(self: current.Cache) -> tuple[int, int] | None:
        time.sleep(0.05)  # longer than a clock tick: every file staged is older
        return read_clock(self)

    monkeypatch.setattr(current.Cache, "stamp", later)
    _render(tmp_path)
    entries = current.Cache(tmp_path / "out").entries.values()
    assert all(entry.digests == {} for entry in entries), "no digest kept that is never read"
    reads = _reads(monkeypatch, tmp_path / "out")
    assert _render(tmp_path) == set()
    assert reads == []
    path = tmp_path / "out/prod-east/helm/falco-values.yaml"
    stamp = path.stat()
    _same_size_edit(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # only the ctime shows it
    assert _render(tmp_path) == {"prod-east"}


@pytest.mark.parametrize("clock", ["the same tick", "another device"])
def test_files_not_older_than_the_stamp_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    """A file written in the tick the stamp was read in could be edited without a new
    timestamp: it is read and hashed next time. A stamp of another file system proves
    nothing: every file the render wrote is read."""
    _copy_specs(tmp_path / "specs")
    if clock == "the same tick":
        _stamped(monkeypatch, lambda found: (0, found[1]))  # as if nothing were older than it
    else:
        _stamped(monkeypatch, lambda found: (found[0] + 10**12, found[1] + 1))
    _render(tmp_path)
    reads = _reads(monkeypatch, tmp_path / "out")
    assert _render(tmp_path) == set()
    written = {p for p in _tree(tmp_path / "out") if p.split("/")[0] in ALL}
    assert set(reads) == written


def test_a_new_output_that_cannot_be_put_in_place_is_left_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp makes the cache folder before any site is put in place: when none can
    be, the output the render made is removed with it."""
    from compiler import write

    def refused(staged: write.Staged) -> None:
        raise PermissionError(13, "Permission denied", str(staged.target))

    _copy_specs(tmp_path / "specs")
    monkeypatch.setattr(write, "commit", refused)
    with pytest.raises(api.UserError):
        _render(tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_staged_site_that_cannot_be_listed_is_an_unwritable_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """Listing what a worker staged (the stat of each folder as it is made) can fail (too
    many open files, say): the same one error naming the output, with or without workers
    (it was a bug report with them), and no staging folder left behind."""
    make = write._make_folders

    def failing(base: str, folder: str, written: dict[str, os.stat_result]) -> None:
        if folder == "helm":
            raise OSError(24, "Too many open files", f"{base}/{folder}")
        make(base, folder, written)

    _copy_specs(tmp_path / "specs")
    monkeypatch.setattr(write, "_make_folders", failing)  # the forked workers inherit it
    with pytest.raises(api.UserError) as raised:
        _render(tmp_path, jobs=jobs)
    assert [(d.message, d.location) for d in raised.value.diagnostics] == [
        ("cannot write output: Too many open files", Location(str(tmp_path / "out")))
    ]
    assert not (tmp_path / "out").exists()


def test_another_compiler_invalidates_every_site(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(current, "compiler_id", lambda: "another build")
    assert _render(fleet) == ALL


@pytest.mark.parametrize("name", [".", "a", "a/b", "../a", "./a/../b", "/abs/x", "a//b/"])
def test_absolute_names_a_path_as_pathlib_does(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache's keys and inputs are named by ``current.absolute``: the names pathlib gave
    them before (an entry recorded either way is found)."""
    monkeypatch.chdir(tmp_path)
    assert current.absolute(Path(name)) == str(Path(name).absolute())
    monkeypatch.chdir("/")
    assert current.absolute(Path(name)) == str(Path(name).absolute())


def test_the_compiler_id_follows_the_package_files(tmp_path: Path) -> None:
    """A copy of the package with one byte changed has another id (a new process each)."""
    package = tmp_path / "compiler"
    shutil.copytree(ROOT / "compiler", package, ignore=shutil.ignore_patterns("__pycache__"))
    program = "from compiler import current; print(current.compiler_id())"

    def compiler_id() -> str:
        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        return subprocess.run(
            [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout

    first = compiler_id()
    assert compiler_id() == first
    _edit(package / "data" / "live-ignore.yaml", "\n", "\n# edited\n")
    assert compiler_id() != first


def test_other_files_roots_or_another_name_for_the_specs_invalidate(fleet: Path) -> None:
    assert _render(fleet, roots=(fleet,)) == ALL
    assert _render(fleet, roots=(fleet,)) == set()
    assert _render(fleet, fleet / "." / "specs") == ALL  # the warnings name the spec as given


def test_check_reads_the_cache_and_writes_none(tmp_path: Path) -> None:
    _copy_specs(tmp_path / "specs")
    for site in ALL:
        shutil.copytree(ROOT / "output" / site, tmp_path / "out" / site)
    assert _render(tmp_path, check=True) == ALL
    assert not (tmp_path / "out" / ".auditc-cache").exists()
    _render(tmp_path)
    assert _render(tmp_path, check=True) == set()
    _same_size_edit(tmp_path / "out/legacy-lab/node/audit-policy.yaml")
    result = api.render([tmp_path / "specs"], tmp_path / "out", check=True)
    assert [c.site for c in result.changes if c.any] == ["legacy-lab"]


def test_a_damaged_cache_is_ignored(fleet: Path) -> None:
    (fleet / "out" / ".auditc-cache" / "sites.json").write_text('{"format": 1, "compiler": 3, "sites": [')
    assert _render(fleet) == ALL
    (fleet / "out" / ".auditc-cache" / "sites.json").write_text('{"format": 1, "sites": {"x": 1}}')
    assert _render(fleet) == ALL


def test_warnings_from_the_cache_read_as_when_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_specs(tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    compiled = runner.invoke(app, ["render", "specs", "-o", "out"])
    cached = runner.invoke(app, ["render", "specs", "-o", "out"])
    assert compiled.exit_code == cached.exit_code == 0
    assert f"({len(ALL)} not compiled: inputs and output as the render cache recorded)" in cached.stderr
    assert compiled.stderr.splitlines()[:-1] == cached.stderr.splitlines()[:-1]
    uncached = runner.invoke(app, ["render", "specs", "-o", "out", "--no-cache"])
    assert uncached.exit_code == 0 and "not compiled" not in uncached.stderr
    assert uncached.stderr.splitlines()[:-1] == compiled.stderr.splitlines()[:-1]
    assert "warning[AUD005]" in cached.stderr


def test_nothing_changed_imports_neither_pydantic_nor_jinja2(fleet: Path) -> None:
    """As a user runs it: the command line, its option parsing and the cache check."""
    argv = [sys.executable, "-X", "importtime", "-m", "compiler", "render", str(fleet / "specs")]
    done = subprocess.run(
        [*argv, "-o", str(fleet / "out")], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = {
        line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    assert "compiler.current" in imported and "typer" in imported
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core", "jinja2", "ruamel")}
    assert f"({len(ALL)} not compiled" in done.stderr


def test_parallel_and_serial_renders_write_the_same_bytes(tmp_path: Path) -> None:
    _copy_specs(tmp_path / "specs")
    assert len(ALL) >= api.PARALLEL_FROM, "enough sites for the workers to run"
    serial = api.render([tmp_path / "specs"], tmp_path / "one", jobs=1, cache=False)
    parallel = api.render([tmp_path / "specs"], tmp_path / "three", jobs=3, cache=False)
    assert [s.name for s in serial.sites] == [s.name for s in parallel.sites]
    assert [s.warnings for s in serial.sites] == [s.warnings for s in parallel.sites]
    expected = {path: data for path, data in _tree(ROOT / "output").items() if path.split("/")[0] in ALL}
    assert _tree(tmp_path / "one") == _tree(tmp_path / "three") == expected


def test_entries_the_workers_prepare_read_back_as_those_made_here(tmp_path: Path) -> None:
    """The cache entries a fleet's workers prepare are those this process makes compiling
    alone (but for the files' stat), and a cache of entries kept and entries recorded now
    reads back whole: the next render compiles nothing."""
    _copy_specs(tmp_path / "specs")
    api.render([tmp_path / "specs"], tmp_path / "one", jobs=1)
    api.render([tmp_path / "specs"], tmp_path / "three", jobs=3)

    def entries(out: str) -> dict[str, object]:
        found = current.Cache(tmp_path / out).entries
        return {
            key: (e.site, e.display, e.roots, e.inputs, sorted(e.outputs), e.warnings)
            for key, e in found.items()
        }

    assert entries("one") == entries("three") and len(entries("one")) == len(ALL)
    (tmp_path / "specs" / "edge-tls.yaml").write_text(
        (tmp_path / "specs" / "edge-tls.yaml").read_text() + "\n"
    )
    assert _render(tmp_path, jobs=3) == ALL  # a new output: all recorded now
    assert _render(tmp_path, jobs=3) == set()
    (tmp_path / "specs" / "edge-tls.yaml").write_text(
        (tmp_path / "specs" / "edge-tls.yaml").read_text() + "\n"
    )
    assert _render(tmp_path, jobs=3) == {"edge-tls"}  # one recorded now, the rest kept
    assert _render(tmp_path, jobs=3) == set()
    assert entries("out") == entries("one") | {
        key: value for key, value in entries("out").items() if "edge-tls" in key
    }


@pytest.mark.parametrize("jobs", [1, 3])
def test_what_workers_list_as_staged_is_the_output_as_it_is_in_place(tmp_path: Path, jobs: int) -> None:
    """Each site's files are listed where they were staged (in the worker), not after the
    rename into place: the record must be the stat of the files as they are now, or the
    next render would compile everything again (or, worse, trust the wrong stat)."""
    _copy_specs(tmp_path / "specs")
    _render(tmp_path, jobs=jobs)
    (tmp_path / "out" / current.DIRECTORY / current.FILE).unlink()
    for site in sorted(ALL)[::2]:  # these are replaced, their old folder removed; the rest stay
        (tmp_path / "out" / site / "cluster" / "kustomization.yaml").write_text("edited\n")
    assert _render(tmp_path, jobs=jobs) == ALL
    entries = current.Cache(tmp_path / "out").entries
    assert {e.site for e in entries.values()} == ALL
    for entry in entries.values():
        assert entry.outputs == current.outputs(tmp_path / "out" / entry.site), entry.site


class _Sends:
    """A worker's pipe that counts the specs sent down it."""

    def __init__(self) -> None:
        self.specs = 0

    def send(self, jobs: list[object]) -> None:
        self.specs += len(jobs)


def test_a_worker_with_room_is_given_specs_while_another_holds_its_fill() -> None:
    """The worker with fewest specs still to compile is given more, among those with room:
    one holding its fill of outcomes not yet taken (they come after a slow spec) must not
    keep an idle one waiting."""
    compiler = api._Compiler((), 3, None)
    workers = [api._Worker(None, _Sends()) for _ in range(3)]  # type: ignore[arg-type]
    workers[0].held = api._HELD  # all back, behind the wanted spec
    workers[1].queued = workers[1].held = 2  # compiling the wanted spec
    compiler.workers = workers
    compiler.waiting = collections.deque(Path(str(index)) for index in range(100))
    compiler._fill()
    sent = [worker.conn.specs for worker in workers]  # type: ignore[attr-defined]
    assert sent[0] == 0 and sent[2] == api._QUEUED and sent[1] > 0, sent
    assert all(w.held <= compiler.limit and w.queued <= api._QUEUED for w in workers)


def test_specs_sent_to_workers_in_batches_come_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet's specs go to the workers several at a time (a task's round trip costs the
    render's one process): the same sites, warnings and bytes as one by one, here."""
    from multiprocessing.connection import Connection

    sent: list[int] = []
    real = Connection.send

    def spy(self: Connection, jobs: object) -> None:
        if isinstance(jobs, list):
            sent.append(len(jobs))  # a batch this process sent (the workers' copies are theirs)
        real(self, jobs)

    specs = _copy_specs(tmp_path / "specs")
    text = (specs / "prod-east.yaml").read_text()
    for index in range(32):  # enough for batches of several, and the smaller ones at the end
        (specs / f"copy-{index:02d}.yaml").write_text(
            text.replace("name: prod-east", f"name: copy-{index:02d}")
        )
    monkeypatch.setattr(Connection, "send", spy)
    monkeypatch.setattr(api, "_QUEUED", 4)  # 2 workers: 8 sent one by one, then up to 4 at a time
    serial = api.render([specs], tmp_path / "one", jobs=1, cache=False)
    batched = api.render([specs], tmp_path / "two", jobs=2, cache=False)
    assert sum(sent) == len(ALL) + 32 and sent[:8] == [1] * 8 and max(sent) == 4, sent
    assert sent[-1] == 1, "the last ones one by one: the workers finish together"
    assert [(s.name, s.warnings) for s in serial.sites] == [(s.name, s.warnings) for s in batched.sites]
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_a_worker_goes_on_while_the_other_compiles_a_slow_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes are read from whichever worker sends them, and a worker back is given more
    while the spec wanted next is still compiling: the first spec here is held until the
    other worker has compiled 40 (more than it is given ahead, ``_QUEUED``), which it
    could not while the render waited on the slow one's pipe alone."""
    specs = _copy_specs(tmp_path / "specs")
    text = (specs / "prod-east.yaml").read_text()
    for index in range(60):
        (specs / f"copy-{index:02d}.yaml").write_text(
            text.replace("name: prod-east", f"name: copy-{index:02d}")
        )
    compiled = tmp_path / "compiled"  # one file per spec compiled, by whichever worker
    compiled.mkdir()
    first = api.find_specs([specs])[0]
    real = api._compile_one

    def compile_one(job: tuple[Path, tuple[Path, ...], api.Into | None]) -> object:
        if job[0] == first:  # held until the others are far ahead, or 20 s passed
            for _ in range(2000):
                if len(list(compiled.iterdir())) >= 40:
                    break
                time.sleep(0.01)
            (tmp_path / "ahead").write_text(str(len(list(compiled.iterdir()))))
        outcome = real(job)
        (compiled / job[0].name).touch()
        return outcome

    monkeypatch.setattr(api, "_compile_one", compile_one)
    result = api.render([specs], tmp_path / "out", jobs=2, cache=False)
    assert int((tmp_path / "ahead").read_text()) >= 40
    assert [site.spec for site in result.sites] == api.find_specs([specs])  # in order all the same
    assert sorted(p.name for p in compiled.iterdir()) == sorted(p.name for p in api.find_specs([specs]))


def test_a_broken_spec_among_parallel_ones_writes_nothing(tmp_path: Path) -> None:
    _copy_specs(tmp_path / "specs")
    _edit(tmp_path / "specs/k3s-edge.yaml", "kind: Site", "kind: Sight")
    _edit(tmp_path / "specs/edge-tls.yaml", "kind: Site", "kind: Sight")
    result = CliRunner().invoke(
        app, ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "2"]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if "kind:" in line]
    assert [line.split(":")[0].rsplit("/", 1)[1] for line in lines] == ["edge-tls.yaml", "k3s-edge.yaml"]
    assert not (tmp_path / "out").exists()


def _listing(out: Path) -> list[str]:
    """Every name under ``out``, hidden ones too (a staging folder left behind shows)."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if ".auditc-cache" not in p.parts)


def test_sites_workers_staged_are_swept_when_another_spec_breaks(fleet: Path) -> None:
    """Workers stage each site as it compiles; a spec that breaks after several were
    staged leaves the output as it was, with no staging folder behind."""
    before = _tree(fleet / "out")
    listed = _listing(fleet / "out")
    for name in sorted(ALL):
        _edit(fleet / f"specs/{name}.yaml", "name: ", "name: x")  # every site changes
    _edit(fleet / "specs/prod-east.yaml", "kind: Site", "kind: Sight")  # after most, in spec order
    argv = ["render", str(fleet / "specs"), "-o", str(fleet / "out"), "-j", "2"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert _tree(fleet / "out") == before
    assert _listing(fleet / "out") == listed


def test_a_worker_that_cannot_write_is_a_user_error(tmp_path: Path) -> None:
    """An output the workers cannot stage into, or a site folder that is not auditc's:
    exit 2 and where, as in one process, nothing written."""
    _copy_specs(tmp_path / "specs")
    (tmp_path / "afile").write_text("")
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "afile" / "out"), "-j", "2"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("cannot write output: Not a directory") == 1  # not once per site
    assert "WorkerBug" not in result.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "aks-prod").write_text("")  # a file where the site's folder goes
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "2"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'out' / 'aks-prod'}: is not a directory" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["aks-prod"]


def test_an_output_that_refuses_staging_is_named_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staging folder that cannot be made (a read-only output): one error naming the
    output, not one per site naming a folder that does not exist; other errors stay."""
    from compiler import write

    def refused(prefix: str = "", dir: str | Path = "") -> str:
        raise PermissionError(13, "Permission denied", str(Path(dir) / f"{prefix}x1y2"))

    _copy_specs(tmp_path / "specs")
    _edit(tmp_path / "specs/k3s-edge.yaml", "kind: Site", "kind: Sight")
    monkeypatch.setattr(write.tempfile, "mkdtemp", refused)
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "1"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("cannot write output: Permission denied") == 1, result.stderr
    assert f"{tmp_path / 'out'}: cannot write output" in result.stderr
    assert "k3s-edge.yaml" in result.stderr  # the spec's own error is still there


def test_a_retargeted_folder_link_invalidates_what_names_resolve_to(tmp_path: Path) -> None:
    """The spec (a symlink) and its bytes stay; the folder link it is named through moves:
    its named files and what is allowed move with it."""
    spec = (
        (ROOT / "specs/k3s-edge.yaml")
        .read_text()
        .replace("  falco:\n", "  falco:\n    rules: {custom: [RULES]}\n", 1)
    )
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rules.yaml").write_text(f"- list: from_{folder}\n  items: [a]\n")
    (tmp_path / "abs").mkdir()
    for rules, expected in (("rules.yaml", 0), ("../d1/rules.yaml", 2)):
        (tmp_path / "abs/site.yaml").write_text(spec.replace("RULES", rules))
        for folder in ("d1", "d2"):
            (tmp_path / folder / "site.yaml").unlink(missing_ok=True)
            (tmp_path / folder / "site.yaml").symlink_to(tmp_path / "abs/site.yaml")
        link = tmp_path / "d"
        link.unlink(missing_ok=True)
        link.symlink_to("d1")
        out = tmp_path / f"out-{expected}"
        assert (
            CliRunner().invoke(app, ["render", str(link / "site.yaml"), "-o", str(out), "-q"]).exit_code == 0
        )
        link.unlink()
        link.symlink_to("d2")
        again = CliRunner().invoke(app, ["render", str(link / "site.yaml"), "-o", str(out), "-q"])
        assert again.exit_code == expected, again.output
        if expected == 0:
            assert "from_d2" in (out / "k3s-edge/helm/falco-values.yaml").read_text()


def test_an_edit_during_a_render_is_not_trusted_later(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file edited while the render runs (after it was compared, before the record) is
    read again next time, however long ago that was."""
    import time

    monkeypatch.setattr(current, "RACY_NS", 100_000_000)
    edited = fleet / "out/aks-prod/plan/plan.yaml"

    def progress(done: int, total: int, spec: Path) -> None:
        if done == 2:
            _same_size_edit(edited)
            time.sleep(0.2)  # longer than RACY_NS ago by the time of the record

    api.render([fleet / "specs"], fleet / "out", roots=(fleet,), progress=progress)  # compiles all
    time.sleep(0.2)
    check = api.render([fleet / "specs"], fleet / "out", roots=(fleet,), check=True)
    assert [c.site for c in check.changes if c.any] == ["aks-prod"]


def test_a_bug_in_a_worker_is_reported_as_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 3 and the one-line request for a bug report, whatever the exception (one that
    cannot cross back from the worker too), output untouched, no worker left behind."""
    import multiprocessing

    class Unpicklable(Exception):
        def __init__(self, a: str, b: str) -> None:
            super().__init__(a)

    def broken(path: Path, roots: tuple[Path, ...] = ()) -> object:
        raise Unpicklable("boom", "x")

    _copy_specs(tmp_path / "specs")
    monkeypatch.setattr(api, "compile_site", broken)  # the forked workers inherit it
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "2"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("auditc: internal error (WorkerBug: Unpicklable: boom). This is a bug")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("how", ["SIGKILL", "exit"])
def test_a_worker_that_dies_is_reported_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A worker that dies outright while it compiles: exit 3 naming how it ended, at once
    (a pool waited for its result for ever), the output untouched and no staging folder
    or worker left behind. Killed (the OOM killer's SIGKILL) it is no bug of auditc's;
    one that ends on its own (an exit deep in a library; an abort or a fault in C code
    likewise, not tried here: a core dump) is reported as one."""
    import multiprocessing
    import signal

    from tests.tools import no_hang

    real = api.compile_site

    def killed(path: Path, roots: tuple[Path, ...] = ()) -> object:
        if path.name == "gke-prod.yaml":
            if how == "exit":
                os._exit(70)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, roots)

    _copy_specs(tmp_path / "specs")
    api.render([tmp_path / "specs"], tmp_path / "out", jobs=1)
    before, listed = _tree(tmp_path / "out"), _listing(tmp_path / "out")
    for name in sorted(ALL):
        _edit(tmp_path / f"specs/{name}.yaml", "name: ", "name: x")
    monkeypatch.setattr(api, "compile_site", killed)  # the forked workers inherit it
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "2"]
    with no_hang("a render whose worker was killed"):
        result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    why = "exit code 70" if how == "exit" else f"killed by signal {signal.SIGKILL.value}"
    ended = f"a worker process ended unexpectedly ({why})"
    if how == "SIGKILL":
        assert result.stderr.startswith(f"auditc: {ended}")
        assert "nothing was written: run it again" in result.stderr and "bug" not in result.stderr
    else:
        assert result.stderr.startswith(f"auditc: internal error (WorkerBug: {ended}). This is a bug")
    assert _tree(tmp_path / "out") == before
    assert _listing(tmp_path / "out") == listed
    assert multiprocessing.active_children() == []


def test_a_worker_dead_before_its_first_batch_is_reported_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending to a worker that already died is that worker's death (exit 3), not an
    output that cannot be written (exit 2), and the render waits for nothing."""
    from multiprocessing.process import BaseProcess

    from tests.tools import no_hang

    def dead(conn: object, others: object) -> None:
        os._exit(1)

    real_start = BaseProcess.start

    def started_and_ended(self: BaseProcess) -> None:
        real_start(self)
        self.join()  # gone before the first batch is sent to it

    _copy_specs(tmp_path / "specs")
    monkeypatch.setattr(api, "_serve", dead)
    monkeypatch.setattr(BaseProcess, "start", started_and_ended)
    argv = ["render", str(tmp_path / "specs"), "-o", str(tmp_path / "out"), "-j", "2"]
    with no_hang("a render whose workers died at once"):
        result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert "a worker process ended unexpectedly (exit code 1)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_where_no_worker_can_be_forked_the_render_compiles_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process limit reached (fork fails with EAGAIN): the same sites and bytes, compiled
    in the render's own process, and SIGINT is not left blocked."""
    import signal
    from multiprocessing.process import BaseProcess

    def refused(self: BaseProcess) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    _copy_specs(tmp_path / "specs")
    serial = api.render([tmp_path / "specs"], tmp_path / "one", jobs=1, cache=False)
    monkeypatch.setattr(BaseProcess, "start", refused)
    alone = api.render([tmp_path / "specs"], tmp_path / "two", jobs=2, cache=False)
    assert [s.name for s in alone.sites] == [s.name for s in serial.sites]
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_workers_of_a_killed_render_end_quietly(tmp_path: Path) -> None:
    """kill -9 of the render while its workers compile: each finds its pipe closed and
    ends, with no traceback, instead of compiling on for nobody."""
    import signal
    import time

    _copy_specs(tmp_path / "specs")
    pids = tmp_path / "pids"
    pids.mkdir()
    program = f"""
import os, sys, time
from compiler import api
from compiler.cli import main
real = api.compile_site
def slow(path, roots=()):
    open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
    time.sleep(0.3)
    return real(path, roots)
api.compile_site = slow
sys.argv = ["auditc", "render", "-q", "-j", "2", {str(tmp_path / "specs")!r}, "-o", {str(tmp_path / "out")!r}]
main()
"""
    render = subprocess.Popen([sys.executable, "-c", program], stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) == 2, workers
    render.send_signal(signal.SIGKILL)
    render.wait()

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in ("Z", "X")

    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(pid) for pid in workers), "a worker of the killed render runs on"
    assert render.stderr is not None
    assert b"Traceback" not in render.stderr.read()


def test_a_bug_in_a_worker_while_another_stages_leaves_nothing_behind(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first spec hits a bug once the other worker has staged a site after it, which
    the render never takes: none is put in place and none is left hidden in the output."""
    import time

    real = api.compile_site

    def broken_first(path: Path, roots: tuple[Path, ...] = ()) -> object:
        if path.name == "aks-prod.yaml":
            deadline = time.monotonic() + 30
            while not list((fleet / "out").glob(".*.new-*")) and time.monotonic() < deadline:
                time.sleep(0.01)
            raise RuntimeError("boom")
        return real(path, roots)

    before, listed = _tree(fleet / "out"), _listing(fleet / "out")
    for name in sorted(ALL):
        _edit(fleet / f"specs/{name}.yaml", "name: ", "name: x")
    monkeypatch.setattr(api, "compile_site", broken_first)
    argv = ["render", str(fleet / "specs"), "-o", str(fleet / "out"), "-j", "2"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert _tree(fleet / "out") == before
    assert _listing(fleet / "out") == listed


def test_a_second_ctrl_c_while_the_render_cleans_up_waits_for_the_cleanup(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a site compiles, and again while the staged ones are being removed:
    every staged folder is still removed, then the interrupt is raised."""
    import signal

    from compiler import write

    real_compile, real_discard = api.compile_site, write.discard
    compiled: list[str] = []

    def interrupted(path: Path, roots: tuple[Path, ...] = ()) -> api.CompiledSite:
        if len(compiled) == 2:
            raise KeyboardInterrupt  # the first Ctrl-C
        compiled.append(path.name)
        return real_compile(path, roots)

    def pressed_again(staged: write.Staged) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the second, while the first is cleaned up
        real_discard(staged)

    for name in sorted(ALL):
        _edit(fleet / f"specs/{name}.yaml", "name: ", "name: x")
    before, listed = _tree(fleet / "out"), _listing(fleet / "out")
    monkeypatch.setattr(api, "compile_site", interrupted)
    monkeypatch.setattr(write, "discard", pressed_again)
    with pytest.raises(KeyboardInterrupt):
        api.render([fleet / "specs"], fleet / "out", jobs=1)
    assert len(compiled) == 2
    assert _tree(fleet / "out") == before
    assert _listing(fleet / "out") == listed  # no staging folder left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
