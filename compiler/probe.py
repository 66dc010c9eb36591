"""auditc's probe: one Falco rule of its own, and the request that makes it fire.

``auditc verify`` creates a ConfigMap named ``auditc-probe-<random>`` in the Falco namespace
and waits for the rule's output, carrying that name, in Falco's log: proof that an audit
event went from every link (the policy, the webhook, the receiver, the rules) to an alert.
The rule is rendered into the chart's ``customRules`` unless ``falco.probe: false``.

The condition uses only fields and operators that the k8s audit rules of every supported
Falco release use themselves (tests/artifacts/test_falco_chart.py checks each chart range
against the rules it really loads); quoted values read the same in every release.
"""

from __future__ import annotations

PROBE_FILE = "auditc-probe.yaml"  # in rules.d; Falco >= 0.41 loads only .yaml files there
PROBE_PREFIX = "auditc-probe-"
RULE = "auditc probe"
PRIORITY = "NOTICE"
FIELDS = ("ka.verb", "ka.target.resource", "ka.target.namespace", "ka.target.name", "ka.user.name")

# Falco's priorities, most severe first (falco.yaml `priority` drops what is below it)
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")


def output_marker(name: str) -> str:
    """What the rule's output holds for the probe object ``name``: verify looks for it."""
    return f"configmap={name} "


def rules_text(namespace: str) -> str:
    """The rules file (a YAML list); ``namespace`` is a DNS label, safe in double quotes."""
    condition = (
        f'ka.verb=create and ka.target.resource=configmaps and ka.target.namespace="{namespace}" '
        f'and ka.target.name startswith "{PROBE_PREFIX}"'
    )
    return (
        "# auditc verify creates a ConfigMap auditc-probe-<random> in the Falco namespace and waits\n"
        "# for this rule's output in Falco's log (falco.probe: false leaves the rule out).\n"
        f"- rule: {RULE}\n"
        "  desc: auditc verify's probe ConfigMap reached Falco through the audit pipeline\n"
        f"  condition: {condition}\n"
        "  output: auditc probe seen (configmap=%ka.target.name namespace=%ka.target.namespace "
        "user=%ka.user.name)\n"
        f"  priority: {PRIORITY}\n"
        "  source: k8s_audit\n"
        "  tags: [auditc]\n"
    )


def shown_at(minimum: str) -> bool:
    """Whether Falco with ``priority: minimum`` in falco.yaml outputs the probe's alert."""
    wanted = minimum.lower()
    if wanted == "info":
        wanted = "informational"
    if wanted not in PRIORITIES:
        return True  # Falco refuses an unknown priority at start-up; nothing to judge here
    return PRIORITIES.index(PRIORITY.lower()) <= PRIORITIES.index(wanted)
