"""pks's artifacts: masters reached with the BOSH CLI, one at a time.

The plan logs in with the pks CLI (credentials from environment variables the spec
names), finds the cluster's BOSH deployment `service-instance_<UUID>` and its masters,
then for each master copies the node files with `bosh scp`, runs the patch script with
`bosh ssh` (bpm.yml under bpm, the static pod manifest otherwise), and stops at the
first master that does not come back healthy.
"""

from __future__ import annotations

import base64
from typing import Any

from compiler import __version__
from compiler.build import Build
from compiler.bundle import Artifact
from compiler.emit import yaml_documents_bytes
from compiler.lower import common
from compiler.lower.common import cluster_artifacts
from compiler.nodepatch import PATCH_SCRIPT, patch_context, patch_script
from compiler.platforms.pks.data import data
from compiler.platforms.pks.settings import settings
from compiler.resolve import Resolved
from compiler.templates import render_template


def lower(built: Build) -> list[Artifact]:
    config = built.node_files
    script = _patch_script(built)
    out = cluster_artifacts(built, extra=built.extra)
    out += [Artifact(f"node/{name}", content) for name, content in sorted(config.items())]
    out.append(Artifact(f"node/{PATCH_SCRIPT}", script, executable=True))
    out += _plan(built, [PATCH_SCRIPT, *sorted(config)], script)
    return out


def mode(resolved: Resolved) -> str:
    return resolved.paths.manifest_format


def _patch_script(built: Build) -> bytes:
    resolved = built.resolved
    context = patch_context(resolved, built.change, built.node_files)
    context["default_mode"] = mode(resolved)
    if mode(resolved) == "bpm":
        # the script also has --mode static-pod: it patches the static pod manifest, at
        # its own default path, with the volumes (bpm mode mounts none: bpm mounts the
        # job's config dir itself)
        context["bpm_path"] = resolved.paths.manifest
        context["manifest_path"] = data().paths.manifest
    return patch_script(context)


def _plan(built: Build, files: list[str], script: bytes) -> list[Artifact]:
    resolved = built.resolved
    config = built.node_files
    pks = settings(resolved.site)
    bosh = data().bosh
    login = [
        "pks",
        "login",
        "-a",
        pks.api,
        "-u",
        f"${pks.credentials.user_env}",
        "-p",
        f"${pks.credentials.password_env}",
    ]
    if pks.skip_ssl_validation:
        login.append("-k")
    access: list[dict[str, Any]] = [  # before the cluster layer: it needs the cluster's kubeconfig
        {
            "action": "check",
            "does": f"refuse to start unless {pks.credentials.user_env} and "
            f"{pks.credentials.password_env} are set (they are never printed)",
        },
        {"action": "login", "command": login},
        {
            "action": "credentials",
            "command": ["pks", "get-credentials", pks.cluster],
            "does": "the kubeconfig context for the cluster layer (skipped with apply.sh --context)",
        },
    ]
    steps: list[dict[str, Any]] = [
        {
            "action": "deployment",
            "command": ["pks", "cluster", pks.cluster, "--json"],
            "does": f"deployment = {bosh.deployment_prefix}<uuid>",
        },
        {
            "action": "masters",
            "command": ["bosh", "-d", "<deployment>", "vms", "--json"],
            "does": f"instances of group {bosh.instance_group}, in order",
        },
        {
            "action": "rollout",
            "does": "for each master, one at a time: bosh scp the files to a fresh "
            f"temp dir, bosh ssh 'sudo sh {PATCH_SCRIPT} --mode {mode(resolved)}' (installs the files, "
            "patches the apiserver config, restarts it, waits until it is healthy, restores it "
            "otherwise), remove the temp dir; stop at the first failure",
        },
    ]
    if pks.durable:
        steps.append(
            {
                "action": "durable",
                "command": [
                    "bosh",
                    "-n",
                    "update-config",
                    "--type=runtime",
                    f"--name={bosh.runtime_config_name}-{resolved.name}",
                    "plan/runtime-config.yaml",
                    "-v",
                    "deployment=<deployment>",
                    "-v",
                    "os_conf_version=$OS_CONF_VERSION",
                ],
                "does": "re-apply the change on every deploy and VM recreate (a pre-start script addon); "
                "takes effect at the deployment's next deploy",
            }
        )
    spec: dict[str, Any] = {
        "platform": resolved.platform.name,
        "transport": data().transport,
        "api": pks.api,
        "cluster": pks.cluster,
        "mode": mode(resolved),
        "rollout": {"order": "serial", "stopOnFailure": True},
        "files": [f"node/{name}" for name in files],
        "steps": steps,
    }
    if resolved.site.spec.sinks:
        spec["sinks"] = "cluster/sinks.yaml: synced with cluster/, or kubectl apply -f"
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "api": pks.api,
        "cluster": pks.cluster,
        "user_env": pks.credentials.user_env,
        "password_env": pks.credentials.password_env,
        "skip_ssl": pks.skip_ssl_validation,
        "prefix": bosh.deployment_prefix,
        "group": bosh.instance_group,
        "files": files,
        "mode": mode(resolved),
        "staging_dir": resolved.paths.staging_dir,
        "durable": pks.durable,
        "runtime_config_name": f"{bosh.runtime_config_name}-{resolved.name}",
        **common.cluster_context(resolved),
    }
    apply_script = render_template("platforms/pks/templates/apply.sh.j2", context)
    out = common.plan_artifacts(built, spec, apply_script, first=access)
    if pks.durable:
        out.append(
            Artifact(
                "plan/runtime-config.yaml", yaml_documents_bytes([_runtime_config(resolved, config, script)])
            )
        )
    return out


def _runtime_config(resolved: Resolved, config: dict[str, bytes], script: bytes) -> dict[str, Any]:
    """A BOSH runtime config: an os-conf pre-start-script on the cluster's masters that
    re-applies the change before monit starts kube-apiserver, on every deploy and recreate."""
    bosh = data().bosh
    payload = {PATCH_SCRIPT: script, **config}
    context = {
        "site": resolved.name,
        "compiler_version": __version__,
        "mode": mode(resolved),
        "files": [(name, base64.b64encode(payload[name]).decode("ascii")) for name in sorted(payload)],
    }
    pre_start = render_template("platforms/pks/templates/pre-start.sh.j2", context)
    return {
        "releases": [{"name": bosh.os_conf["release"], "version": "((os_conf_version))"}],
        "addons": [
            {
                "name": f"auditc-{resolved.name}",
                "include": {"deployments": ["((deployment))"], "instance_groups": [bosh.instance_group]},
                "jobs": [
                    {
                        "name": "pre-start-script",
                        "release": bosh.os_conf["release"],
                        "properties": {"script": pre_start},
                    }
                ],
            }
        ],
    }
