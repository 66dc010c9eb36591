"""EKS: a managed control plane. No node auditc can change and no webhook: AWS writes the
audit log to CloudWatch Logs and one Falco pulls it with the k8saudit-eks plugin.

The folder: settings.py (the spec block), platform.yaml (the plugin and its pinned
artifacts), lint-rules.yaml (AUD031), lower.py (every artifact: cluster/, the
Falco values, the plan with the AWS steps), templates/apply.sh.j2 (the plan as a script).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.platform import (
    CloudRead,
    CloudSetting,
    LintCheck,
    NodePaths,
    NoNodes,
    PlatformData,
    PullPlugin,
    PullSource,
    load_data,
    pullers,
)
from compiler.platforms.eks import lower
from compiler.platforms.eks.settings import EksPlatform, settings
from compiler.versions import Version

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.lint.checks import Context
    from compiler.resolve import Resolved
    from compiler.spec.model import Site

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"  # AWS EKS user guide, IAM roles for service accounts
ASSOCIATION = re.compile(r"\ba-[0-9a-z]+\b")  # a Pod Identity association id (EKS API reference)


class EksPlugin(PullPlugin):
    init_config: dict[str, int]


class EksData(PlatformData):
    plugin: EksPlugin


@cache
def data() -> EksData:
    return load_data(Path(__file__).parent, EksData)


def _pod_identity(read: CloudRead, steps: dict[str, list[str]], where: str, role_arn: str) -> CloudSetting:
    """Which role the association of Falco's ServiceAccount gives: none yet (create it) or
    another (update it; EKS allows one association per ServiceAccount)."""
    name = f"{where}: Pod Identity role of Falco's ServiceAccount"
    ids = ASSOCIATION.findall(read(steps["check-pod-identity"]))
    if not ids:
        return CloudSetting(name, role_arn, "none", ("pod-identity",))
    values = {lower.ASSOCIATION_ID: ids[0]}
    role = [part.replace(lower.ASSOCIATION_ID, ids[0]) for part in steps["check-pod-identity-role"]]
    return CloudSetting(name, role_arn, read(role), ("update-pod-identity",), values)


def _replicas(ctx: Context) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """AUD031: the plugin pulls the whole log in every replica: more than one alerts twice."""
    pods = pullers(ctx.values)
    if pods is not None:
        effect = "nothing reads the log" if pods == "no pod" else "every alert comes more than once"
        yield (
            ("spec", "falco", "values", "controller"),
            f"the k8saudit-eks plugin pulls the cluster's whole audit log in every Falco pod: "
            f"{pods}, so {effect}",
        )


class Eks(NoNodes):
    name = "eks"
    block = EksPlatform
    lint_checks: Mapping[str, LintCheck] = {"AUD031": _replicas}

    @property
    def data(self) -> PlatformData:
        return data()

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        own = settings(site)
        plugin = data().plugin
        row = plugin.required(target.version, "EKS", checks)
        if row is None:
            return None
        annotations = {IRSA_ANNOTATION: own.identity.role_arn} if own.identity.mode == "irsa" else {}
        return PullSource(
            plugin=plugin.name,
            library=plugin.library,
            init_config={"region": own.region, **plugin.init_config},
            open_params=own.cluster_name,
            artifact=f"{plugin.name}:{row.plugin}",
            rules=row.rules,
            json=row.json_,
            service_account_annotations=annotations,
            identity=own.identity.role_arn,
            where=f"CloudWatch Logs /aws/eks/{own.cluster_name}/cluster in {own.region}",
        )

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        if site.spec.falco.syscalls:
            checks.error(
                ("spec", "falco", "syscalls"),
                "not on EKS here: the audit Falco is one pod pulling the log, syscalls need one per node",
            )

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        own = settings(resolved.site)
        steps = {str(step["action"]): [str(a) for a in step["command"]] for step in lower.aws_steps(resolved)}
        where = f"eks cluster {own.cluster_name} ({own.region})"
        types = read(steps["check-audit-log"]).split()
        out = [
            CloudSetting(
                f"{where}: control-plane log type audit",
                "on",
                "on" if "audit" in types else "off",
                ("enable-audit-log", "wait-for-audit-log"),
            )
        ]
        if own.identity.mode == "podIdentity":
            out.append(_pod_identity(read, steps, where, own.identity.role_arn))
        return out

    def lower(self, built: Build) -> list[Artifact]:
        return lower.lower(built)


EKS = Eks()
