"""Fill in every default from the data files and check what spans several fields.

The result, ``Resolved``, is the single frozen value the artifact builders read: no
builder looks at platform.yaml or versions.yaml itself, and none needs to know which
values the user wrote and which were defaulted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from compiler import consistency, versions
from compiler.checks import Checks
from compiler.errors import Diagnostic, UserError
from compiler.falco_target import FalcoTarget, logfile_source, resolve_falco
from compiler.platform import NodePaths, Platform, PlatformData, PullSource, Registry
from compiler.spec.model import Site
from compiler.spec.source import SourceDoc, read_limited
from compiler.spec.types import excerpt
from compiler.versions import Version

CLUSTER_DNS_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


@dataclass(frozen=True)
class Receiver:
    scheme: str
    port: int  # container/service port Falco listens on
    path: str
    service_type: str
    node_port: int | None
    cluster_ip: str | None
    address: str
    dial_port: int  # what the apiserver connects to: the NodePort, or the Service port

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.dial_port}{self.path}"


@dataclass(frozen=True)
class Resolved:
    site: Site
    doc: SourceDoc
    kube: Version
    target: FalcoTarget  # the Falco release, chart and artifacts the site installs
    receiver: Receiver
    platform: Platform  # the registry's entry for spec.platform.type
    node_paths: NodePaths | None  # None: a managed control plane (the cloud runs the apiservers)
    files: dict[str, bytes]  # files the spec names, by the name written in the spec
    spec_digest: str
    sources: tuple[tuple[Path, bytes], ...]  # every file read (spec, bases, named files) as read
    warnings: tuple[Diagnostic, ...] = field(default=())
    pull: PullSource | None = None  # a managed control plane's audit log, pulled by a plugin

    @property
    def managed(self) -> bool:
        """The cloud runs the control plane: no node, no webhook, Falco pulls the audit log."""
        return self.node_paths is None

    @property
    def paths(self) -> NodePaths:
        """The node layout; only self-managed platforms have one, and only their code and
        the node layer (never reached for a managed site) read it."""
        assert self.node_paths is not None, f"site {self.name} has no nodes (managed control plane)"
        return self.node_paths

    @property
    def name(self) -> str:
        return self.site.metadata.name

    def named_display(self, name: str) -> str:
        """How messages name a file the spec names: beside the spec as the user wrote it."""
        return os.path.normpath(Path(self.doc.display).parent / name)

    @property
    def falco(self) -> Version:
        return self.target.version

    @property
    def plugin(self) -> bool:
        """Falco >= 0.32: the k8saudit plugin; else the legacy embedded webserver."""
        return self.target.plugin


def resolve(site: Site, doc: SourceDoc, platforms: Registry, roots: tuple[Path, ...] = ()) -> Resolved:
    """``platforms``: the registry (``compiler.platforms.PLATFORMS``); the site's own entry
    supplies its defaults, node layout and checks."""
    checks = Checks(doc)
    platform = platforms[site.spec.platform.type]
    logfile = site.spec.falco.receiver.mode == "logfile"
    if logfile:
        site = _without_webhook(site, platform, checks)
    spec = site.spec
    kube = _kube_version(site, checks)
    target = resolve_falco(site, checks)
    paths = platform.node_paths(site, doc.node(("spec", "audit", "log")) is not None)
    dialed = paths is not None and not logfile
    receiver = _receiver(site, platform.data, target.plugin, target.version, checks, dialed=dialed)
    pull = platform.pull_source(site, target, checks)
    if logfile and paths is not None and platform.data.logfile:
        pull = logfile_source(site, target, paths.log_path, checks)
    if paths is not None:
        consistency.node_paths(site, paths, checks)
    platform.check(site, paths, kube, checks)
    if spec.sinks and not platform.has_sinks:
        having = ", ".join(name for name, entry in platforms.items() if entry.has_sinks)
        checks.error(
            ("spec", "sinks"), f"sinks exist only on platform {having} (this site is {platform.name})"
        )
    consistency.settings(site, kube, target.plugin, checks)
    consistency.chart_values(site, target, checks)
    consistency.falco_matrix(site, target, checks)
    consistency.chart_labels(site, target, checks)
    files, read = _named_files(site, doc, checks, roots)
    warnings = checks.finish()  # raises on errors (a pull source refused among them)
    # a platform's contract: no nodes only where the cloud writes the log Falco pulls (a
    # site with nodes may pull too: falco.receiver.mode logfile)
    assert paths is not None or pull is not None, f"platform {platform.name}: no nodes and no pull source"
    return Resolved(
        site=site,
        doc=doc,
        kube=kube,
        target=target,
        receiver=receiver,
        platform=platform,
        node_paths=paths,
        files=files,
        spec_digest=_digest(doc, files),
        sources=((doc.path, doc.raw), *((b.path, b.raw) for b in doc.bases), *read),
        warnings=warnings,
        pull=pull,
    )


def _without_webhook(site: Site, platform: Platform, checks: Checks) -> Site:
    """falco.receiver.mode logfile: Falco reads the log file, so no apiserver dials it: the
    site as resolved has the webhook backend off (one set on by hand is an error)."""
    mode = ("spec", "falco", "receiver", "mode")
    if not platform.data.logfile:
        checks.error(
            mode,
            f"logfile is not on platform {platform.name}: its apiservers' log is not on nodes Falco runs on",
        )
    if checks.given(("spec", "audit", "webhook", "enabled")) and site.spec.audit.webhook.enabled:
        checks.error(
            ("spec", "audit", "webhook", "enabled"),
            "falco.receiver.mode logfile has no webhook: Falco reads the log file (leave this out)",
        )
    audit = site.spec.audit
    webhook = audit.webhook.model_copy(update={"enabled": False})
    spec = site.spec.model_copy(update={"audit": audit.model_copy(update={"webhook": webhook})})
    return site.model_copy(update={"spec": spec})


def _kube_version(site: Site, checks: Checks) -> Version:
    path = ("spec", "kubernetes", "version")
    kube = Version.parse(site.spec.kubernetes.version)
    oldest, newest = versions.kube_oldest(), versions.kube_newest()
    if kube.parts[0] != 1:
        checks.error(path, f'must be "1.N" or "1.N.P" (got {excerpt(site.spec.kubernetes.version)})')
        return newest
    if kube.minor < oldest:
        checks.error(path, f"Kubernetes {kube} is not supported; the oldest supported is {oldest}")
        return oldest
    if kube.minor > newest:
        checks.warn(
            path,
            f"Kubernetes {kube} is newer than the newest known ({newest}); treated as {newest}",
            code="AUD018",
        )
        return newest
    return kube


def _receiver(
    site: Site, platform: PlatformData, plugin: bool, falco: Version, checks: Checks, *, dialed: bool
) -> Receiver:
    """Where Falco's webhook receiver listens and the address the apiservers dial;
    ``dialed`` False on a managed control plane, where nothing dials it (no address)."""
    spec = site.spec.falco.receiver
    base = ("spec", "falco", "receiver")
    table = versions.falco_table()["receiver"]["plugin" if plugin else "legacy"]
    port = spec.port or int(table["port"])
    if spec.path:
        path = spec.path
    elif not plugin and falco < Version.parse(versions.fact("falco", "hyphenEndpointFrom")):
        path = str(table["oldPath"])
    else:
        path = str(table["path"])

    service = spec.service
    node_port: int | None = None
    if service.type == "NodePort":
        node_port = service.node_port or platform.receiver.node_port
        if service.cluster_ip:
            checks.error((*base, "service", "clusterIP"), "a pinned clusterIP needs service.type ClusterIP")
    elif service.node_port is not None:
        checks.error((*base, "service", "nodePort"), "nodePort is only for service.type NodePort")
    cidr = site.spec.kubernetes.service_cidr
    if service.cluster_ip and cidr:
        network = ipaddress.ip_network(cidr)
        address = ipaddress.ip_address(service.cluster_ip)
        if address.version != network.version or address not in network:
            checks.error(
                (*base, "service", "clusterIP"),
                f"{service.cluster_ip} is outside spec.kubernetes.serviceCIDR {cidr}",
            )

    address_text = spec.address
    if address_text:
        lowered = address_text.lower().rstrip(".")
        if lowered.endswith(CLUSTER_DNS_SUFFIXES):
            checks.error(
                (*base, "address"),
                f"{address_text} is a cluster DNS name: kube-apiserver runs on the host network and "
                "cannot resolve it; use the pinned ClusterIP, a node IP or localhost with the NodePort",
            )
    elif service.type == "ClusterIP" and service.cluster_ip:
        address_text = service.cluster_ip
    elif platform.receiver.address:
        address_text = platform.receiver.address
    elif not dialed:
        address_text = ""
    else:
        checks.error(
            (*base, "address"),
            "required: the host kube-apiserver dials to reach Falco (a node IP with the NodePort, "
            "or pin service.clusterIP)",
        )
        address_text = "0.0.0.0"

    if plugin and port == int(versions.fact("falco", "webserverPort")):
        checks.error(
            (*base, "port"),
            f"{port} is Falco's own webserver port (health checks, falcoctl); "
            "the k8saudit receiver needs another",
        )
    if service.type == "ClusterIP" and not service.cluster_ip and spec.address:
        checks.error(
            (*base, "service", "clusterIP"),
            "required with service.type ClusterIP: kube-apiserver can reach a ClusterIP service only at "
            "its pinned IP (no node listens on the service port); or use type NodePort",
        )

    tls = spec.tls
    if tls.enabled and not tls.existing_secret:
        key = "falco.pem" if plugin else "server.pem"
        checks.error(
            (*base, "tls", "existingSecret"),
            f"required when tls.enabled: the Secret holding the receiver's certificate (key {key})",
        )
    if not tls.enabled:
        for name in ("existingSecret", "caFile", "insecureSkipVerify"):
            if checks.given((*base, "tls", name)):
                checks.error((*base, "tls", name), "only meaningful with tls.enabled: true")
    if tls.ca_file and tls.insecure_skip_verify:
        checks.error(
            (*base, "tls", "insecureSkipVerify"),
            "cannot be combined with caFile (client-go refuses a CA together with insecure-skip-tls-verify)",
        )

    dial_port = node_port if node_port is not None else port
    scheme = "https" if tls.enabled else "http"
    return Receiver(scheme, port, path, service.type, node_port, service.cluster_ip, address_text, dial_port)


def _named_files(
    site: Site, doc: SourceDoc, checks: Checks, roots: tuple[Path, ...]
) -> tuple[dict[str, bytes], list[tuple[Path, bytes]]]:
    """Read every file the spec names, relative to the file that names it (the spec, or the
    base that wrote the field); also returned as opened and read. Each must stay inside
    the spec's directory or one the user allowed (``--files-root``), symlinks resolved, and
    be a regular text file of at most 1 MiB: a spec never makes auditc read (or echo) a
    file elsewhere on the machine, or block on a FIFO or a device."""
    wanted: list[tuple[tuple[str | int, ...], str]] = []
    tls = site.spec.falco.receiver.tls
    if tls.ca_file:
        wanted.append((("spec", "falco", "receiver", "tls", "caFile"), tls.ca_file))
    for index, name in enumerate(site.spec.falco.rules.custom):
        wanted.append((("spec", "falco", "rules", "custom", index), name))
    if site.spec.audit.policy.file:
        wanted.append((("spec", "audit", "policy", "file"), site.spec.audit.policy.file))
    real: dict[str, str] = {}  # each folder resolved once a spec (a fleet's name one or two)

    def resolved(folder: Path) -> str:
        text = str(folder)
        if text not in real:
            real[text] = os.path.realpath(text)
        return real[text]

    # resolved paths are normal: whether one is inside another is a matter of text
    allowed = [resolved(p) for p in (doc.path.parent, *roots)]
    inside = tuple(root.rstrip("/") + "/" for root in allowed)
    files: dict[str, bytes] = {}
    read: list[tuple[Path, bytes]] = []  # as read, for the render cache (compiler.current)
    read_from: dict[str, str] = {}
    for path, name in wanted:
        named_in = doc.file_of(path).parent
        base = resolved(named_in)
        target = os.path.realpath(os.path.join(base, name))  # noqa: PTH118 (text, above)
        if read_from.setdefault(name, target) != target:
            checks.error(
                path, f"{name} names two files (relative to two bases): give one of them another name"
            )
            continue
        if target not in allowed and not target.startswith(inside):
            checks.error(
                path,
                f"{name} is outside the spec's directory (it resolves to {excerpt(target, 60)}); "
                "keep named files next to the spec, or allow their directory with --files-root",
            )
            continue
        try:
            data = read_limited(Path(base, name), name, "the file")
        except UserError as exc:
            relative = "the base that names it" if tuple(path) in doc.origins else "the spec file"
            checks.error(path, f"{name}: {exc.diagnostics[0].message} (relative to {relative})")
            continue
        if b"\0" in data:
            checks.error(path, f"{name} is binary, expected text")
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            checks.error(path, f"{name} is not UTF-8 text (bad byte at offset {exc.start})")
            continue
        files[name] = data
        read.append((named_in / name, data))  # as named: a folder link retargeted shows
    if tls.ca_file and tls.ca_file in files:
        field = ("spec", "falco", "receiver", "tls", "caFile")
        certificates, problem = _certificates(files[tls.ca_file])
        if problem:
            checks.error(field, f"{tls.ca_file} {problem}: only PEM certificates may pass")
        elif not certificates:
            checks.error(field, f"{tls.ca_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        else:
            # what reaches the webhook kubeconfig on every control plane: the certificates only
            files[tls.ca_file] = certificates
    return files, read


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)
_KEY_HINTS = re.compile(rb"private|putty-user-key|-----begin (?!certificate-----)", re.I)


def _certificates(pem: bytes) -> tuple[bytes, str]:
    """The CERTIFICATE blocks of a CA file, and what else it holds that must not pass (a
    key of any kind: PEM, PGP, PuTTY, in any case)."""
    blocks = list(_PEM_BLOCK.finditer(pem))
    kinds = {m.group(1) for m in blocks}
    if kinds - {b"CERTIFICATE"}:
        return b"", f"holds a {sorted(kinds - {b'CERTIFICATE'})[0].decode()} block"
    outside = _PEM_BLOCK.sub(b"", pem)
    if _KEY_HINTS.search(outside):
        return b"", "holds something that looks like a private key"
    return b"".join(m.group(0).rstrip(b"\r\n") + b"\n" for m in blocks), ""


def _digest(doc: SourceDoc, files: dict[str, bytes]) -> str:
    """The spec, its bases (none: the digest of a spec alone, as before bases) and the
    files it names."""
    sha = hashlib.sha256()
    sha.update(b"spec\0" + doc.raw)
    for base in doc.bases:
        sha.update(b"\0base\0" + base.name.encode() + b"\0" + base.raw)
    for name in sorted(files):
        sha.update(b"\0file\0" + name.encode() + b"\0" + files[name])
    return sha.hexdigest()
