"""The commands: one function per CLI command, over ``compiler.pipeline``.

Each command of the CLI is one call into this module. Nothing here prints: results and
diagnostics are returned, errors raised as ``UserError``.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler import GC_THRESHOLDS
from compiler.bundle import Artifact
from compiler.current import Input, Prepared, realpath
from compiler.errors import Diagnostic, Location, UserError, WorkerLost
from compiler.write import Changes, Staged

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from compiler.build import Build
    from compiler.live.cluster import Clusters


@dataclass(frozen=True)
class CompiledSite:
    name: str
    spec: Path
    artifacts: list[Artifact]  # empty when ``current``
    warnings: tuple[Diagnostic, ...] = ()
    inputs: tuple[Input, ...] = ()  # every file it was compiled from (compiler.current)
    current: bool = False  # the render cache found its output current: not compiled
    staged: Staged | None = None  # written beside its target, not yet in place (``artifacts`` empty)
    record: Prepared | None = None  # when staged: its render cache entry (None: not recorded)
    refused: tuple[Diagnostic, ...] = ()  # compiled, but why it cannot be staged (each_site yields these)


@dataclass(frozen=True)
class Analysis:
    """A site checked but not rendered: what ``validate`` reports."""

    name: str | None  # None when the spec is invalid
    spec: Path
    findings: tuple[Diagnostic, ...] = ()  # every finding (spec checks and lint), accepted ones marked
    errors: tuple[Diagnostic, ...] = ()  # why the spec is invalid (exit 2)


@dataclass(frozen=True)
class RenderResult:
    sites: list[CompiledSite]
    changes: list[Changes] = field(default_factory=list)


def find_specs(inputs: list[Path]) -> list[Path]:
    """Spec files named directly, plus the *.yaml / *.yml files directly inside named
    directories that are not bases (``kind: SiteDefaults``: sites name them)."""
    return list(_specs(inputs)[1])


def _specs(inputs: list[Path]) -> tuple[int, Iterator[Path]]:
    """How many files may be specs, and the specs (``find_specs``) as they are found: a
    missing input or a base named as a site is reported before any, the files in a
    directory are told from bases one by one (a fleet's workers start on the first)."""
    candidates: list[Path] = []
    for item in inputs:
        if item.is_dir():
            with os.scandir(item) as entries:
                names = sorted(
                    e.name
                    for e in entries
                    if e.name.endswith((".yaml", ".yml")) and not e.name.startswith(".") and e.is_file()
                )
            candidates += [item / name for name in names]
        elif item.exists():
            if item.is_file() and _is_base(item):
                message = "is a base (kind: SiteDefaults), not a site: a site names it in its bases"
                raise UserError(Diagnostic(message, Location(str(item))))
            candidates.append(item)
        else:
            raise UserError(Diagnostic("no such file or directory", Location(str(item))))
    named = {str(item) for item in inputs if not item.is_dir()}

    def found() -> Iterator[Path]:
        seen: set[str] = set()
        for path in candidates:
            if str(path) not in named and _is_base(path):
                continue
            real = realpath(path)
            if real not in seen:  # each spec once, however often it is named
                seen.add(real)
                yield path
        if not seen:
            where = Location(", ".join(map(str, inputs)))
            raise UserError(Diagnostic("no site specs (*.yaml) found", where))

    return len(candidates), found()


_BASE_KIND = re.compile(rb"^(?:\xef\xbb\xbf)?kind:[ \t]*([\"']?)SiteDefaults\1[ \t]*(#.*)?\r?$", re.M)


def _is_base(path: Path) -> bool:
    """A document whose top-level ``kind`` is SiteDefaults: a file with a ``kind:
    SiteDefaults`` line (block style, as bases are written) is parsed to be sure; anything
    else is read as a site, and a flow-style base is refused there by its kind."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False  # the reader reports it, with the spec's name
    try:
        info = os.fstat(fd)
        # as much as it holds (a 1 MiB buffer costs more than reading a spec), 1 MiB at most
        head = os.read(fd, min(info.st_size, 1024 * 1024)) if stat.S_ISREG(info.st_mode) else b""
    except OSError:
        return False
    finally:
        os.close(fd)
    if b"SiteDefaults" not in head or _BASE_KIND.search(head) is None:  # the word first: a site has none
        return False
    from compiler.spec.source import read_yaml

    try:
        data = read_yaml(path, str(path)).data
    except UserError:
        return False  # read as a site: its problem is reported there
    return isinstance(data, dict) and data.get("kind") == "SiteDefaults"


def analyse(path: Path, roots: tuple[Path, ...] = ()) -> Analysis:
    """Parse, validate and lint one spec; nothing is rendered."""
    from compiler.pipeline import check

    checked = check(path, roots)
    return Analysis(checked.name, path, tuple(checked.findings))


def compile_site(path: Path, roots: tuple[Path, ...] = ()) -> CompiledSite:
    """Everything ``render`` writes for one spec; lint errors not accepted stop it."""
    from compiler.pipeline import compile_spec
    from compiler.write import with_manifest

    compiled = compile_spec(path, roots)
    resolved = compiled.built.resolved
    artifacts = with_manifest(
        resolved.name, resolved.spec_digest, compiled.artifacts, _falco_manifest(resolved)
    )
    warnings = [f for f in compiled.findings if f.severity == "warning" and not f.accepted]
    inputs = tuple(Input.of(opened, data) for opened, data in resolved.sources)
    return CompiledSite(resolved.name, path, artifacts, tuple(warnings), inputs)


def _falco_manifest(resolved: Any) -> dict[str, object]:
    """MANIFEST.json's falco block: the release and the chart the site installs."""
    chart = resolved.target.chart
    return {
        "version": str(resolved.falco),
        "chart": {"repository": chart.repository, "name": chart.name, "version": chart.version},
    }


# (specs compiled, specs in all, the one just compiled; Path() once all are)
Progress = Callable[[int, int, Path], None]
Known = Callable[[Path], "CompiledSite | None"]  # a site already current: not compiled again


@dataclass(frozen=True)
class Into:
    """Where compiled sites are staged as soon as they compile, by whoever compiled them
    (a worker writes its own: writing is a third of a fleet render's time), and the
    render staging them (``write.sweep``)."""

    output: Path
    render: str
    record: bool = True  # a render cache entry prepared for each site staged


def each_site(
    inputs: list[Path],
    roots: tuple[Path, ...] = (),
    progress: Progress | None = None,
    *,
    jobs: int = 1,
    known: Known | None = None,
    into: Into | None = None,
) -> Iterator[CompiledSite | list[Diagnostic]]:
    """Each spec's site, or why it cannot be one, in spec order as each is ready: compiled
    ``jobs`` at a time, except those ``known`` returns as current (not compiled again),
    and staged ``into`` an output when given. ``progress`` is told as specs are compiled."""
    count, found = _specs(inputs)
    parallel = jobs if count >= PARALLEL_FROM else 1
    with _Compiler(roots, parallel, into) as compiler:
        cached: dict[Path, CompiledSite] = {}
        specs: list[Path] = []
        for path in found:  # the workers start on the first spec to compile, while the rest are checked
            specs.append(path)
            site = known(path) if known is not None else None
            if site is None:
                compiler.add(path)
            else:
                cached[path] = site
        todo = len(specs) - len(cached)
        names: dict[str, Path] = {}
        done = 0
        for path in specs:
            outcome: CompiledSite | list[Diagnostic]
            if path in cached:
                outcome = cached[path]
            else:
                outcome = compiler.next(path)
                done += 1
                if progress is not None:
                    progress(done, todo, path)
            if isinstance(outcome, CompiledSite) and outcome.name in names:
                where = Location(str(path))
                message = f"site name {outcome.name!r} is already used by {names[outcome.name]}"
                outcome = [Diagnostic(message, where, "metadata.name")]
            elif isinstance(outcome, CompiledSite):
                names[outcome.name] = path  # a site that cannot be staged still holds its name
                if outcome.refused:
                    outcome = list(outcome.refused)
            yield outcome
    if progress is not None:
        progress(todo, todo, Path())


_Job = tuple[Path, tuple[Path, ...], Into | None]  # a spec, the --files-root folders, where to stage


def _compile_one(job: _Job) -> CompiledSite | list[Diagnostic]:
    path, roots, into = job
    try:
        site = compile_site(path, roots)
    except UserError as exc:
        return exc.diagnostics
    return site if into is None else _stage(site, into, roots)


def _stage(site: CompiledSite, into: Into, roots: tuple[Path, ...]) -> CompiledSite:
    """``site`` written beside its target under ``into``, or with why it cannot be, with
    its render cache entry (compiled from ``roots``) when ``into`` asks for it."""
    from compiler.current import listed, outputs, prepare
    from compiler.write import not_ours, stage_site

    target = into.output / site.name
    why = not_ours(target)
    if why:
        return replace(site, artifacts=[], refused=(_not_ours(why, target),))
    try:
        written: dict[str, os.stat_result] = {}
        staged = stage_site(target, site.artifacts, site.name, into.render, written)
        # here, not in the render's one process
        listing = None
        if into.record:
            listing = listed(written) if staged.staging is not None else outputs(target)
    except OSError as exc:  # named at the output: a staging folder's name tells nothing
        return replace(
            site, artifacts=[], refused=(_unwritable(OSError(exc.errno, exc.strerror), into.output),)
        )
    record = None
    if into.record:
        record = prepare(site.spec, site.name, roots, site.inputs, _digests(site), site.warnings, listing)
    return replace(site, artifacts=[], staged=staged, record=record)


def _not_ours(why: str, target: Path) -> Diagnostic:
    """Nothing is replaced that auditc did not write."""
    message = f"{why}: move it away or render into another output directory (-o)"
    return Diagnostic(message, Location(str(target)))


def _unwritable(exc: OSError, output: Path) -> Diagnostic:
    return Diagnostic(f"{_UNWRITABLE}{exc.strerror or exc}", Location(str(exc.filename or output)))


_UNWRITABLE = "cannot write output: "


def _each_once(problems: list[Diagnostic]) -> list[Diagnostic]:
    """``problems`` with each output that cannot be written named once, not once per site,
    and an error several sites share word for word where it was written (a value their
    base wrote) once, with the count of sites, as their warnings are."""
    counts: dict[Diagnostic, int] = {}
    for problem in problems:
        counts[problem] = counts.get(problem, 0) + 1
    out = []
    for problem, count in counts.items():
        if count > 1 and not problem.message.startswith(_UNWRITABLE):
            problem = replace(problem, message=f"{problem.message} ({count} sites)")
        out.append(problem)
    return out


class WorkerBug(Exception):
    """A bug in a worker, carried back as text (the exception itself may not survive the
    trip): the CLI reports it as any bug, exit 3."""


_Outcome = CompiledSite | list[Diagnostic] | WorkerBug


def _in_worker(jobs: list[_Job]) -> list[_Outcome]:
    """Each job's outcome, a bug as a ``WorkerBug`` (the others still compiled)."""
    outcomes: list[_Outcome] = []
    for job in jobs:
        try:
            outcomes.append(_compile_one(job))
        except Exception as exc:
            import traceback

            bug = WorkerBug(f"{type(exc).__name__}: {exc}")
            bug.add_note(f"in the worker:\n{traceback.format_exc()}")  # what --debug shows
            outcomes.append(bug)
    return outcomes


def _serve(conn: Connection, others: list[Connection]) -> None:
    """A worker: batches of jobs from ``conn`` until it is closed or sends None, each
    batch's outcomes back in order."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the render's: it stops the workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked across the fork
    gc.freeze()  # what it was forked with (the modules, the data read) is never garbage
    gc.set_threshold(*GC_THRESHOLDS)  # a site's objects are freed as it goes
    for other in others:
        other.close()  # the render's alone: its end closing is how the render's death shows
    while True:
        try:
            jobs = conn.recv()
        except EOFError:  # the render is gone
            return
        if jobs is None:
            return
        outcomes = _in_worker(jobs)
        try:
            conn.send(outcomes)
        except OSError:  # the render is gone (killed): nobody to tell
            return
        except Exception as exc:  # an outcome that cannot be pickled: nothing was sent
            with contextlib.suppress(OSError):  # gone meanwhile: the next recv ends it
                conn.send([WorkerBug(f"{type(exc).__name__}: {exc}")] * len(jobs))


PARALLEL_FROM = 8  # specs in a run: fewer are compiled in this process (a worker costs more)
_QUEUED = 16  # specs per worker sent and not yet back: what it is given ahead
_HELD = 16  # specs per worker sent and not yet taken (--check): their sites' files in memory
_BATCH = 8  # specs sent to a worker at most at a time: each message costs this process


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection  # this process's end of the worker's own pipe
    sent: collections.deque[tuple[Path, ...]] = field(default_factory=collections.deque)  # oldest first
    queued: int = 0  # specs sent, their outcomes not back
    held: int = 0  # specs sent and not yet taken (their outcomes back or not)

    def stopped(self) -> Exception:
        """Why the worker's pipe closed without a word: killed (the OOM killer's SIGKILL, a
        SIGTERM), or a crash that would happen again (a fault in C code, an abort, an exit),
        which is a bug."""
        import signal

        self.process.join(5)
        code = self.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        message = f"a worker process ended unexpectedly ({how})"
        if code in (-signal.SIGKILL, -signal.SIGTERM):
            return WorkerLost(message)
        return WorkerBug(message)


class _Compiler:
    """Compiles the specs added, in the order added, here (``jobs`` 1) or in ``jobs``
    forked workers started at the first spec added: they import the compiling stack while
    this process goes on checking which sites are current, and this process never loads
    it. Each worker has a pipe of its own and nothing else is shared (no lock a worker
    killed mid-write could hold, no thread here), so a worker that dies is reported, never
    waited for, and leaving early (an error, Ctrl-C) stops the workers at once. Specs go to
    the worker with fewest still to compile, in batches of up to ``_BATCH`` (each message
    costs this process): one at a time while few wait (at first, so every worker starts
    at once), smaller again towards the end (so the workers finish together). A worker is
    given at most ``_QUEUED`` specs ahead, and holds at most ``limit`` specs sent and not
    yet taken (what may be in memory): the one with fewest still to compile among those
    with room. Outcomes come back in each worker's order and are read as soon as they do,
    whichever spec is wanted next, and a worker back is given more while a slow spec is
    awaited: a worker ahead of the others never waits on a full pipe, nor idles."""

    def __init__(self, roots: tuple[Path, ...], jobs: int, into: Into | None = None) -> None:
        self.roots = roots
        self.jobs = jobs
        self.into = into
        self.waiting: collections.deque[Path] = collections.deque()
        self.workers: list[_Worker] = []
        self.where: dict[Path, _Worker] = {}  # each spec sent and not yet taken: its worker
        self.done: dict[Path, _Outcome] = {}  # the outcomes back and not yet taken
        # --check's outcomes carry their sites' files; a staged site's, only its record
        self.limit = _HELD if into is None else 4 * _HELD

    def __enter__(self) -> _Compiler:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        with interrupts_held():  # a second Ctrl-C must not leave workers staging
            for worker in self.workers:
                if error is None and not worker.held:
                    with contextlib.suppress(OSError):
                        worker.conn.send(None)  # all taken: it is waiting for the next batch
                else:
                    worker.process.terminate()  # what it staged is swept by the render
            for worker in self.workers:
                worker.process.join()
                worker.conn.close()

    def add(self, path: Path) -> None:
        self.waiting.append(path)
        self._fill()

    def next(self, path: Path) -> CompiledSite | list[Diagnostic]:
        """The outcome of ``path``, the first of those added and not yet taken."""
        if not self.workers:
            first = self.waiting.popleft()
            if first != path:
                raise AssertionError(f"compiled out of order: {first} before {path}")
            return _compile_one((path, self.roots, self.into))
        from multiprocessing.connection import wait

        self._fill()
        while path not in self.done:
            out = {w.conn: w for w in self.workers if w.sent}
            if not out:  # waiting on none would never end
                raise AssertionError(f"{path} was never sent to a worker")
            for conn in wait(list(out)):  # those with a batch back, or dead
                worker = out[conn]  # type: ignore[index]
                try:
                    outcomes = worker.conn.recv()  # its oldest batch
                except (EOFError, OSError):
                    raise worker.stopped() from None
                paths = worker.sent.popleft()
                worker.queued -= len(paths)
                self.done.update(zip(paths, outcomes, strict=True))
            self._fill()  # a worker back while the wanted spec is not: more for it meanwhile
        outcome = self.done.pop(path)
        self.where.pop(path).held -= 1
        self._fill()
        if isinstance(outcome, WorkerBug):
            raise outcome
        return outcome

    def _fill(self) -> None:
        if self.jobs > 1 and not self.workers and not _can_fork():
            self.jobs = 1  # where there is no fork (a worker would import everything again)
        if self.jobs > 1 and not self.workers:
            self._start()
        if not self.workers:
            return  # this process compiles
        while self.waiting:
            size = max(1, min(_BATCH, _QUEUED, len(self.waiting) // (2 * self.jobs)))  # two a worker at least
            room = [w for w in self.workers if w.queued + size <= _QUEUED and w.held + size <= self.limit]
            if not room:
                return  # a whole batch's room first: taking one spec must not send one
            worker = min(room, key=lambda w: w.queued)  # the one ahead gets more
            paths = tuple(self.waiting.popleft() for _ in range(size))
            try:
                worker.conn.send([(p, self.roots, self.into) for p in paths])  # small: never blocks
            except OSError:  # its end is closed: it died (not the output's fault)
                raise worker.stopped() from None
            worker.sent.append(paths)
            worker.queued += size
            worker.held += size
            self.where.update(dict.fromkeys(paths, worker))

    def _start(self) -> None:
        """The workers; as many as can be forked (none: this process compiles)."""
        import multiprocessing
        import signal

        context = multiprocessing.get_context("fork")
        for _ in range(self.jobs):
            mine, theirs = context.Pipe()
            others = [mine, *(w.conn for w in self.workers)]  # the render's ends, its own too
            process = context.Process(target=_serve, args=(theirs, others), daemon=True)
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # until it ignores it
            try:
                process.start()
            except OSError:  # no fork to be had (a process limit): fewer workers
                mine.close()
                break
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                theirs.close()  # the worker's alone: its end closing is how a death shows here
            self.workers.append(_Worker(process, mine))
        self.jobs = len(self.workers) or 1


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C held back while the block runs (cleaning up after the first Ctrl-C, a second
    would leave staged folders or workers behind), then raised as KeyboardInterrupt once
    the block is done. Only the main thread receives signals: elsewhere nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def render(
    inputs: list[Path],
    output: Path,
    *,
    check: bool = False,
    roots: tuple[Path, ...] = (),
    progress: Progress | None = None,
    jobs: int = 1,
    cache: bool = True,
) -> RenderResult:
    """Render every site. When a directory of specs is given, it is the whole fleet for
    ``output``: site directories auditc rendered before and no spec produces now are stale.
    A site the render cache (compiler.current) finds current is not compiled again;
    ``check`` reads the cache and writes nothing, ``cache=False`` compiles every site.

    Each site is written beside its target as soon as it is compiled (so a fleet's output
    is never all in memory, and writing overlaps compiling) and the sites are put in place
    only once every spec compiled: a broken spec leaves the output as it was. The sites
    returned carry no artifacts (they are written)."""
    from compiler.current import Cache
    from compiler.write import commit, compare, discard, not_ours, orphans, remove_site, sweep

    recorded = Cache(output) if cache else None

    def known(spec: Path) -> CompiledSite | None:
        entry = recorded.current(spec, roots) if recorded is not None else None
        return None if entry is None else CompiledSite(entry.site, spec, [], entry.warnings, current=True)

    existed = output.exists()
    started = time.time_ns()  # a file found in place is trusted by its stat when older by RACY_NS
    into = None if check else Into(output, f"{os.getpid()}-{secrets.token_hex(4)}", recorded is not None)
    sites: list[CompiledSite] = []
    problems: list[Diagnostic] = []
    staged: list[Staged] = []
    changes: list[Changes] = []
    records: list[tuple[Prepared, bool]] = []  # each site's entry, written by this render or found in place
    stamped: tuple[int, int] | None = None
    committed = 0  # sites put in place, in the order staged
    try:
        for outcome in each_site(inputs, roots, progress, jobs=jobs, known=known, into=into):
            if isinstance(outcome, list):
                problems += outcome
                continue
            sites.append(replace(outcome, artifacts=[], staged=None, record=None))
            if outcome.current:
                continue
            if outcome.staged is not None:
                staged.append(outcome.staged)  # committed below, or discarded
                if outcome.record is not None:
                    records.append((outcome.record, outcome.staged.staging is not None))
                continue
            why = not_ours(output / outcome.name)  # --check: compared, nothing written
            if why:
                problems.append(_not_ours(why, output / outcome.name))
            elif not problems:
                changes.append(compare(output / outcome.name, outcome.artifacts, outcome.name))
        if problems:
            raise UserError(_each_once(problems))
        stale = orphans(output, {s.name for s in sites}) if any(item.is_dir() for item in inputs) else []
        changes += [compare(output / name, [], name) for name in stale]
        if not check:
            if recorded is not None and any(each.staging is not None for each in staged):
                stamped = recorded.stamp()  # every site staged, none in place yet
            for each in staged:
                commit(each)
                committed += 1
            for name in stale:
                remove_site(output / name)
    except OSError as exc:
        raise UserError(_unwritable(exc, output)) from None
    finally:
        with interrupts_held():  # the output is put back in order however often Ctrl-C is pressed
            for each in staged[committed:]:  # those put in place are not staged any more
                discard(each)
            if into is not None:
                sweep(output, into.render)  # staged by a worker and never taken (Ctrl-C, a bug)
            if not existed and not committed and output.is_dir():  # made to stage in
                if recorded is not None:
                    recorded.unstamp()
                with contextlib.suppress(OSError):
                    output.rmdir()  # only if empty: never what another render put there
    if recorded is not None and not check:
        for record, fresh in records:
            recorded.record(record, started, stamped if fresh else None)
        recorded.forget_sites(set(stale))
        recorded.save()
    return RenderResult(sites, [s.changes for s in staged] + changes)


def _digests(site: CompiledSite) -> dict[str, str]:
    """The sha256 of each file of ``site``: MANIFEST.json lists every other file's."""
    from compiler.write import MANIFEST

    (manifest,) = [a for a in site.artifacts if a.path == MANIFEST]
    listed = json.loads(manifest.content)["files"]
    digests = {path: str(digest).removeprefix("sha256:") for path, digest in listed.items()}
    return {**digests, MANIFEST: hashlib.sha256(manifest.content).hexdigest()}


def validate(inputs: list[Path], roots: tuple[Path, ...] = ()) -> list[Analysis]:
    """Analyse every spec; an invalid one carries its errors, the others their findings."""
    analyses: list[Analysis] = []
    for path in find_specs(inputs):
        try:
            analyses.append(analyse(path, roots))
        except UserError as exc:
            analyses.append(Analysis(None, path, errors=tuple(exc.diagnostics)))
    return analyses


def fleet_gitops(inputs: list[Path], engine: str, roots: tuple[Path, ...] = ()) -> bytes:
    """The fleet's objects for one GitOps engine (compiler/artifacts/gitops.fleet), as YAML:
    every spec compiled as render would (an invalid one stops it)."""
    from compiler.artifacts import gitops
    from compiler.emit import yaml_documents_bytes
    from compiler.pipeline import compile_spec

    resolved = [compile_spec(path, roots).built.resolved for path in find_specs(inputs)]
    try:
        objects = gitops.fleet(resolved, engine)
    except UserError as exc:  # a value a base wrote for many sites: named once
        raise UserError(_each_once(exc.diagnostics)) from None
    header = (
        f"# The {engine} objects for the fleet, for the management cluster: written by auditc fleet "
        f"--engine {engine}.\n# Do not edit; run it again when sites come or go (--check says when).\n"
    )
    return header.encode("utf-8") + yaml_documents_bytes(objects)


def write_if_changed(target: Path, content: bytes, *, check: bool = False) -> bool:
    """Whether ``target`` does not hold ``content`` yet; unless ``check``, it then does,
    written whole or not at all (``write.replace_file``)."""
    from compiler.write import replace_file

    try:
        if target.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise UserError(Diagnostic("is a directory: name the file to write", Location(str(target)))) from None
    except OSError as exc:
        raise UserError(Diagnostic(f"cannot read it: {exc.strerror or exc}", Location(str(target)))) from None
    if check:
        return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_file(target, content)
    except OSError as exc:
        where = Location(str(target))
        raise UserError(Diagnostic(f"cannot write it: {exc.strerror or exc}", where)) from None
    return True


def schema(defaults: bool = False) -> dict[str, Any]:
    """The JSON Schema of a site, or (``defaults``) of a ``kind: SiteDefaults`` base."""
    from compiler.platforms import site_schema

    document = site_schema().model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://auditc.dev/schemas/site-v1alpha1.json"
    if defaults:
        from compiler.spec.bases import defaults_schema

        return defaults_schema(document)
    return document


def _management(resolved: Any, artifacts: dict[str, bytes], clusters: Clusters) -> Any:
    """For a site whose engine runs in a management cluster: that cluster and the objects
    of management/ to read there; None for any other site."""
    from compiler.artifacts.gitops import ENGINE_NAMES, MANAGEMENT, from_management
    from compiler.datafiles import yaml_documents

    if not from_management(resolved):
        return None
    hub = clusters.hub()
    if hub is None:
        engine = ENGINE_NAMES[resolved.site.spec.gitops.engine]
        message = (
            f"{engine} deploys site {resolved.name} from a management cluster: give "
            "--management-context, its kubectl context, to read the release object there"
        )
        where = ("spec", "gitops", "engineCluster")
        raise UserError(Diagnostic(message, resolved.doc.location(where), "spec.gitops.engineCluster"))
    held = [
        obj
        for path in sorted(artifacts)
        if path.startswith(f"{MANAGEMENT}/") and not path.endswith("/kustomization.yaml")
        for obj in yaml_documents(artifacts[path])
    ]
    return hub, held


def _live_inputs(spec: Path, roots: tuple[Path, ...]) -> tuple[Build, dict[str, bytes], list[dict[str, Any]]]:
    """What a live comparison needs: the build, the rendered files and the cluster objects
    in them. Lint errors do not stop it: what is live is worth seeing either way."""
    from compiler.datafiles import yaml_documents
    from compiler.lower.common import AUDIT_SINK_FILE
    from compiler.pipeline import compile_spec

    compiled = compile_spec(spec, roots, refuse_lint_errors=False)
    artifacts = {a.path: a.content for a in compiled.artifacts}
    objects = [
        obj
        for path in sorted(artifacts)
        if (path.startswith("cluster/") and path != "cluster/kustomization.yaml") or path == AUDIT_SINK_FILE
        for obj in yaml_documents(artifacts[path])
    ]
    return compiled.built, artifacts, objects


def snapshot(
    spec: Path,
    output: Path,
    *,
    clusters: Clusters,
    access: Any,
    roots: tuple[Path, ...] = (),
) -> Path:
    """Save what is live for one site (cluster objects and node files) into ``output``."""
    from compiler.live.snapshot import gather, save
    from compiler.transport import ssh_connections

    built, artifacts, objects = _live_inputs(spec, roots)
    hub = _management(built.resolved, artifacts, clusters)
    with ssh_connections():
        live = gather(built.resolved, objects, sorted(built.node_files), clusters.site(), access, hub)
    try:
        save(live, output)
    except OSError as exc:
        raise UserError(
            Diagnostic(f"cannot write the snapshot: {exc.strerror or exc}", Location(str(output)))
        ) from None
    return output


def live_diff(
    spec: Path,
    *,
    snapshot_dir: Path | None,
    access: Any,
    clusters: Clusters | None = None,
    roots: tuple[Path, ...] = (),
) -> Any:
    """Rendered versus live (read now from ``clusters``, or from a saved snapshot)."""
    from compiler.live.compare import compare
    from compiler.live.snapshot import gather, replay_cloud
    from compiler.live.snapshot import load as load_snapshot
    from compiler.transport import ssh_connections

    built, artifacts, objects = _live_inputs(spec, roots)
    resolved, config_files = built.resolved, sorted(built.node_files)
    if snapshot_dir is not None:
        live = load_snapshot(snapshot_dir)
        if live.site != resolved.name:
            raise UserError(f"{snapshot_dir} is a snapshot of site {live.site!r}, not {resolved.name!r}")
        if resolved.managed:
            live.cloud = replay_cloud(resolved, live, snapshot_dir)
    else:
        from compiler.live.cluster import Clusters

        clusters = clusters or Clusters()
        hub = _management(resolved, artifacts, clusters)
        with ssh_connections():
            live = gather(resolved, objects, config_files, clusters.site(), access, hub)
    return compare(resolved.name, artifacts, live, built.apiserver, resolved, config_files)


def _rollout_inputs(spec: Path, clusters: Clusters, access: Any, roots: tuple[Path, ...]) -> Any:
    """What plan and apply need: the site compiled as render would (lint errors stop it),
    and the clusters and nodes it talks to."""
    from compiler.datafiles import yaml_documents
    from compiler.pipeline import compile_spec
    from compiler.rollout.apply import Inputs
    from compiler.write import with_manifest

    compiled = compile_spec(spec, roots)
    resolved = compiled.built.resolved
    rendered = with_manifest(
        resolved.name, resolved.spec_digest, compiled.artifacts, _falco_manifest(resolved)
    )
    artifacts = {a.path: a.content for a in rendered}
    objects = [
        obj
        for path in sorted(artifacts)
        if path.startswith("cluster/") and path != "cluster/kustomization.yaml"
        for obj in yaml_documents(artifacts[path])
    ]
    hub = _management(resolved, artifacts, clusters)
    return Inputs(spec, compiled.built, artifacts, objects, clusters.site(), access, hub)


def plan(
    spec: Path,
    *,
    clusters: Clusters,
    access: Any,
    roots: tuple[Path, ...] = (),
) -> Any:
    """What apply would do, from the live state read now."""
    from compiler.rollout.apply import make_plan, read_live
    from compiler.transport import ssh_connections

    inputs = _rollout_inputs(spec, clusters, access, roots)
    with ssh_connections():
        return make_plan(inputs, read_live(inputs))


def apply(
    target: Path,
    *,
    clusters: Clusters,
    access: Any,
    options: Any,
    confirm: Any,
    say: Any,
    verify_timeout: float | None = None,
    roots: tuple[Path, ...] = (),
) -> Any:
    """Roll a site out: ``target`` is a spec (planned now, ``confirm`` asked) or a plan file
    written by ``auditc plan -o`` (refused when stale); then verify, unless
    ``verify_timeout`` is None. A site whose engine runs in a management cluster needs
    ``clusters.management``: apply reads its release object and waits for it there."""
    from compiler.rollout import plan as plans
    from compiler.rollout.apply import apply as run_apply
    from compiler.transport import ssh_connections

    planned = None
    spec = target
    if _is_plan_file(target):
        planned = plans.read(target)
        spec = Path(planned.spec)
        if not spec.is_file():
            raise UserError(
                f"{target}: the plan's spec {planned.spec} is not there (run apply where plan ran)"
            )
    inputs = _rollout_inputs(spec, clusters, access, roots)
    check = None
    if verify_timeout is not None and inputs.resolved.site.spec.falco.probe:

        def check() -> Any:
            return _verify(inputs, verify_timeout, say)

    with ssh_connections():
        return run_apply(inputs, planned, options, confirm, say, check)


def verify(
    spec: Path,
    *,
    clusters: Clusters,
    access: Any,
    timeout: float,
    say: Any,
    roots: tuple[Path, ...] = (),
) -> Any:
    """One probe event from the API to a Falco alert (compiler/rollout/verify.py)."""
    from compiler.transport import ssh_connections

    inputs = _rollout_inputs(spec, clusters, access, roots)
    with ssh_connections():
        return _verify(inputs, timeout, say)


def _verify(inputs: Any, timeout: float, say: Any) -> Any:
    from compiler.rollout.apply import make_plan, poll_interval, read_live
    from compiler.rollout.verify import verify as run_verify

    def plan_now() -> Any:
        return make_plan(inputs, read_live(inputs))

    return run_verify(inputs, timeout, poll_interval(1.0), say, plan_now)


def force_unlock(spec: Path, *, clusters: Clusters, roots: tuple[Path, ...] = ()) -> Any:
    """Delete the site's apply lock, whoever holds it; the holder it had, or None."""
    from compiler.pipeline import load
    from compiler.rollout.lock import force_unlock as unlock

    return unlock(clusters.site(), load(spec, roots).name)


def _is_plan_file(path: Path) -> bool:
    """A plan file is JSON (``auditc plan -o``); a spec is YAML and never starts with ``{``."""
    import json

    try:
        with path.open("rb") as handle:
            if not handle.read(64).lstrip().startswith(b"{"):
                return False
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise UserError(Diagnostic(f"cannot read: {exc.strerror or exc}", Location(str(path)))) from None
    except ValueError:
        return False  # a spec in YAML's flow style
    return isinstance(document, dict) and document.get("kind") == "auditc-plan"
