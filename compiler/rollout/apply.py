"""plan and apply, in the order of a rollout: lock, cluster layer, nodes one at a time,
verify, record. The steps are those of the rendered plan/plan.yaml (the list plan/apply.sh
follows too); each action has one handler here.

1. The lock (compiler/rollout/lock.py), then the live state read again: with a plan file,
   anything moved since the plan refuses the apply before anything is touched.
2. The cluster layer, if anything in it differs: engine none applies cluster/ server-side
   and installs the pinned chart; with Argo CD or Flux nothing is applied and the wait
   starts with the controller's object reporting the rendered chart deployed. Then a
   bounded wait until Falco's workload is available and its receiver Service has an
   endpoint: no apiserver is pointed at a receiver that is not there.
3. The hosts whose plan says update, in the spec's order: the node files staged on the
   host, the apiserver checked healthy (the patch script's --check-health), the patch
   script run (it backs up, writes, restarts, waits, restores on failure), the host read
   again and required to match the rendered site. The first failure stops the rollout:
   that host restored, the later ones untouched. A platform without a patch script
   (Platform.shells is None) restarts its node with new flags instead (restart_host).
4. The platform's steps after the nodes (the AuditSink, a durable runtime config), then
   verify (compiler/rollout/verify.py) when asked, still under the lock.
5. A record of the apply in the state directory (outside output/).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compiler.artifacts.falco_values import receiver_service_name
from compiler.datafiles import yaml_documents
from compiler.errors import Refusal, UserError
from compiler.live.cluster import Kubectl, call, has_endpoints, helm, helm_release, kubectl, object_key
from compiler.live.compare import Change, compare, expected_hosts, project
from compiler.live.snapshot import MANAGEMENT_KEY, Snapshot, gather, node_files, read_cloud
from compiler.nodepatch import PATCH_SCRIPT
from compiler.platform import CloudSetting, Restart
from compiler.rollout import plan as plans
from compiler.rollout.lock import Lock, holder_identity
from compiler.rollout.plan import Item, Plan
from compiler.templates import shq
from compiler.transport import NodeAccess, NodeShell, remove_stage

if TYPE_CHECKING:
    from compiler.rollout.verify import Verified

Outcome = Literal["patched", "restored", "untouched", "unreachable", "interrupted", "unknown"]
NODE_ACTIONS = {"stage", "patch", "cleanup", "gate", "rollout", "stop", "start", "verify"}
CLUSTER_ACTIONS = {"cluster-objects", "install-falco", "wait-for-falco", "gitops", "audit-sink", "durable"}
# steps of a session plan/apply.sh opens itself (log in, get credentials, find the hosts,
# start a stopped cluster): auditc apply runs in the operator's session (logged-in CLIs,
# the kubectl context), as plan does, and finds the hosts when it reads them
SESSION_ACTIONS = {"check", "login", "credentials", "deployment", "masters", "start-cluster"}


@dataclass(frozen=True)
class Inputs:
    """One site as apply needs it: compiled, with the cluster and nodes it talks to."""

    spec: Path
    built: Any  # compiler.build.Build
    artifacts: dict[str, bytes]
    objects: list[dict[str, Any]]
    cluster: Kubectl
    access: NodeAccess
    # engineCluster: management: the cluster Argo CD or Flux runs in (--management-context)
    # and the objects of management/, which live there
    management: tuple[Kubectl, list[dict[str, Any]]] | None = None

    @property
    def resolved(self) -> Any:
        return self.built.resolved

    @property
    def config_files(self) -> list[str]:
        return sorted(self.built.node_files)

    @property
    def steps(self) -> list[dict[str, Any]]:
        (document,) = yaml_documents(self.artifacts["plan/plan.yaml"])
        steps: list[dict[str, Any]] = document["spec"]["steps"]
        return steps


def poll_interval(default: float) -> float:
    """Seconds between the checks of a wait: ``default``, or $AUDITC_POLL_INTERVAL (tests
    poll faster; the patch script reads the same variable)."""
    try:
        return max(0.01, float(os.environ.get("AUDITC_POLL_INTERVAL", default)))
    except ValueError:
        return default


@dataclass
class Options:
    wait_timeout: float = 300  # seconds for Falco's receiver, and for each apiserver
    no_wait: bool = False  # the patch script's --no-wait
    state_dir: Path | None = None
    poll: float = field(default_factory=lambda: poll_interval(2.0))  # between a wait's checks


@dataclass
class Live:
    snapshot: Snapshot
    release: Any  # compiler.live.cluster.Release | None (engine none only)


@dataclass
class HostResult:
    host: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Applied:
    site: str
    plan: Plan
    steps: list[str] = field(default_factory=list)  # what the cluster layer did, a line each
    hosts: list[HostResult] = field(default_factory=list)
    ok: bool = True
    reason: str = ""  # why the rollout stopped
    record: Path | None = None
    verified: Verified | None = None  # auditc verify at the end (None: not run)


class Refused(Refusal):
    """apply will not start: a stale plan, a site it cannot roll out; nothing touched."""


class _Stopped(Exception):
    """The cluster layer failed: the rollout stops before any node is touched."""


# ---- reading the live state and planning ---------------------------------------------------


def read_live(inputs: Inputs) -> Live:
    resolved = inputs.resolved
    cluster_objects = [o for o in inputs.objects if _in_cluster_dir(inputs, o)]
    snapshot = gather(
        resolved, cluster_objects, inputs.config_files, inputs.cluster, inputs.access, inputs.management
    )
    release = None
    if resolved.site.spec.gitops.engine == "none":
        falco = resolved.site.spec.falco
        release = helm_release(
            inputs.cluster, falco.release_name, falco.namespace, resolved.target.chart.name
        )
    return Live(snapshot, release)


def _in_cluster_dir(inputs: Inputs, obj: dict[str, Any]) -> bool:
    key = object_key(obj)
    return any(
        path.startswith("cluster/")
        and path != "cluster/kustomization.yaml"
        and any(object_key(o) == key for o in yaml_documents(content))
        for path, content in inputs.artifacts.items()
    )


def make_plan(inputs: Inputs, live: Live) -> Plan:
    resolved = inputs.resolved
    diff = compare(
        resolved.name, inputs.artifacts, live.snapshot, inputs.built.apiserver, resolved, inputs.config_files
    )
    by_where: dict[str, list[Change]] = {}
    for change in diff.changes:
        by_where.setdefault(change.where, []).append(change)
    items = [  # a managed site's cloud side first, as in plan.yaml
        Item(
            "cloud",
            setting.name,
            "update" if setting.differs else "unchanged",
            plans.text_digest(setting.live),
            tuple(by_where.get(setting.name, ())),
        )
        for setting in live.snapshot.cloud
    ]
    held = inputs.management[1] if inputs.management is not None else []
    wanted = [(object_key(o), o) for o in inputs.objects if _in_cluster_dir(inputs, o)]
    wanted += [(MANAGEMENT_KEY + object_key(o), o) for o in held]  # read in the management cluster
    for key, obj in wanted:
        found = live.snapshot.objects.get(key)
        changes = tuple(by_where.get(key, ()))
        action: plans.Action = "create" if found is None else ("update" if changes else "unchanged")
        items.append(Item("object", key, action, plans.object_digest(found, obj), changes))
    engine = resolved.site.spec.gitops.engine
    if engine == "none":
        (values,) = yaml_documents(inputs.artifacts["helm/falco-values.yaml"])
        name = resolved.site.spec.falco.release_name
        items.append(plans.release_item(name, live.release, resolved.target.chart.version, values))
    for host in expected_hosts(resolved, live.snapshot):
        files = live.snapshot.nodes.get(host)
        changes = tuple(by_where.get(host, ()))
        items.append(
            Item("host", host, "update" if changes else "unchanged", plans.host_digest(files), changes)
        )
    return Plan(
        site=resolved.name,
        spec=str(inputs.spec),
        spec_digest=resolved.spec_digest,
        output_digest=plans.output_digest(inputs.artifacts),
        engine=engine,
        items=tuple(items),
    )


def unsupported(inputs: Inputs) -> list[str]:
    """Why apply will not start, before the lock: a step it cannot carry out (plan/apply.sh
    can), or an environment variable a step needs that is not set."""
    known = NODE_ACTIONS | CLUSTER_ACTIONS | SESSION_ACTIONS
    actions = [str(step["action"]) for step in inputs.steps if not (step.get("reads") or step.get("cloud"))]
    unknown = [a for a in actions if a not in known]
    reasons = [
        f"the {step['action']} step needs ${name} set ({step.get('does', '')})".replace(" ()", "")
        for step in inputs.steps
        if step["action"] not in SESSION_ACTIONS
        for name in _variables([str(part) for part in step.get("command", [])])
        if not os.environ.get(name)
    ]
    if unknown:
        reasons.append(
            f"auditc apply does not carry out the {inputs.resolved.platform.name} steps "
            f"{', '.join(unknown)} yet: run plan/apply.sh --execute"
        )
    return reasons


# ---- apply -----------------------------------------------------------------------------------


def apply(
    inputs: Inputs,
    planned: Plan | None,
    options: Options,
    confirm: Callable[[Plan], bool],
    say: Callable[[str], None],
    check: Callable[[], Verified] | None = None,
) -> Applied:
    """Roll the site out. ``planned``: a plan file's plan (refused when stale), or None to
    plan now and ask ``confirm``. ``say`` reports progress as it happens. ``check``, when
    given, runs once the site is as rendered (auditc verify), still under the lock."""
    reasons = unsupported(inputs)
    if reasons:
        raise Refused(reasons)
    lock = Lock(inputs.cluster, inputs.resolved.name, holder_identity())
    lock.acquire()
    try:
        live = read_live(inputs)
        now = make_plan(inputs, live)
        if planned is not None:
            reasons = plans.stale(planned, now)
            if reasons:
                raise Refused(["the plan is stale, nothing was touched", *reasons])
        if not now.changes:
            applied = Applied(now.site, now, ["nothing to do: the live state matches the rendered site"])
            _check(applied, check)
            return applied
        if planned is None and not confirm(now):
            raise Refused(["not confirmed; nothing was touched"])
        applied = Applied(now.site, now)
        try:
            _roll_out(inputs, now, live.snapshot.cloud, options, applied, say)
        except (_Stopped, UserError) as stop:  # a CLI that failed mid-way: recorded, exit 1
            applied.ok, applied.reason = False, str(stop)
        except KeyboardInterrupt:
            applied.ok, applied.reason = False, "interrupted"
            applied.record = _record(inputs, applied, options)
            raise
        _check(applied, check)
        applied.record = _record(inputs, applied, options)
        return applied
    finally:
        lock.release()


def _check(applied: Applied, check: Callable[[], Verified] | None) -> None:
    """auditc verify after a rollout that went through; no alert fails the apply."""
    if check is None or not applied.ok:
        return
    applied.verified = check()
    if not applied.verified.ok:
        done = "applied" if applied.plan.changes else "nothing to apply"
        applied.ok, applied.reason = False, f"{done}, but verify saw no alert from Falco"


def _roll_out(
    inputs: Inputs,
    plan: Plan,
    cloud: list[CloudSetting],
    options: Options,
    applied: Applied,
    say: Callable[[str], None],
) -> None:
    anything = plan.cluster_changes or bool(plan.hosts_to_update)
    needed = {  # whether each cluster step has something to do
        "cluster-objects": any(item.action != "unchanged" for item in plan.of("object")),
        "install-falco": any(item.action != "unchanged" for item in plan.of("release")),
        "gitops": anything,
        "wait-for-falco": anything,
        "audit-sink": anything,
        "durable": anything,
    }
    _secrets_present(inputs)
    fixed = [s for s in cloud if s.differs and not s.steps]
    if fixed:
        shown = "; ".join(f"{s.name}: live {s.live}, rendered {s.wanted}" for s in fixed)
        raise _Stopped(f"{shown}: auditc cannot change that, fix it by hand; nothing was touched")
    values: dict[str, str] = _cloud_values(cloud)
    with _site_directory(inputs.artifacts) as site_dir:
        nodes_done = False
        for step in inputs.steps:
            action = str(step["action"])
            command = [str(part) for part in step.get("command", [])]
            if action in SESSION_ACTIONS or step.get("reads"):
                continue  # the operator's session, or a read plan made already
            if step.get("cloud"):
                if any(s.differs and action in s.steps for s in cloud):
                    if any(_unknown(part, values) for part in command):  # made by an earlier step
                        values |= _cloud_values(read_cloud(inputs.resolved))
                    if "until" in step:
                        _poll_step(inputs, step, values, site_dir, options, applied, say)
                        continue
                    answer = _run_step(inputs, command, values, site_dir, applied, say)
                    if "answers" in step:
                        values[str(step["answers"])] = answer.strip()
                continue
            if action in NODE_ACTIONS:
                if not nodes_done:
                    nodes_done = True
                    if not _nodes(inputs, plan, options, applied, say, values):
                        return
            elif not needed[action]:
                continue
            elif action == "gitops":
                say(f"cluster: {step['does']}")
                applied.steps.append(f"gitops: {step['does']}")
            elif action == "wait-for-falco":
                _wait_for_falco(inputs, command, options, applied, say)
            else:
                _run_step(inputs, command, values, site_dir, applied, say)


def _secrets_present(inputs: Inputs) -> None:
    """The Secrets a pulling Falco reads connection strings from are the operator's: one
    that is missing would leave its pod waiting for it, so nothing starts without them."""
    pull = inputs.resolved.pull
    namespace = inputs.resolved.site.spec.falco.namespace
    for secret, key in sorted(set(pull.secret_env.values()) if pull else ()):
        found = kubectl(
            inputs.cluster, ["-n", namespace, "get", "secret", secret, "-o", "jsonpath={.data}"], timeout=60
        )
        if found.code != 0:
            raise _Stopped(
                f"the Secret {secret} is not in namespace {namespace} ({found.reason}): it holds a "
                "connection string Falco reads; create it first, nothing was touched"
            )
        try:
            keys = json.loads(found.stdout or "{}")
        except ValueError:
            keys = {}
        if not isinstance(keys, dict) or key not in keys:
            raise _Stopped(
                f"the Secret {secret} in namespace {namespace} has no key {key} (Falco reads a "
                "connection string from it); nothing was touched"
            )


def _cloud_values(cloud: list[CloudSetting]) -> dict[str, str]:
    """The placeholders the cloud-side reads answered (a sink's writer identity)."""
    return {name: value for setting in cloud for name, value in setting.values.items()}


def _unknown(part: str, values: dict[str, str]) -> bool:
    """Whether a command word still holds a ``<placeholder>`` nothing has answered."""
    return re.search(r"<[a-z-]+>", part) is not None and not any(name in part for name in values)


@contextmanager
def _site_directory(artifacts: dict[str, bytes]) -> Iterator[Path]:
    """The rendered site in a temp dir: the step commands name its files (cluster/, helm/)."""
    with tempfile.TemporaryDirectory(prefix="auditc-site.") as directory:
        root = Path(directory)
        for path, content in artifacts.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        yield root


def _variables(command: list[str]) -> list[str]:
    """The environment variables a step command names (``$NAME`` or ``name=$NAME``)."""
    return [part.split("$", 1)[1] for part in command if "$" in part]


def _filled(command: list[str], values: dict[str, str], env: bool = True) -> list[str]:
    """Placeholders the hosts answered (``<deployment>``) and, with ``env``, ``$NAME`` from
    the environment (unsupported() refused a missing one before anything started)."""
    out = []
    for part in command:
        for placeholder, value in values.items():
            part = part.replace(placeholder, value)
        if env and "$" in part:
            head, name = part.split("$", 1)
            part = head + os.environ.get(name, "")
        out.append(part)
    return out


def _run_step(
    inputs: Inputs,
    written: list[str],
    values: dict[str, str],
    site_dir: Path,
    applied: Applied,
    say: Callable[[str], None],
) -> str:
    """One command of plan.yaml, shown as written ($NAME, not its value); its output."""
    command = _filled(written, values)
    shown = " ".join(_filled(written, {k: v for k, v in values.items() if "$" not in k}, env=False))
    say(f"cluster: {shown}")
    if command[0] == "kubectl":
        result = kubectl(inputs.cluster, command[1:], cwd=str(site_dir))
    elif command[0] == "helm":
        result = helm(inputs.cluster, command[1:], cwd=str(site_dir))
    else:  # a platform's own CLI
        result = call(command, f"run {command[0]}", timeout=600, cwd=str(site_dir))
    if result.code != 0:
        touched = [h.host for h in applied.hosts if h.outcome != "untouched"]
        after = f"after the hosts were changed ({', '.join(touched)})" if touched else "no node was touched"
        raise _Stopped(f"{shown}: {result.reason}; {after}")
    applied.steps.append(shown)
    return result.stdout


def _poll_step(
    inputs: Inputs,
    step: dict[str, Any],
    values: dict[str, str],
    site_dir: Path,
    options: Options,
    applied: Applied,
    say: Callable[[str], None],
) -> None:
    """A read plan.yaml marks ``until``: run again every poll while it prints ``while``
    (a cloud update in progress) until it prints ``until``; anything else stops."""
    written = [str(part) for part in step["command"]]
    until, pending = str(step["until"]), str(step.get("while", ""))
    deadline = time.monotonic() + options.wait_timeout
    say(f"cluster: waiting up to {options.wait_timeout:g}s for {until}: {step.get('does', '')}".rstrip(": "))
    while True:
        command = _filled(written, values)
        result = call(command, f"run {command[0]}", timeout=120, cwd=str(site_dir))
        answer = result.stdout.strip()
        shown = " ".join(_filled(written, {k: v for k, v in values.items() if "$" not in k}, env=False))
        if result.code != 0:
            raise _Stopped(f"{shown}: {result.reason}; no node was touched")
        if answer == until:
            applied.steps.append(f"{shown}: {until}")
            return
        if not pending or answer != pending or time.monotonic() >= deadline:
            why = f"it says {answer or 'nothing'}" if answer != pending else f"still {pending}"
            raise _Stopped(f"{shown}: {why}, not {until} (after {options.wait_timeout:g}s at most)")
        time.sleep(options.poll)


def _wait_for_falco(
    inputs: Inputs, command: list[str], options: Options, applied: Applied, say: Callable[[str], None]
) -> None:
    """With GitOps, until the controller reports the pinned chart deployed; then until
    Falco's workload exists and is available and its receiver Service has endpoints."""
    namespace, workload = command[2], command[5]
    deadline = time.monotonic() + options.wait_timeout
    if inputs.resolved.site.spec.gitops.engine != "none":
        _wait_for_controller(inputs, options, deadline, applied, say)
    say(f"cluster: waiting up to {options.wait_timeout:g}s for {workload} in namespace {namespace}")

    def absent() -> str | None:
        found = kubectl(inputs.cluster, ["-n", namespace, "get", workload, "-o", "name"], timeout=60)
        return None if found.code == 0 else found.reason

    missing = _until(deadline, options.poll, absent)
    if missing is not None:
        raise _Stopped(
            f"{workload} does not exist in namespace {namespace} after {options.wait_timeout:g}s "
            f"({missing}); no node was touched"
        )
    left = max(1, math.ceil(deadline - time.monotonic()))
    status = kubectl(
        inputs.cluster,
        ["-n", namespace, "rollout", "status", workload, f"--timeout={left}s"],
        timeout=left + 60,
    )
    if status.code != 0:
        raise _Stopped(
            f"{workload} in namespace {namespace} is not available ({status.reason}); no node was touched"
        )
    if inputs.resolved.pull is not None:  # Falco pulls the log: no Service, nothing dials it
        applied.steps.append(f"{workload} is available")
        return
    service = receiver_service_name(inputs.resolved)
    no_endpoint = "no ready endpoint"
    endpoints = _until(
        deadline,
        options.poll,
        lambda: None if has_endpoints(inputs.cluster, namespace, service) else no_endpoint,
    )
    if endpoints is not None:
        raise _Stopped(
            f"the receiver Service {namespace}/{service} has no ready endpoints after "
            f"{options.wait_timeout:g}s; no node was touched"
        )
    applied.steps.append(f"{workload} is available and Service {service} has endpoints")


def _until(deadline: float, poll: float, missing: Callable[[], str | None]) -> str | None:
    """Ask ``missing`` every ``poll`` seconds until it says nothing is (None) or the
    deadline passes; its last answer. No sleep goes past the deadline: the last check
    comes right at it."""
    while True:
        answer = missing()
        if answer is None or time.monotonic() >= deadline:
            return answer
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


GITOPS_KINDS = {"Application": "Argo CD", "HelmRelease": "Flux"}


def _wait_for_controller(
    inputs: Inputs, options: Options, deadline: float, applied: Applied, say: Callable[[str], None]
) -> None:
    """Until the Argo CD Application or Flux HelmRelease of falco-release.yaml says it
    deployed the chart version the spec pins (and is healthy / ready): read from the site's
    cluster, or from the management cluster that deploys to it."""
    version = inputs.resolved.target.chart.version
    cluster = inputs.cluster
    objects = inputs.objects
    if inputs.management is not None:
        cluster, objects = inputs.management
    (release,) = [o for o in objects if o.get("kind") in GITOPS_KINDS]
    name = f"{release['metadata']['namespace']}/{release['metadata']['name']}"
    controller = GITOPS_KINDS[str(release["kind"])]
    waiting = f"waiting up to {options.wait_timeout:g}s"
    say(f"cluster: {waiting} for {controller} to deploy chart {version} ({name})")
    missing = _until(
        deadline, options.poll, lambda: _not_deployed(cluster.get(release), release, str(version))
    )
    if missing is not None:
        raise _Stopped(
            f"{controller} has not deployed chart {version} after {options.wait_timeout:g}s "
            f"({release['kind']} {name}: {missing}); no node was touched"
        )
    applied.steps.append(f"{controller} deployed chart {version} ({release['kind']} {name})")


def _not_deployed(live: dict[str, Any] | None, rendered: dict[str, Any], version: str) -> str | None:
    """What the controller still lacks; None when the rendered object is deployed. First
    the live object must carry the rendered spec (the controller synced the commit) and a
    status about that spec (Flux: status.observedGeneration = metadata.generation; Argo CD:
    status.sync.comparedTo.source = spec.source), so a values change at the same chart
    version is not taken for done. Then Argo CD: Synced at revision VERSION and Healthy;
    Flux: the newest status.history entry (v2; lastAppliedRevision in v2beta) at chart
    VERSION and Ready True."""
    if live is None:
        return "it does not exist yet"
    spec = live.get("spec") or {}
    if project(spec, rendered.get("spec")) != rendered.get("spec"):
        return "its spec is not the rendered one yet (the controller has not synced the commit)"
    status = live.get("status") or {}
    generation = (live.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if observed is not None and generation is not None and observed != generation:
        return f"status is of generation {observed}, the object is at {generation}"
    if live.get("kind") == "Application":
        sync, health = status.get("sync") or {}, status.get("health") or {}
        compared = (sync.get("comparedTo") or {}).get("source")
        if compared is not None and project(compared, spec.get("source")) != spec.get("source"):
            return "sync status was compared against an older source"
        if sync.get("revision") != version:
            return f"revision {sync.get('revision') or 'none yet'}"
        if sync.get("status") != "Synced":
            return f"sync status {sync.get('status') or 'unknown'}"
        if health.get("status") != "Healthy":
            return f"health {health.get('status') or 'unknown'}"
        return None
    history = status.get("history") or []
    deployed = history[0].get("chartVersion") if history else status.get("lastAppliedRevision")
    if deployed != version:
        return f"chart version {deployed or 'none yet'}"
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if not ready or ready[0].get("status") != "True":
        reason = ready[0].get("message") or ready[0].get("reason") if ready else "no Ready condition"
        return f"not ready: {reason}"
    return None


# ---- the nodes -----------------------------------------------------------------------------------


def _nodes(
    inputs: Inputs,
    plan: Plan,
    options: Options,
    applied: Applied,
    say: Callable[[str], None],
    values: dict[str, str],
) -> bool:
    """Each host to update in turn; False when the rollout stopped. ``values`` gets the
    placeholders the hosts answer, for the steps after them."""
    resolved = inputs.resolved
    shells = resolved.platform.shells(resolved, inputs.access)
    if shells is None:
        if not any(step["action"] == "start" for step in inputs.steps):
            raise _Stopped(f"auditc apply cannot change {resolved.platform.name} nodes; no node was touched")
        return _restarted(inputs, plan, options, applied, say)
    found = shells
    values.update(resolved.platform.step_values(found))
    by_name = {shell.name: shell for shell in found}
    todo = plan.hosts_to_update
    for index, host in enumerate(todo, 1):
        say(f"== {host} ({index} of {len(todo)})")
        shell = by_name.get(host)
        if shell is None:
            result = HostResult(host, "untouched", "the spec names no such host")
        else:
            result = _host(inputs, shell, options, applied, say)
        applied.hosts.append(result)
        say(f"{host}: {result.outcome}" + (f": {result.detail}" if result.detail else ""))
        if result.outcome != "patched":
            applied.ok = False
            later = todo[index:]
            applied.reason = f"{host} {result.outcome}; rollout stopped" + (
                f", not touched: {', '.join(later)}" if later else ""
            )
            return False
    return True


def _restarted(
    inputs: Inputs, plan: Plan, options: Options, applied: Applied, say: Callable[[str], None]
) -> bool:
    """A node changed by restarting it: the files installed, the start command
    of plan.yaml run, readiness waited for, the node read again. False when it failed."""
    resolved = inputs.resolved
    (start,) = [[str(part) for part in step["command"]] for step in inputs.steps if step["action"] == "start"]
    readers = {reader.name: reader for reader in resolved.platform.transports(resolved, inputs.access)}
    for host in plan.hosts_to_update:
        say(f"== {host}: restarting with the rendered flags")
        started = time.monotonic()
        try:
            restart = Restart(
                _node_files(inputs), start, inputs.cluster.context, options.wait_timeout, options.poll
            )
            done = resolved.platform.restart_host(resolved, restart)
        except KeyboardInterrupt:
            elapsed = round(time.monotonic() - started, 2)
            applied.hosts.append(
                HostResult(host, "interrupted", "during the restart: run auditc plan", elapsed)
            )
            raise
        if done is None:
            raise UserError(f"plan.yaml has a start step, but {resolved.platform.name} restarts no node")
        ok, touched, detail = done
        if not ok:
            outcome: Outcome = "unknown" if touched else "untouched"
            result = HostResult(host, outcome, detail, round(time.monotonic() - started, 2))
        else:
            try:
                if host not in readers:
                    raise UserError(f"{host} is not among the nodes {resolved.platform.name} reads")
                left = _host_changes(inputs, host, readers[host].read_many(_paths(inputs)))
            except UserError as exc:
                left, detail = [], f"restarted, but cannot read the node again: {exc}"
            if detail or left:
                shown = "; ".join(f"{c.path} {c.kind}".strip() for c in left[:3])
                detail = detail or f"restarted, but the node still differs ({shown})"
                result = HostResult(host, "unknown", detail, round(time.monotonic() - started, 2))
            else:
                result = HostResult(host, "patched", "", round(time.monotonic() - started, 2))
        applied.hosts.append(result)
        say(f"{host}: {result.outcome}" + (f": {result.detail}" if result.detail else ""))
        if result.outcome != "patched":
            applied.ok, applied.reason = False, f"{host} {result.outcome}; rollout stopped"
            return False
    return True


def _paths(inputs: Inputs) -> list[str]:
    return node_files(inputs.resolved, inputs.config_files)


def _node_files(inputs: Inputs) -> dict[str, bytes]:
    return {
        path.removeprefix("node/"): content
        for path, content in inputs.artifacts.items()
        if path.startswith("node/") and path.removeprefix("node/") in (PATCH_SCRIPT, *inputs.config_files)
    }


def _read_host(inputs: Inputs, shell: NodeShell) -> dict[str, bytes | None]:
    return shell.read_many(_paths(inputs))


def _host_changes(inputs: Inputs, host: str, files: dict[str, bytes | None]) -> list[Change]:
    snapshot = Snapshot(inputs.resolved.name, nodes={host: files})
    resolved = inputs.resolved
    change, config = inputs.built.change, inputs.config_files
    diff = compare(resolved.name, inputs.artifacts, snapshot, change, resolved, config)
    return [c for c in diff.changes if c.where == host]


def _host(
    inputs: Inputs, shell: NodeShell, options: Options, applied: Applied, say: Callable[[str], None]
) -> HostResult:
    host, started = shell.name, time.monotonic()
    resolved = inputs.resolved

    def result(outcome: Outcome, detail: str = "") -> HostResult:
        return HostResult(host, outcome, detail, round(time.monotonic() - started, 2))

    try:
        before = _read_host(inputs, shell)
        stage = shell.stage(resolved.paths.staging_dir, _node_files(inputs))
    except UserError as exc:
        return result("unreachable", f"{exc}; nothing was changed")
    script = f"sh {shq(stage + '/' + PATCH_SCRIPT)}"
    if shell.root:
        script += f" --root {shq(shell.root)}"
    script += "".join(f" {shq(arg)}" for arg in resolved.platform.patch_arguments(resolved))
    try:
        health = shell.run(f"{script} --check-health", 180)
        if health.unreachable:
            return result("unreachable", f"{_last(health.output)}; nothing was changed")
        if health.code != 0:
            return result(
                "untouched", f"the apiserver is not healthy before the change: {_last(health.output)}"
            )
        say(f"{host}: the apiserver is healthy; patching")
        whole = max(1, math.ceil(options.wait_timeout))  # the patch script counts whole seconds
        wait = " --no-wait" if options.no_wait else f" --wait-timeout {whole}"
        try:
            ran = shell.run(script + wait, options.wait_timeout + 180)
        except KeyboardInterrupt:
            applied.hosts.append(_after_interrupt(inputs, shell, before, started))
            raise
    finally:
        with suppress(UserError, OSError):  # a temp dir left behind harms nothing
            remove_stage(shell, stage)
    if ran.unreachable:
        return result("unknown", f"the connection dropped while patching: {_last(ran.output)}")
    if ran.code == 1:
        return result(
            "restored", f"the apiserver did not come back; the patch script restored it: {_last(ran.output)}"
        )
    if ran.code == 2:
        return result("untouched", f"the patch script refused: {_last(ran.output)}")
    if ran.code != 0:
        return result(
            "restored", f"the patch script failed (exit {ran.code}) and restored: {_last(ran.output)}"
        )
    try:
        after = _read_host(inputs, shell)
    except UserError as exc:
        return result("unknown", f"patched, but cannot read the host again: {exc}")
    left = _host_changes(inputs, host, after)
    if left:
        _restore(shell, before, after)
        shown = "; ".join(f"{c.subject or c.where} {c.path} {c.kind}".strip() for c in left[:3])
        return result(
            "restored", f"after the patch the host still differs ({shown}); its files were put back"
        )
    return result("patched")


def _after_interrupt(
    inputs: Inputs, shell: NodeShell, before: dict[str, bytes | None], started: float
) -> HostResult:
    """What an interrupted host is left as: the patch script finished in its trap."""
    elapsed = round(time.monotonic() - started, 2)
    try:
        now = _read_host(inputs, shell)
    except UserError:
        return HostResult(shell.name, "interrupted", "cannot read the host again: run auditc plan", elapsed)
    if now == before:
        return HostResult(shell.name, "interrupted", "restored: its files are as before", elapsed)
    if not _host_changes(inputs, shell.name, now):
        return HostResult(shell.name, "interrupted", "patched: its files match the rendered site", elapsed)
    return HostResult(shell.name, "interrupted", "neither patched nor as before: run auditc plan", elapsed)


def _restore(shell: NodeShell, before: dict[str, bytes | None], after: dict[str, bytes | None]) -> None:
    """Put back each file that changed, atomically (a dot file next to it, renamed)."""
    changed = {path: content for path, content in before.items() if after.get(path) != content}
    keep = {f"f{index}": content for index, (_, content) in enumerate(sorted(changed.items())) if content}
    stage = shell.stage("/tmp", keep) if keep else ""
    lines = []
    for index, (path, content) in enumerate(sorted(changed.items())):
        target = shell.root + path
        if content is None:
            lines.append(f"rm -f -- {shq(target)}")
            continue
        directory, base = target.rsplit("/", 1)
        temporary = f"{directory}/.{base}.auditc-restore"
        lines.append(
            f"cat {shq(stage + f'/f{index}')} >{shq(temporary)} && mv -f {shq(temporary)} {shq(target)}"
        )
    shell.run(" && ".join(lines) or "true", 120)
    if stage:
        remove_stage(shell, stage)


def _last(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---- the record ----------------------------------------------------------------------------------


def state_dir(given: Path | None) -> Path:
    """$AUDITC_STATE_DIR, else $XDG_STATE_HOME/auditc, else ~/.local/state/auditc."""
    if given is not None:
        return given
    if os.environ.get("AUDITC_STATE_DIR"):
        return Path(os.environ["AUDITC_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "auditc"


def _record(inputs: Inputs, applied: Applied, options: Options) -> Path | None:
    import json

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    directory = state_dir(options.state_dir) / applied.site
    document = {
        "site": applied.site,
        "spec": str(inputs.spec),
        "finished": stamp,
        "ok": applied.ok,
        "reason": applied.reason,
        "plan_digest": applied.plan.digest,
        "spec_digest": applied.plan.spec_digest,
        "output_digest": applied.plan.output_digest,
        "cluster": applied.steps,
        "hosts": [vars(h) for h in applied.hosts],
        "verify": vars(applied.verified) if applied.verified else None,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"apply-{stamp}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        (directory / "last-apply.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    except OSError:
        return None
    return path
