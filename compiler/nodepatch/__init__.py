"""The node patch script (node/apiserver-config.patch.sh): what it is told and how it is
rendered. One script for every platform whose kube-apiserver reads a static pod manifest
or a bpm.yml; POSIX sh and awk only, since nodes have no Python. The shell flow is the
template; the awk patchers are files of their own (programs.py) that it embeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from compiler import __version__
from compiler.artifacts.apiserver import VOLUME_PREFIX, ApiserverChange
from compiler.nodepatch.programs import parts
from compiler.resolve import Resolved
from compiler.templates import render_template

PATCH_SCRIPT = "apiserver-config.patch.sh"
TEMPLATE = "nodepatch/apiserver-config.patch.sh.j2"


def patch_context(resolved: Resolved, change: ApiserverChange, config: dict[str, bytes]) -> dict[str, Any]:
    """Everything the patch script template needs; every value reaches it through ``shq``."""
    digest = hashlib.sha256()
    for name in sorted(config):
        digest.update(name.encode() + b"\0" + config[name] + b"\0")
    paths = resolved.paths
    return {
        "site": resolved.name,
        "compiler_version": __version__,
        "manifest_path": paths.manifest,
        "config_dir": paths.config_dir,
        "config_files": sorted(config),
        "config_digest": digest.hexdigest(),
        "backup_dir": paths.backup_dir,
        "flags": [{"name": name, "value": value} for name, value in change.flags],
        "owned_prefixes": list(change.owned_prefixes),
        "list_items": [{"name": name, "item": item} for name, item in change.list_items],
        "volumes": [
            {
                "name": v.name,
                "host_path": v.host_path,
                "mount_path": v.mount_path,
                "read_only": v.read_only,
                "type": v.type,
            }
            for v in change.volumes
        ],
        "owned_volume_prefix": VOLUME_PREFIX,
        "wait_timeout": resolved.platform.data.patch.wait_timeout,
    }


def patch_script(context: dict[str, Any]) -> bytes:
    """The script for ``context``, its awk programs (compiler/nodepatch/*.awk) embedded."""
    return render_template(TEMPLATE, {**context, "awk": parts()}).encode("utf-8")
