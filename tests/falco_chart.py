"""The real Falco chart as the consumer of helm/falco-values.yaml: `helm template` of the
pinned chart with the rendered values, and what the rendered objects say Falco will do.

Every assertion reads the objects helm renders (the Falco ConfigMap's falco.yaml, the
workload's pod spec, the Services, the falcoctl configuration), never auditc's own idea of
them: which port and path Falco listens on, which rules files it lists under the key its
version reads and whether each is really in the pod, what falcoctl installs and follows.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compiler.falco_matrix import artifact_file
from compiler.versions import Version
from tests import tools
from tests.tools import load_all_strict, require_tool, yaml12

DATA = Path(__file__).resolve().parent / "data"
CHARTS = DATA / "falco-charts"
RULES = DATA / "falco-plugins"
OLDEST_SCHEMA = (1, 25)  # kubernetes-validate ships schemas from 1.25 on

_strict = yaml12  # refuses duplicate keys, as the API server's decoder does


def packaged_charts() -> dict[str, Path]:
    return {p.name.removeprefix("falco-").removesuffix(".tgz"): p for p in sorted(CHARTS.glob("*.tgz"))}


@cache
def chart_file(chart: str, name: str) -> str:
    """A file of a packaged chart (``falco/<name>``)."""
    with tarfile.open(packaged_charts()[chart]) as archive:
        member = archive.extractfile(f"falco/{name}")
        assert member is not None, name
        return member.read().decode("utf-8")


def helm_template(chart: str, values: Path, *, release: str, namespace: str, kube: str, home: Path) -> str:
    require_tool("helm")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    argv = ["helm", "template", release, str(packaged_charts()[chart]), "--namespace", namespace]
    argv += ["-f", str(values), "--kube-version", kube]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def kube_version(site_version: str) -> str:
    parts = tuple(int(p) for p in site_version.split(".")[:2])
    return "{}.{}.0".format(*parts)


def validate_strict(objects: list[dict[str, Any]], site_version: str) -> None:
    """kubernetes-validate --strict on every object helm rendered."""
    parts = tuple(int(p) for p in site_version.split(".")[:2])
    tools.validate_strict(objects, "{}.{}.0".format(*max(parts, OLDEST_SCHEMA)))


def documents(text: str) -> list[dict[str, Any]]:
    return load_all_strict(text)


@dataclass
class Rendered:
    """What the chart rendered, indexed the way the checks need it."""

    objects: list[dict[str, Any]]
    fullname: str
    extra: list[dict[str, Any]] = field(default_factory=list)  # auditc's own cluster/ objects

    def find(self, kind: str, name: str) -> dict[str, Any]:
        (obj,) = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        return obj

    def configmap(self, name: str) -> dict[str, str] | None:
        found = [o for o in self.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
        return dict(found[0].get("data") or {}) if found else None

    @property
    def workload(self) -> dict[str, Any]:
        (obj,) = [
            o
            for o in self.objects
            if o["kind"] in ("Deployment", "DaemonSet") and o["metadata"]["name"] == self.fullname
        ]
        return obj

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.workload["spec"]["template"]
        return spec

    @property
    def falco_container(self) -> dict[str, Any]:
        (container,) = [
            c
            for c in self.pod["spec"]["containers"]
            if "falcosecurity/falco:" in c["image"] or c["name"] == "falco"
        ]
        return container

    @property
    def falco_yaml(self) -> dict[str, Any]:
        """The Falco configuration as Falco reads it: falco.yaml from the chart's ConfigMap,
        then each `-o key.sub=value` of the container's arguments on top (falco --option)."""
        data = self.configmap(self.fullname)
        assert data is not None and "falco.yaml" in data, "the chart's Falco ConfigMap"
        loaded: dict[str, Any] = _strict.load(data["falco.yaml"])
        args = [str(a) for a in self.falco_container.get("args") or []]
        for flag, option in itertools.pairwise(args):
            if flag in ("-o", "--option"):
                key, _, value = option.partition("=")
                *parents, leaf = key.split(".")
                node = loaded
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = _strict.load(value)  # YAML scalar, as falco's yaml_configuration reads it
        return loaded

    @property
    def services(self) -> list[dict[str, Any]]:
        return [o for o in [*self.objects, *self.extra] if o["kind"] == "Service"]

    def volume(self, name: str) -> dict[str, Any]:
        (volume,) = [v for v in self.pod["spec"].get("volumes", []) if v["name"] == name]
        return volume

    @property
    def falcoctl(self) -> dict[str, Any] | None:
        """falcoctl's configuration, when the pod runs falcoctl."""
        init = [c for c in self.pod["spec"].get("initContainers") or [] if "falcoctl" in c["name"]]
        sidecars = [c for c in self.pod["spec"]["containers"] if "falcoctl" in c["name"]]
        if not init and not sidecars:
            return None
        data = self.configmap(f"{self.fullname}-falcoctl")
        assert data is not None, "falcoctl runs without its ConfigMap"
        loaded: dict[str, Any] = _strict.load(data["falcoctl.yaml"])
        return loaded


def render(text: str | list[dict[str, Any]], fullname: str, extra: list[dict[str, Any]]) -> Rendered:
    """``text``: what helm printed, or its documents already read."""
    return Rendered(documents(text) if isinstance(text, str) else text, fullname, extra)


def receiver_listens(falco: dict[str, Any]) -> tuple[str, int, str]:
    """(scheme, port, path) the Falco configuration receives audit events on."""
    if "k8saudit" in (falco.get("load_plugins") or []):
        (plugin,) = [p for p in falco["plugins"] if p["name"] == "k8saudit"]
        assert plugin["library_path"] == "libk8saudit.so"
        url = urlsplit(plugin["open_params"])
        assert url.hostname in (None, ""), "the plugin listens on every address"
        assert url.port is not None
        return url.scheme, url.port, url.path
    webserver = falco["webserver"]
    assert webserver["enabled"] is True, "neither the k8saudit plugin nor the embedded webserver is on"
    scheme = "https" if webserver.get("ssl_enabled") else "http"
    return scheme, int(webserver["listen_port"]), webserver["k8s_audit_endpoint"]


def service_to(rendered: Rendered, dial_host: str, dial_port: int) -> tuple[dict[str, Any], int]:
    """The one Service the apiserver reaches at host:port, and the pod port it forwards to."""
    hits = []
    for service in rendered.services:
        spec = service["spec"]
        for port in spec["ports"]:
            by_node_port = spec.get("type") == "NodePort" and port.get("nodePort") == dial_port
            by_cluster_ip = spec.get("clusterIP") == dial_host and port["port"] == dial_port
            if by_node_port or by_cluster_ip:
                hits.append((service, int(port.get("targetPort", port["port"]))))
    assert len(hits) == 1, f"{len(hits)} Services answer on {dial_host}:{dial_port}"
    return hits[0]


def rules_key(falco_version: Version) -> str:
    return "rules_files" if falco_version >= Version.parse("0.38.0") else "rules_file"


def rules_list(falco: dict[str, Any], falco_version: Version) -> list[str]:
    """The rules files this Falco loads, under the key its version reads."""
    key = rules_key(falco_version)
    assert key in falco, f"Falco {falco_version} reads {key}, which falco.yaml does not have"
    if key == "rules_files":
        assert "rules_file" not in falco, "Falco >= 0.38 refuses a falco.yaml with both rules keys"
    listed: list[str] = falco[key]
    return listed


def provided(rendered: Rendered, path: str) -> str | None:
    """What puts ``path`` into the Falco container: a ConfigMap key, a falcoctl artifact,
    or None when nothing does (Falco then silently loads nothing from it)."""
    mounts = sorted(
        rendered.falco_container.get("volumeMounts", []), key=lambda m: len(m["mountPath"]), reverse=True
    )
    for mount in mounts:
        root = mount["mountPath"].rstrip("/")
        if path != root and not path.startswith(root + "/"):
            continue
        relative = path[len(root) + 1 :]
        volume = rendered.volume(mount["name"])
        if "configMap" in volume:
            data = rendered.configmap(volume["configMap"]["name"]) or {}
            if mount.get("subPath"):
                return f"configmap:{mount['subPath']}" if path == root and mount["subPath"] in data else None
            if relative == "":
                return "configmap:" if data else None  # a directory of rules files
            items = volume["configMap"].get("items")
            keys = {i["path"]: i["key"] for i in items} if items else {k: k for k in data}
            return f"configmap:{keys[relative]}" if relative in keys and keys[relative] in data else None
        if "emptyDir" in volume:
            return _falcoctl_provides(rendered, mount["name"], relative)
        return None
    return None


def _falcoctl_provides(rendered: Rendered, volume: str, relative: str) -> str | None:
    config = rendered.falcoctl
    if config is None:
        return None
    (install,) = [
        c for c in rendered.pod["spec"]["initContainers"] if c["name"] == "falcoctl-artifact-install"
    ]
    (mount,) = [m for m in install["volumeMounts"] if m["name"] == volume]
    artifact = config["artifact"]["install"]
    assert artifact["rulesfilesDir"] == mount["mountPath"], "falcoctl writes rules where Falco reads them"
    for ref in artifact.get("refs") or []:
        name, _, version = ref.partition(":")
        if name in ("k8saudit-rules", "falco-rules") and artifact_file(name) == relative:
            return f"falcoctl:{name}:{version}"
    return None


@cache
def named(rules_text: str, kind: str) -> frozenset[str]:
    """Names of the rules (kind "rule"), lists or macros a rules file defines."""
    (entries,) = load_all_strict(rules_text) or [[]]
    return frozenset(entry[kind] for entry in entries if isinstance(entry, dict) and kind in entry)


def base_rules(rendered: Rendered, source: str) -> str:
    """The text of the k8s audit rules Falco loads, from where ``provided`` found them."""
    if source.startswith("configmap:"):
        data = rendered.configmap(rendered.fullname) or {}
        return data[source.removeprefix("configmap:")]
    version = source.rsplit(":", 1)[1]
    return (RULES / f"k8s_audit_rules-{version}.yaml").read_text()
