"""Command line: each command turns options into one ``compiler.api`` call.

This is the single error boundary and the single place that prints: status and
diagnostics to stderr, data (schema) to stdout. Exit codes follow SPEC.md §8.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from compiler import GC_THRESHOLDS, __version__
from compiler.errors import Diagnostic, ExitCode, Location, Refusal, UserError, WorkerLost, printable

if TYPE_CHECKING:
    from compiler.api import CompiledSite
    from compiler.live.cluster import Clusters

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Compile Kubernetes audit-to-Falco site specs into reviewed, reproducible artifacts.",
)
FilesRoot = Annotated[
    list[Path] | None,
    typer.Option(
        "--files-root",
        help="Also allow files a spec names to be under this directory (repeatable); "
        "by default they must be inside the spec's own directory.",
    ),
]
_debug = False
_writes = False  # whether the running command writes files (for the error summary)
T = TypeVar("T")


def _err(text: str) -> None:
    """Every status line: control characters a path or value holds are shown escaped."""
    print(printable(text), file=sys.stderr)


def _report(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for diagnostic in diagnostics:
        _err(str(diagnostic))


def _guard(call: Callable[[], T]) -> T:
    """Run ``call``: user errors exit 2 without a traceback, bugs exit 3."""
    try:
        return call()
    except Refusal as refusal:
        for reason in refusal.reasons:
            _err(f"auditc: {reason}")
        raise typer.Exit(ExitCode.CHANGED) from None
    except UserError as exc:
        for diagnostic in exc.diagnostics:  # the errors in full, any warnings as one short line
            _err(str(diagnostic) if diagnostic.severity == "error" else diagnostic.short())
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        if any(d.code and d.severity == "error" and not d.accepted for d in exc.diagnostics):
            _err("auditc: lint errors block rendering; fix them or acknowledge the ids in spec.lint.accept")
        _err(f"auditc: {errors} error(s)" + ("; nothing was written" if _writes else ""))
        raise typer.Exit(ExitCode.INVALID) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except WorkerLost as lost:
        done = "; nothing was written" if _writes else ""
        _err(f"auditc: {lost}{done}: run it again (out of memory? --jobs 1 compiles in one process)")
        raise typer.Exit(ExitCode.BUG) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if _debug:
            raise
        _err(
            f"auditc: internal error ({type(exc).__name__}: {exc}). This is a bug: please report it "
            "with the spec that triggered it; --debug shows the traceback."
        )
        raise typer.Exit(ExitCode.BUG) from None


def _version(value: bool) -> None:
    if value:
        print(f"auditc {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    global _debug, _writes
    _debug = debug
    _writes = False  # set by the commands that write


@app.command()
def render(
    specs: Annotated[list[Path], typer.Argument(help="Site spec files or directories of them.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output root.")] = Path("output"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 and list files when output is stale.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print errors only.")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Also list every file created, updated or deleted.")
    ] = False,
    files_root: FilesRoot = None,
    jobs: Annotated[
        int | None, typer.Option("-j", "--jobs", min=1, help="Sites compiled at once [default: the cores].")
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Compile every site, even those the render cache finds current."),
    ] = False,
) -> None:
    """Render each site into OUTPUT/<site>/: one line per warning, then a summary."""
    from compiler import api

    global _writes
    _writes = not check
    roots = _roots(files_root)
    progress = None if quiet else _progress(sys.stderr)
    workers = jobs or api.default_jobs()
    result = _guard(
        lambda: api.render(
            specs, output, check=check, roots=roots, progress=progress, jobs=workers, cache=not no_cache
        )
    )
    warnings = [w for site in result.sites for w in site.warnings]
    if not quiet:
        for line in _warning_lines(result.sites):
            _err(line)
    stale = [change for change in result.changes if change.any]
    for change in result.changes:
        if not (check or verbose):
            break
        rows = [("create", change.created), ("update", change.updated), ("delete", change.deleted)]
        for verb, paths in rows:
            for path in paths:
                _err(
                    f"stale: {output / change.site / path} ({verb})"
                    if check
                    else f"{verb}: {output / change.site / path}"
                )
    if not quiet:
        _err(_render_summary(result, output, check, warnings))
    if check and stale:
        _err("auditc: output is stale; run `auditc render` and commit the result")
        raise typer.Exit(ExitCode.CHANGED)


PROGRESS_FROM = 20  # specs: fewer render before a progress line would be read


def _progress(stream: Any) -> Callable[[int, int, Path], None] | None:
    """A progress line on a terminal for long runs (nothing when ``stream`` is not one, so
    logs and CI output stay clean), rewritten in place and cleared at the end."""
    if not stream.isatty():
        return None

    def show(done: int, total: int, spec: Path) -> None:
        if total < PROGRESS_FROM:
            return
        line = f"\r\033[K[{done}/{total}] {spec.name}" if spec.name else "\r\033[K"  # no name: the end
        stream.write(line[:200])
        stream.flush()

    return show


def _warning_lines(sites: list[CompiledSite]) -> list[str]:
    """One line per finding id and field of a site: further findings of the same kind are
    counted on that line (``auditc validate`` lists each). A line that several sites share
    word for word (a value their base wrote) is printed once, with the count of sites."""
    lines: dict[str, int] = {}
    for site in sites:
        groups: dict[tuple[str, str], list[Diagnostic]] = {}
        for warning in site.warnings:
            groups.setdefault((warning.code, warning.field), []).append(warning)
        for group in groups.values():
            more = f" (+{len(group) - 1} more like it: auditc validate)" if len(group) > 1 else ""
            line = group[0].short(160 - len(more)) + more
            lines[line] = lines.get(line, 0) + 1
    return [line if count == 1 else f"{line} ({count} sites)" for line, count in lines.items()]


def _render_summary(result: object, output: Path, check: bool, warnings: list[Diagnostic]) -> str:
    from collections import Counter

    from compiler.api import RenderResult

    assert isinstance(result, RenderResult)
    rendered = {s.name for s in result.sites}
    changed = [c for c in result.changes if c.any and c.site in rendered]
    removed = [c for c in result.changes if c.site not in rendered]
    files = sum(len(c.created) + len(c.updated) + len(c.deleted) for c in changed)
    verb = "checked against" if check else "rendered into"
    state = "stale" if check else "changed"
    text = f"auditc: {len(result.sites)} site(s) {verb} {output}: "
    text += f"{len(changed)} {state} ({files} file(s)), {len(result.sites) - len(changed)} up to date"
    if removed:
        text += f", {len(removed)} {'to remove' if check else 'removed'}"
    if current := sum(s.current for s in result.sites):
        text += f" ({current} not compiled: inputs and output as the render cache recorded)"
    if warnings:
        counts = Counter(w.code or w.severity for w in warnings)
        listed = ", ".join(f"{code} x{n}" if n > 1 else code for code, n in sorted(counts.items()))
        text += f"; {len(warnings)} warning(s): {listed} (auditc explain ID)"
    return text


class Format(StrEnum):
    text = "text"
    json = "json"


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Site spec files or directories of them.")],
    output_format: Annotated[Format, typer.Option("--format", help="text or json, on stdout.")] = Format.text,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    files_root: FilesRoot = None,
) -> None:
    """Check and lint site specs: findings with ids, exit 1 when an error is not accepted."""
    from compiler import api
    from compiler.lint import blocking

    roots = _roots(files_root)
    analyses = _guard(lambda: api.validate(specs, roots))
    invalid = any(a.errors for a in analyses)
    blocked = False
    report = []
    for analysis in analyses:
        everything = list(analysis.findings)
        bad = blocking(everything, strict=strict)
        blocked = blocked or bool(bad)
        report.append((analysis, everything, bad))
    if output_format is Format.json:
        from compiler.emit import json_bytes

        document = {
            "sites": [
                {
                    "site": a.name,
                    "spec": str(a.spec),
                    "ok": not bad and not a.errors,
                    "errors": [_finding_json(d) for d in a.errors],
                    "findings": [_finding_json(d) for d in everything],
                }
                for a, everything, bad in report
            ]
        }
        sys.stdout.write(json_bytes(document).decode("utf-8"))
    else:
        for analysis, everything, bad in report:
            if analysis.errors:
                _report(analysis.errors)
                print(printable(f"{analysis.spec}: invalid ({len(analysis.errors)} error(s))"))
                continue
            for diagnostic in everything:
                print(diagnostic)
            verdict = f"{len(bad)} blocking finding(s)" if bad else "ok"
            print(printable(f"{analysis.spec}: {verdict} ({analysis.name}, {len(everything)} finding(s))"))
    if invalid:
        raise typer.Exit(ExitCode.INVALID)
    if blocked:
        raise typer.Exit(ExitCode.FINDINGS)


def _finding_json(diagnostic: Diagnostic) -> dict[str, object]:
    from compiler.lint import lookup

    rule = lookup(diagnostic.code) if diagnostic.code else None
    location = diagnostic.location
    return {
        "id": diagnostic.code or None,
        "name": rule.name if rule else None,
        "severity": diagnostic.severity,
        "accepted": diagnostic.accepted,
        "field": diagnostic.field,
        "file": location.file if location else None,
        "line": location.line if location else None,
        "column": location.col if location else None,
        "message": diagnostic.message,
        "why": diagnostic.why or None,
        "fix": diagnostic.fix or None,
    }


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


LiveContext = Annotated[str | None, typer.Option("--context", help="kubectl context.")]
LiveKubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="kubeconfig file (else $KUBECONFIG).")
]
LiveManagement = Annotated[
    str | None,
    typer.Option(
        "--management-context",
        help="gitops.engineCluster management: the kubectl context of the cluster Argo CD or Flux "
        "runs in (same kubeconfig), where the release object is read.",
    ),
]
NodeRoot = Annotated[
    str, typer.Option("--node-root", help="Read every node path under this directory (chroots, tests).")
]
SshIdentity = Annotated[str | None, typer.Option("--ssh-identity", help="ssh private key for the nodes.")]
SshOption = Annotated[list[str] | None, typer.Option("--ssh-option", help="An ssh -o option, repeatable.")]


LocalNodes = Annotated[
    bool,
    typer.Option(
        "--local",
        help="The hosts' files are on this machine (under --node-root): no ssh. For chroots, "
        "tests, and auditc run on a control-plane node itself.",
    ),
]


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h))")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(value: str | float) -> float:
    """Seconds, from kubectl's spelling of a duration (``90s``, ``5m``, ``1m30s``, ``500ms``)
    or a bare number of seconds (an option's default arrives as a number); more than zero."""
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            expected = "expected a duration such as 90, 90s, 5m or 1m30s"
            raise typer.BadParameter(f"{expected} (got {text!r})") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not 0 < seconds < 86400 * 7:
        raise typer.BadParameter(f"expected a duration above 0 and under a week (got {text!r})")
    return seconds


VerifyTimeout = Annotated[
    float,
    typer.Option(
        "--verify-timeout",
        "--timeout",
        parser=duration,
        metavar="DURATION",
        help="How long to wait for Falco's alert on the probe ConfigMap (60s, 2m, ...).",
    ),
]


def _access(node_root: str, identity: str | None, options: list[str] | None, local: bool) -> object:
    from compiler.transport import NodeAccess

    ssh_options = tuple(part for option in options or [] for part in ("-o", option))
    return NodeAccess(node_root, identity, ssh_options, local)


@app.command()
def diff(
    specs: Annotated[list[Path], typer.Argument(help="Site spec files or directories of them.")],
    base: Annotated[
        str | None, typer.Option("--base", help="Compare with the specs at this git revision (PR review).")
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="Compare with the live cluster and nodes.")] = False,
    live_dir: Annotated[
        Path | None, typer.Option("--live-dir", help="Compare with a saved snapshot.")
    ] = None,
    output_format: Annotated[
        DiffFormat, typer.Option("--format", help="text, markdown or json.")
    ] = DiffFormat.text,
    context: LiveContext = None,
    kubeconfig: LiveKubeconfig = None,
    management_context: LiveManagement = None,
    node_root: NodeRoot = "",
    local: LocalNodes = False,
    ssh_identity: SshIdentity = None,
    ssh_option: SshOption = None,
    files_root: FilesRoot = None,
) -> None:
    """Show what differs: rendered vs a git revision (--base) or vs live state (--live,
    --live-dir). Exit 0 same, 1 differs, 2 error."""
    roots = _roots(files_root)
    modes = sum([base is not None, live, live_dir is not None])
    if modes != 1:
        _guard(lambda: _usage("auditc diff needs exactly one of --base GITREF, --live, --live-dir DIR"))
    if base is not None:
        from compiler.diff import formats
        from compiler.diff.review import review

        result = _guard(lambda: review(specs, base, roots))
        if output_format is DiffFormat.json:
            sys.stdout.write(formats.as_json(result))
        elif output_format is DiffFormat.markdown:
            sys.stdout.write(formats.markdown(result))
        else:
            sys.stdout.write(formats.text(result, color=sys.stdout.isatty()))
        if result.invalid_now:  # reported above, with the rest of the review
            _err("auditc: a spec does not compile as it is now")
            raise typer.Exit(ExitCode.INVALID)
        differs = result.differs
    else:
        from compiler import api
        from compiler.live import formats as live_formats

        if len(specs) != 1 or specs[0].is_dir():
            _guard(lambda: _usage("a live diff takes one site spec file"))
        access = _access(node_root, ssh_identity, ssh_option, local)
        outcome = _guard(
            lambda: api.live_diff(
                specs[0],
                snapshot_dir=live_dir,
                clusters=_clusters(context, kubeconfig, management_context),
                access=access,
                roots=roots,
            )
        )
        render = {DiffFormat.json: live_formats.as_json, DiffFormat.markdown: live_formats.markdown}
        sys.stdout.write(render.get(output_format, live_formats.text)(outcome))
        differs = outcome.differs
    if differs:
        raise typer.Exit(ExitCode.CHANGED)


def _roots(files_root: list[Path] | None) -> tuple[Path, ...]:
    """--files-root directories: each must exist (a typo would allow nothing, silently)."""
    roots = tuple(files_root or ())
    bad = [root for root in roots if not root.is_dir()]
    if bad:
        _guard(lambda: _usage(f"--files-root {bad[0]}: not a directory"))
    return roots


def _usage(message: str) -> None:
    raise UserError(message)


@app.command()
def snapshot(
    spec: Annotated[Path, typer.Argument(help="One site spec file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write the snapshot into.")],
    context: LiveContext = None,
    kubeconfig: LiveKubeconfig = None,
    management_context: LiveManagement = None,
    node_root: NodeRoot = "",
    local: LocalNodes = False,
    ssh_identity: SshIdentity = None,
    ssh_option: SshOption = None,
    files_root: FilesRoot = None,
) -> None:
    """Save what is live for one site: its cluster objects and the node files auditc owns."""
    from compiler import api

    global _writes
    _writes = True
    access = _access(node_root, ssh_identity, ssh_option, local)
    roots = _roots(files_root)
    where = _guard(
        lambda: api.snapshot(
            spec,
            output,
            clusters=_clusters(context, kubeconfig, management_context),
            access=access,
            roots=roots,
        )
    )
    _err(f"snapshot written to {where}")


@app.command()
def plan(
    spec: Annotated[Path, typer.Argument(help="One site spec file.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the plan file (JSON) for apply.")
    ] = None,
    output_format: Annotated[Format, typer.Option("--format", help="text or json, on stdout.")] = Format.text,
    context: LiveContext = None,
    kubeconfig: LiveKubeconfig = None,
    management_context: LiveManagement = None,
    node_root: NodeRoot = "",
    local: LocalNodes = False,
    ssh_identity: SshIdentity = None,
    ssh_option: SshOption = None,
    files_root: FilesRoot = None,
) -> None:
    """What apply would do, from the live state: per object, chart release and host.
    Exit 0 nothing to do, 1 changes planned, 2 error."""
    from compiler import api
    from compiler.rollout import formats
    from compiler.rollout.plan import to_json

    access = _access(node_root, ssh_identity, ssh_option, local)
    roots = _roots(files_root)
    planned = _guard(
        lambda: api.plan(
            spec,
            clusters=_clusters(context, kubeconfig, management_context),
            access=access,
            roots=roots,
        )
    )
    if output is not None:
        text = to_json(planned)
        _guard(lambda: _write_text(output, text))
        _err(f"plan written to {output}: apply it with `auditc apply {output}`")
    shown = formats.plan_json(planned) if output_format is Format.json else formats.plan_text(planned)
    sys.stdout.write(shown)
    if planned.changes:
        raise typer.Exit(ExitCode.CHANGED)


def _clusters(context: str | None, kubeconfig: str | None, management: str | None) -> Clusters:
    """The live options as one value: compiler.live.cluster.Clusters."""
    from compiler.live.cluster import Clusters

    return Clusters(context, kubeconfig, management)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(Diagnostic(f"cannot write: {exc.strerror or exc}", Location(str(path)))) from None


@app.command()
def apply(
    target: Annotated[Path, typer.Argument(help="A site spec file, or a plan file from `auditc plan -o`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and show what would be done; touch nothing.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="The patch script does not wait for each apiserver.")
    ] = False,
    wait_timeout: Annotated[
        float,
        typer.Option(
            "--wait-timeout",
            parser=duration,
            metavar="DURATION",
            help="How long to wait for Falco and for each apiserver (300s, 5m, ...).",
        ),
    ] = 300,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Where records of applies go (default: $AUDITC_STATE_DIR, "
            "$XDG_STATE_HOME/auditc or ~/.local/state/auditc).",
        ),
    ] = None,
    force_unlock: Annotated[
        bool,
        typer.Option("--force-unlock", help="Remove the site's apply lock (a dead holder's), then stop."),
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not run auditc verify at the end.")
    ] = False,
    verify_timeout: VerifyTimeout = 60,
    context: LiveContext = None,
    kubeconfig: LiveKubeconfig = None,
    management_context: LiveManagement = None,
    node_root: NodeRoot = "",
    local: LocalNodes = False,
    ssh_identity: SshIdentity = None,
    ssh_option: SshOption = None,
    files_root: FilesRoot = None,
) -> None:
    """Roll the site out: the cluster layer, then each host that differs, one at a time,
    verified and restored on failure. Exit 0 applied or nothing to do, 1 refused, stopped or
    rolled back, 2 error."""
    from compiler import api
    from compiler.rollout import formats
    from compiler.rollout.apply import Options

    access = _access(node_root, ssh_identity, ssh_option, local)
    roots = _roots(files_root)
    clusters = _clusters(context, kubeconfig, management_context)
    if force_unlock:
        holder = _guard(lambda: api.force_unlock(target, clusters=clusters, roots=roots))
        _err(
            f"auditc: lock removed (it was held by {holder})" if holder else "auditc: the site was not locked"
        )
        return
    if dry_run:
        from compiler.rollout.plan import read as read_plan

        planned = _guard(
            lambda: (
                read_plan(target)
                if api._is_plan_file(target)
                else api.plan(target, clusters=clusters, access=access, roots=roots)
            )
        )
        sys.stdout.write(formats.plan_text(planned))
        _err("dry run: nothing was touched")
        raise typer.Exit(ExitCode.CHANGED if planned.changes else ExitCode.OK)

    def confirm(plan: object) -> bool:
        sys.stdout.write(formats.plan_text(plan))  # type: ignore[arg-type]
        sys.stdout.flush()
        if yes:
            return True
        if not sys.stdin.isatty():
            _err("auditc: not a terminal: pass --yes to apply without confirmation")
            return False
        answer = input("Apply these changes? Only 'yes' is accepted: ")
        return answer.strip() == "yes"

    options = Options(wait_timeout=wait_timeout, no_wait=no_wait, state_dir=state_dir)
    applied = _guard(
        lambda: api.apply(
            target,
            clusters=clusters,
            access=access,
            options=options,
            confirm=confirm,
            say=_err,
            verify_timeout=None if no_verify else verify_timeout,
            roots=roots,
        )
    )
    sys.stdout.write(formats.applied_text(applied))
    if not applied.ok:
        raise typer.Exit(ExitCode.CHANGED)


@app.command()
def verify(
    spec: Annotated[Path, typer.Argument(help="One site spec file.")],
    timeout: VerifyTimeout = 60,
    output_format: Annotated[Format, typer.Option("--format", help="text or json, on stdout.")] = Format.text,
    context: LiveContext = None,
    kubeconfig: LiveKubeconfig = None,
    management_context: LiveManagement = None,
    node_root: NodeRoot = "",
    local: LocalNodes = False,
    ssh_identity: SshIdentity = None,
    ssh_option: SshOption = None,
    files_root: FilesRoot = None,
) -> None:
    """Prove the audit pipeline end to end: create a probe ConfigMap, wait for Falco's alert
    on it, report the latency, or name the likely cause. Exit 0 alert seen, 1 no alert,
    2 error."""
    from compiler import api
    from compiler.rollout import formats

    access = _access(node_root, ssh_identity, ssh_option, local)
    roots = _roots(files_root)
    verified = _guard(
        lambda: api.verify(
            spec,
            clusters=_clusters(context, kubeconfig, management_context),
            access=access,
            timeout=timeout,
            say=_err,
            roots=roots,
        )
    )
    shown = (
        formats.verified_json(verified) if output_format is Format.json else formats.verified_text(verified)
    )
    sys.stdout.write(shown)
    if not verified.ok:
        raise typer.Exit(ExitCode.CHANGED)


class Engine(StrEnum):
    argocd = "argocd"
    flux = "flux"


@app.command()
def fleet(
    specs: Annotated[list[Path], typer.Argument(help="Site spec files or directories of them.")],
    engine: Annotated[Engine, typer.Option("--engine", help="argocd or flux.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write this file (when it changed) instead of stdout."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="With -o: write nothing, exit 1 when the file is stale.")
    ] = False,
    files_root: FilesRoot = None,
) -> None:
    """Print one GitOps engine's objects for the whole fleet, for a management cluster: an
    Argo CD ApplicationSet over the sites' output/<site>/cluster, or a Flux GitRepository and
    a Kustomization per site (README: GitOps at fleet scale). Exit 0 written or current, 1
    stale (--check), 2 invalid input."""
    from compiler import api

    if check and output is None:
        _err("auditc: --check compares the file -o names; give -o FILE")
        raise typer.Exit(ExitCode.INVALID)
    roots = _roots(files_root)
    document = _guard(lambda: api.fleet_gitops(specs, engine.value, roots))
    if output is None:
        sys.stdout.write(document.decode("utf-8"))
        return
    target = output
    existed = target.exists()
    written = _guard(lambda: api.write_if_changed(target, document, check=check))
    if not written:
        _err(f"auditc: {target} is up to date")
    elif not check:
        _err(f"auditc: wrote {target}")
    else:
        state = "is stale" if existed else "does not exist"
        _err(f"auditc: {target} {state}: run the same auditc fleet without --check")
        raise typer.Exit(ExitCode.CHANGED)


@app.command()
def schema(
    defaults: Annotated[
        bool, typer.Option("--defaults", help="The schema of a kind: SiteDefaults base instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of the site spec (for editors)."""
    from compiler import api
    from compiler.emit import json_bytes

    sys.stdout.write(json_bytes(_guard(lambda: api.schema(defaults))).decode("utf-8"))


@app.command()
def explain(
    ids: Annotated[list[str] | None, typer.Argument(help="Finding ids or names; none: every id.")] = None,
    output_format: Annotated[Format, typer.Option("--format", help="text or json, on stdout.")] = Format.text,
) -> None:
    """Say why a finding id matters and how to fix it (every id with no argument)."""
    from dataclasses import asdict

    from compiler.catalog import Rule, lookup, rules

    def pick() -> list[Rule]:
        if not ids:
            return list(rules().values())
        found = [(name, lookup(name)) for name in ids]
        unknown = [name for name, rule in found if rule is None]
        if unknown:
            shown = ", ".join(repr(name)[:40] for name in unknown[:5])
            raise UserError(f"unknown finding id {shown} (`auditc explain` lists them all)")
        return [rule for _, rule in found if rule is not None]

    chosen = _guard(pick)
    if output_format is Format.json:
        from compiler.emit import json_bytes

        sys.stdout.write(json_bytes({"ids": [asdict(rule) for rule in chosen]}).decode("utf-8"))
        return
    for rule in chosen:
        print(f"{rule.id} {rule.name} ({rule.severity})")
        print(f"  why: {rule.why}")
        print(f"  fix: {rule.fix}")


def main() -> None:
    """The ``auditc`` command: the app, then a quick exit once its output is flushed."""
    gc.set_threshold(*GC_THRESHOLDS)
    code: object = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    except OSError as exc:  # click handles a closed pipe, not a full disk
        if exc.filename is not None or exc.errno not in _FULL:
            raise
        code = _unwritable_stdout(exc)
    _leave(code)


# what writing a redirected standard output meets on a full or failing disk
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _leave(code: object) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down (every module and object
    freed one by one: 40 ms of a one-site render's 320, README "Speed"). Everything auditc
    writes is closed by then and it starts no thread; where another thread runs, or the
    output cannot be flushed, Python exits as usual (and reports that)."""
    threading = sys.modules.get("threading")
    if not isinstance(code, int | None) or (threading is not None and threading.active_count() > 1):
        raise SystemExit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head`): as click, quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115, PTH123 (stands in until the exit)
        code = code or 1
    except OSError as exc:
        code = _unwritable_stdout(exc)
    except ValueError:  # closed
        raise SystemExit(code) from None
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code or 0)


def _unwritable_stdout(exc: OSError) -> int:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115, PTH123 (what is still buffered is dropped)
    _err(f"auditc: cannot write standard output: {exc.strerror}")
    return ExitCode.INVALID


if __name__ == "__main__":
    main()
