"""What a platform is to the rest of auditc: the ``Platform`` Protocol, its typed data
file, and the node layout it resolves to.

Each platform is one folder under ``compiler/platforms/`` and one entry in the registry
(``compiler/platforms/__init__.py``). Nothing outside those names a platform: the spec
model, resolve, lint, the build stage and the live commands reach platform knowledge
only through the object the registry hands them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from compiler.build import Build
    from compiler.bundle import Artifact
    from compiler.checks import Checks
    from compiler.falco_target import FalcoTarget
    from compiler.lint.checks import Context
    from compiler.resolve import Resolved
    from compiler.spec.model import PlatformBlock, Site
    from compiler.transport import NodeAccess, NodeShell, Transport
    from compiler.versions import Version

# static-pod: a kubelet manifest; bpm: a BOSH bpm.yml; drop-in: a config file of auditc's own
# that the platform merges into the apiserver flags
ManifestFormat = Literal["static-pod", "bpm", "drop-in"]
LintCheck = Callable[["Context"], Iterator[tuple[tuple[str | int, ...], str]]]


@dataclass(frozen=True)
class Restart:
    """What apply asks of a platform whose node changes by a restart (restart_host)."""

    files: Mapping[str, bytes]  # the node files, by name
    start: list[str]  # plan.yaml's start command
    context: str | None  # the kubectl context to check readiness with (None: the platform's)
    wait_timeout: float
    poll: float


@dataclass(frozen=True)
class PullSource:
    """A managed control plane's audit log as Falco reads it: the cloud writes the log, a
    plugin pulls it (no webhook, no nodes, no receiver Service)."""

    plugin: str  # the plugin's name, as falco.yaml loads it
    library: str  # its library_path
    init_config: Mapping[str, Any]
    open_params: str
    artifact: str  # the falcoctl reference that installs it, at an exact version
    rules: str  # the exact k8saudit-rules artifact whose rules accept this plugin
    json: str  # the exact json plugin artifact (the rules need it)
    service_account_annotations: Mapping[str, str]  # the identity the plugin reads the log as
    # that identity (a role ARN, a service account): Falco's pod template names it, so that
    # a change restarts the pods (a running pod keeps the credentials it started with);
    # None where the plugin reads with connection strings from Secrets instead
    identity: str | None
    where: str  # what the log is, for messages and the plan
    # environment variables of Falco's pod from Secrets (name -> (secret, key)): init_config
    # names them as ${NAME}, which Falco expands when it loads falco.yaml
    secret_env: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # the log file is on the control-plane nodes (falco.receiver.mode logfile): Falco runs
    # there, one pod per node, with this directory of the host mounted read-only
    host_log_dir: str | None = None


def pullers(values: Mapping[str, Any]) -> str | None:
    """How many Falco pods the chart values run, where a pull plugin needs exactly one:
    None when one, else "no pod", "<n> pods" or "a pod per node" (a DaemonSet)."""
    controller = values.get("controller") or {}
    if controller.get("kind", "deployment") != "deployment":
        return "a pod per node"
    replicas = (controller.get("deployment") or {}).get("replicas", 1)
    return None if replicas == 1 else ("no pod" if replicas == 0 else f"{replicas} pods")


# runs one read-only cloud CLI command (argv) and gives its standard output
CloudRead = Callable[[list[str]], str]


@dataclass(frozen=True)
class CloudSetting:
    """A setting on the cloud side that a managed site needs, as the cloud's CLI reports it."""

    name: str  # how plan, apply and the live diff name it
    wanted: str
    live: str
    steps: tuple[str, ...]  # the plan.yaml actions that set it: apply runs them when it differs
    # placeholders in those steps' commands the read answered (a sink's writer identity)
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return self.live != self.wanted


@dataclass(frozen=True)
class NodePaths:
    """Where the kube-apiserver's configuration lives on a control-plane node."""

    manifest: str  # the file holding the apiserver flags
    config_dir: str
    log_path: str | None  # None: log backend off; "-": stdout
    backup_dir: str
    staging_dir: str
    manifest_format: ManifestFormat = "static-pod"  # bpm: a bpm.yml process list, no kubelet
    platform_log: bool = False  # the platform writes its own audit log; its flags stay as they are
    # False where the apiserver's flags are all a platform lets auditc set and the config
    # dir sits in a directory the apiserver mounts already
    adds_volumes: bool = True

    @property
    def policy_file(self) -> str:
        return f"{self.config_dir}/audit-policy.yaml"

    @property
    def webhook_config(self) -> str:
        return f"{self.config_dir}/audit-webhook.kubeconfig"

    @property
    def log_dir(self) -> str | None:
        if self.log_path in (None, "-"):
            return None
        return self.log_path.rsplit("/", 1)[0] or "/"


# ---- the data file (compiler/platforms/<type>/platform.yaml) -----------------------------


class DataModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, defer_build=True)


class PathDefaults(DataModel):
    manifest: str = ""
    config_dir: str
    log_path: str | None = None
    backup_dir: str = "/var/lib/auditc/backup"
    staging_dir: str = "/tmp"  # where apply.sh copies node files before running the patch script


class ReceiverDefaults(DataModel):
    node_port: int
    address: str | None  # None: the spec must say where the apiserver dials Falco


class PatchDefaults(DataModel):
    wait_timeout: int = 300  # seconds the patch script waits for a healthy apiserver


class PluginRelease(DataModel):
    """A managed platform's pull plugin for a range of Falco releases: exact artifacts."""

    from_: str = Field(alias="from")  # the oldest Falco minor release the row is for
    plugin: str  # the plugin's exact artifact version
    rules: str  # the exact k8saudit-rules artifact whose rules accept the plugin
    json_: str = Field(alias="json")  # the exact json plugin artifact (the rules need it)
    source: str


class PullPlugin(DataModel):
    """platform.yaml's ``plugin`` section of a managed platform."""

    name: str
    library: str
    releases: list[PluginRelease]

    def pinned(self, falco: Version) -> PluginRelease | None:
        """The newest row whose Falco release is at or below ``falco``'s minor release."""
        rows = [r for r in self.releases if _minor(r.from_) <= tuple(falco.parts[:2])]
        return max(rows, key=lambda r: _minor(r.from_)) if rows else None

    def oldest(self) -> str:
        return min((r.from_ for r in self.releases), key=_minor)

    def required(self, falco: Version, platform: str, checks: Checks) -> PluginRelease | None:
        """The row for ``falco``; None, with the error at spec.falco.version, for a Falco
        older than every row. ``platform``: how the message names the platform."""
        row = self.pinned(falco)
        if row is None:
            checks.error(
                ("spec", "falco", "version"),
                f"{platform} needs Falco {self.oldest()} or later here: the {self.name} plugin auditc "
                f"pins loads from that release on (this site runs {falco})",
            )
        return row


def _minor(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


class PlatformData(DataModel):
    """The fields every platform.yaml has; a platform's own model adds its sections."""

    type: str
    transport: str  # how node files travel (ssh, or a platform CLI): the plan names it
    paths: PathDefaults | None = None  # None: a managed control plane, no node files
    receiver: ReceiverDefaults
    patch: PatchDefaults = PatchDefaults()
    logfile: bool = False  # falco.receiver.mode logfile: Falco can read the log on the nodes


D = TypeVar("D", bound=PlatformData)


@cache
def _read(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def load_data(folder: Path, model: type[D]) -> D:
    """``<folder>/platform.yaml``, validated against the platform's data model."""
    return model.model_validate(_read(folder / "platform.yaml"))


def default_node_paths(
    data: PlatformData, site: Site, *, manifest: str | None, config_dir: str | None
) -> NodePaths:
    """The layout most platforms have: the spec may move the manifest and the config dir,
    the audit log goes to spec.audit.log.path or the platform's default."""
    log = site.spec.audit.log
    defaults = data.paths
    assert defaults is not None, f"platform {data.type} has no node paths"
    return NodePaths(
        manifest=manifest or defaults.manifest,
        config_dir=config_dir or defaults.config_dir,
        log_path=(log.path or defaults.log_path) if log.enabled else None,
        backup_dir=defaults.backup_dir,
        staging_dir=defaults.staging_dir,
    )


# ---- the node layer of a managed control plane ---------------------------------------------


class NoNodes:
    """What a managed platform (the cloud runs the apiservers) answers for the node layer of
    the Protocol: no node paths, hosts, transports or shells, nothing to restart."""

    has_sinks = False

    def node_paths(self, site: Site, written_log: bool) -> NodePaths | None:
        return None

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        return []

    def hosts(self, resolved: Resolved) -> list[str] | None:
        return []

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        return []

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell] | None:
        return None  # no node: plan/apply.sh holds the cloud's steps

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        return ()

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        return None

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        return {}


# ---- the Protocol --------------------------------------------------------------------------


class Platform(Protocol):
    """One platform: its part of the spec, its data, its checks, its lowering, its nodes."""

    @property
    def name(self) -> str:
        """``spec.platform.type``, and the name of the spec block it owns."""
        ...

    @property
    def block(self) -> type[PlatformBlock]:
        """The ``spec.platform`` model of this type (a member of the spec's tagged union)."""
        ...

    @property
    def data(self) -> PlatformData:
        """platform.yaml: node path defaults, the receiver's NodePort, the transport."""
        ...

    @property
    def has_sinks(self) -> bool:
        """Whether ``spec.sinks`` means anything here."""
        ...

    @property
    def lint_checks(self) -> Mapping[str, LintCheck]:
        """Lint rules of this platform only, by id (their catalog entries sit in the folder)."""
        ...

    def node_paths(self, site: Site, written_log: bool) -> NodePaths | None:
        """The node layout for this site; ``written_log``: the spec has an audit.log block.
        None: a managed control plane (no node auditc can change; see pull_source)."""
        ...

    def pull_source(self, site: Site, target: FalcoTarget, checks: Checks) -> PullSource | None:
        """Where a managed control plane's audit log is and the plugin that pulls it; None
        where the apiserver sends its events to Falco's webhook receiver."""
        ...

    def check(self, site: Site, paths: NodePaths | None, kube: Version, checks: Checks) -> None:
        """Spec checks only this platform knows (run while resolving)."""
        ...

    def cloud_state(self, resolved: Resolved, read: CloudRead) -> list[CloudSetting]:
        """The cloud-side settings a managed site needs, from the read-only commands of
        plan.yaml run through ``read`` (the cloud's CLI now, or a snapshot's recorded
        answers); [] on self-managed platforms. ``read`` raises UserError when the CLI is
        missing or refuses."""
        ...

    def cluster_objects(self, resolved: Resolved) -> list[tuple[str, list[dict[str, Any]]]]:
        """Extra cluster/ files of this platform (file name, objects); raises UserError."""
        ...

    def lower(self, built: Build) -> list[Artifact]:
        """Every artifact of the site."""
        ...

    # the node layer, read by snapshot and the live diff

    def hosts(self, resolved: Resolved) -> list[str] | None:
        """The control-plane hosts the spec names; None when they are found at run time."""
        ...

    def transports(self, resolved: Resolved, access: NodeAccess) -> list[Transport]:
        """One reader per control-plane host."""
        ...

    # the node layer of apply

    def shells(self, resolved: Resolved, access: NodeAccess) -> list[NodeShell] | None:
        """One shell per control-plane host, for apply; None where apply cannot change this
        platform's nodes itself (its plan/apply.sh can)."""
        ...

    def patch_arguments(self, resolved: Resolved) -> tuple[str, ...]:
        """What the patch script is run with on this platform's nodes (besides --root)."""
        ...

    def restart_host(self, resolved: Resolved, restart: Restart) -> tuple[bool, bool, str] | None:
        """Where a node is changed by restarting it with new flags: install the files,
        restart with the start command, wait until ready; (done, touched, why not),
        ``touched`` False when the node was left as it was. None on platforms whose nodes
        apply patches through ``shells``."""
        ...

    def step_values(self, shells: list[NodeShell]) -> dict[str, str]:
        """Placeholders in plan.yaml's step commands that are known once the hosts are
        found, and their values (such as ``<deployment>``)."""
        ...


Registry = Mapping[str, Platform]
