"""minikube's artifacts: files through $MINIKUBE_HOME/files, flags through
`minikube start --extra-config`."""

from __future__ import annotations

from compiler import __version__
from compiler.artifacts.apiserver import ApiserverChange
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.platforms.minikube.settings import settings
from compiler.resolve import Resolved
from compiler.templates import render_template


def lower(built: Build) -> list[Artifact]:
    config = built.node_files
    out = cluster_artifacts(built)
    out += [Artifact(f"node/{name}", content) for name, content in sorted(config.items())]
    out += plan_artifacts(built, sorted(config))
    return out


def extra_config(change: ApiserverChange) -> list[str]:
    """The --extra-config arguments of `minikube start`, one per apiserver flag."""
    flags = dict(change.flags)
    for name, item in change.list_items:
        flags[name] = f"{flags[name]},{item}" if name in flags else item
    return [f"--extra-config=apiserver.{name}={value}" for name, value in sorted(flags.items())]


def start_arguments(resolved: Resolved, change: ApiserverChange | None) -> list[str]:
    """`minikube start` for the profile; with the audit flags of ``change`` when given."""
    args = ["start", "-p", settings(resolved.site).profile]
    version = resolved.site.spec.kubernetes.version
    if version.count(".") == 2:  # minikube wants a full version; "1.30" leaves minikube's default
        args.append(f"--kubernetes-version=v{version}")
    return [*args, *extra_config(change)] if change is not None else args


def plan_artifacts(built: Build, files: list[str]) -> list[Artifact]:
    resolved = built.resolved
    profile = settings(resolved.site).profile
    config_dir = resolved.paths.config_dir
    files_dir = "files" + config_dir  # under minikube's home ($MINIKUBE_HOME/.minikube)
    start = start_arguments(resolved, built.change)
    spec = {
        "platform": resolved.platform.name,
        "transport": resolved.platform.data.transport,
        "profile": profile,
        "files": [f"node/{name}" for name in files],
        "steps": [
            {
                "action": "stage",
                "does": f"install the node files into $MINIKUBE_HOME/.minikube/{files_dir}/ "
                f"(minikube copies that tree to {config_dir} in the node at start)",
            },
            {
                "action": "stop",
                "does": "stop the profile so the files and flags are applied at the next start",
            },
            {"action": "start", "command": ["minikube", *start]},
            {"action": "verify", "does": "kubectl get --raw /readyz on the profile's context"},
        ],
    }
    plain = start_arguments(resolved, None)
    first = {
        "action": "start-cluster",
        "command": ["minikube", *plain],
        "does": "only when the profile is not running: no audit flags yet, there is no receiver yet",
    }
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "files": files,
        "files_dir": files_dir,
        "profile": profile,
        "start": start,
        "plain_start": plain,
        **common.cluster_context(resolved),
    }
    script = render_template("platforms/minikube/templates/apply.sh.j2", context)
    return common.plan_artifacts(built, spec, script, first=[first])
