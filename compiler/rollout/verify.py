"""auditc verify: one audit event from the Kubernetes API to a Falco alert, timed.

1. Create a ConfigMap ``auditc-probe-<random>`` in the Falco namespace (compiler/probe.py).
2. Read the log of the pods behind the receiver Service (every container, with the
   runtime's timestamps) until a line carries the probe rule's output for that name, or
   the timeout passes.
3. Delete the ConfigMap, whatever happened.
4. The latency is the alert's log timestamp minus the moment the create was sent (two
   clocks: this machine's and the node's; when they disagree, the time auditc saw it).
   A missing alert is diagnosed from what can be seen: the receiver workload, the
   Service's endpoints, the rendered policy, Falco's priority, and the live state of
   every object, the chart release and every host against the rendered site.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from compiler.artifacts.falco_values import pod_selector, receiver_service_name
from compiler.errors import Refusal, UserError
from compiler.lint.policy_match import probe_decision
from compiler.live.cluster import has_endpoints, kubectl
from compiler.lower.common import falco_workload
from compiler.probe import PRIORITY, PROBE_PREFIX, output_marker, shown_at
from compiler.rollout.apply import Inputs
from compiler.rollout.plan import Plan

STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")


@dataclass
class Verified:
    site: str
    probe: str  # the ConfigMap's name
    ok: bool = False
    latency: float | None = None  # seconds from the API request to the alert
    alert: str = ""  # the log line
    causes: list[str] = field(default_factory=list)  # why not, the likeliest first


def verify(
    inputs: Inputs,
    timeout: float,
    poll: float,
    say: Callable[[str], None],
    plan_now: Callable[[], Plan],
) -> Verified:
    """Probe the pipeline once; ``plan_now`` reads the live state and plans (only to find
    the cause when no alert comes)."""
    resolved = inputs.resolved
    falco = resolved.site.spec.falco
    if not falco.probe:
        raise Refusal(["falco.probe is false: Falco has no rule for verify to watch (set it true and apply)"])
    namespace, cluster = falco.namespace, inputs.cluster
    service = receiver_service_name(resolved)
    result = Verified(resolved.name, PROBE_PREFIX + secrets.token_hex(4))
    # a cloud's log pulled by a plugin: no receiver Service, the chart's pod labels find Falco
    selector = pod_selector(resolved) if resolved.pull else _selector(inputs, namespace, service)
    probe = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": result.probe,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "auditc"},
        },
        "data": {"purpose": "auditc verify: an audit event for Falco; deleted when verify ends"},
    }
    # the log is read from a little before the request: the node's clock may be behind ours
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=30)
    say(f"verify: creating ConfigMap {namespace}/{result.probe}; waiting up to {timeout:g}s for Falco")
    sent = time.time()
    created = kubectl(cluster, ["create", "-f", "-", "-o", "name"], stdin=json.dumps(probe), timeout=60)
    if created.code != 0:  # a failed verify, not an error: apply still writes its record
        # a create that timed out may still have made it
        kubectl(
            cluster, ["-n", namespace, "delete", "configmap", result.probe, "--ignore-not-found"], timeout=60
        )
        result.causes = [f"cannot create the probe ConfigMap in namespace {namespace}: {created.reason}"]
        return result
    try:
        deadline = time.monotonic() + timeout
        while selector is not None:
            line = _alert(inputs, namespace, selector, since, result.probe)
            if line is not None:
                seen = time.time()
                stamped = _stamp(line)
                result.ok, result.alert = True, line.strip()
                trusted = stamped is not None and 0 <= stamped - sent <= seen - sent + 1
                result.latency = (stamped if trusted and stamped is not None else seen) - sent
                return result
            if time.monotonic() >= deadline:
                break
            time.sleep(poll)
    finally:
        kubectl(
            cluster, ["-n", namespace, "delete", "configmap", result.probe, "--ignore-not-found"], timeout=60
        )
    result.causes = _causes(inputs, namespace, service, selector, timeout, plan_now)
    return result


def _selector(inputs: Inputs, namespace: str, service: str) -> str | None:
    """The receiver Service's pod selector as ``k=v,k=v``; None when there is no Service."""
    got = kubectl(inputs.cluster, ["-n", namespace, "get", f"service/{service}", "-o", "json"], timeout=60)
    if got.code != 0:
        return None
    try:
        chosen = json.loads(got.stdout)["spec"]["selector"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(chosen, dict) or not chosen:
        return None
    return ",".join(f"{key}={value}" for key, value in sorted(chosen.items()))


def _alert(inputs: Inputs, namespace: str, selector: str, since: datetime.datetime, name: str) -> str | None:
    logs = kubectl(
        inputs.cluster,
        [
            "-n",
            namespace,
            "logs",
            "-l",
            selector,
            "--all-containers=true",
            "--prefix",
            "--timestamps",
            "--tail=-1",
            "--max-log-requests=20",
            f"--since-time={since.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        ],
        timeout=60,
    )
    marker = output_marker(name)
    for line in logs.stdout.splitlines():
        if marker in line:  # text or JSON output: the rule's output text is in the line
            return line
    return None


def _stamp(line: str) -> float | None:
    """The runtime's timestamp of a log line (kubectl logs --timestamps), as a Unix time."""
    found = STAMP.search(line)
    if found is None:
        return None
    fraction = (found.group(2) or ".0")[:7]  # Python reads microseconds, the runtime writes ns
    try:
        moment = datetime.datetime.fromisoformat(found.group(1) + fraction + "+00:00")
    except ValueError:
        return None
    return moment.timestamp()


def _causes(
    inputs: Inputs,
    namespace: str,
    service: str,
    selector: str | None,
    timeout: float,
    plan_now: Callable[[], Plan],
) -> list[str]:
    """Why no alert came, from what auditc can see; the likeliest first."""
    resolved, cluster = inputs.resolved, inputs.cluster
    causes = [f"no alert for the probe in Falco's log within {timeout:g}s"]
    pulled = resolved.pull is not None
    if selector is None:
        causes.append(f"the receiver Service {namespace}/{service} does not exist (or selects no pods)")
    workload = falco_workload(resolved)
    status = kubectl(cluster, ["-n", namespace, "rollout", "status", workload, "--timeout=1s"], timeout=60)
    if status.code != 0:
        causes.append(f"Falco's receiver {workload} is not available: {status.reason}")
    if selector is not None and not pulled and not has_endpoints(cluster, namespace, service):
        causes.append(f"the receiver Service {namespace}/{service} has no ready endpoints")
    decision = probe_decision(inputs.built.policy, namespace)
    if not decision.logged:
        causes.append(
            f"the rendered audit policy does not send a create of a ConfigMap in {namespace} "
            f"(level {decision.level}{', ' + decision.origin.label if decision.origin else ''}; AUD029)"
        )
    elif decision.per_user:
        rules = ", ".join(origin.label for origin in decision.per_user)
        causes.append(f"the policy logs the probe or not depending on who runs verify ({rules})")
    values = inputs.built.values.get("falco")
    minimum = values.get("priority") if isinstance(values, dict) else None
    if isinstance(minimum, str) and not shown_at(minimum):
        causes.append(f"Falco outputs only {minimum} and above; the probe's alert is {PRIORITY} (AUD030)")
    try:
        planned = plan_now()
    except (UserError, Refusal) as exc:
        causes.append(f"the live state could not be read to compare: {exc}")
    else:
        for item in planned.items:
            if item.action == "unchanged":
                continue
            if item.kind == "host":
                causes.append(
                    f"{item.name}: the rendered apiserver flags or audit files are not live there "
                    "(auditc plan shows the difference)"
                )
            elif item.kind == "release":
                causes.append(f"the Falco chart release differs from the rendered one ({item.action})")
            else:
                causes.append(
                    f"{item.name}: {item.action} pending (the cluster differs from the rendered site)"
                )
    if len(causes) == 1 and resolved.pull is not None:
        causes.append(
            f"everything auditc can see matches the rendered site: the cloud delivers the log with a "
            f"delay (a longer --timeout may do), else read Falco's log for errors of the "
            f"{resolved.pull.plugin} plugin reading {resolved.pull.where}"
        )
    elif len(causes) == 1:
        causes.append(
            f"everything auditc can see matches the rendered site: read each kube-apiserver's log for "
            f"webhook errors reaching {resolved.receiver.url}, and Falco's log for rule or plugin errors"
        )
    return causes
