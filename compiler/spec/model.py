"""The site spec (SPEC.md, auditc.dev/v1alpha1) as frozen pydantic models.

Fields whose default depends on the platform or on a version (receiver port and path,
chart version, log path, node paths...) are ``None`` here and filled in by
``compiler.resolve`` from the data files, so no version knowledge lives in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from compiler.spec.types import (
    CIDR,
    URL,
    DNSLabel,
    DNSSubdomain,
    Duration,
    GitURL,
    Host,
    IPAddress,
    LabelKey,
    LabelValue,
    LogPath,
    NodePortNumber,
    NonNegativeInt,
    NonNegativeNumber,
    Port,
    PositiveInt,
    RelativeFile,
    SafeText,
    URLPath,
    Version,
)


def _empty() -> list[Any]:
    """A new empty list, the default of a list field. pydantic reads a default factory's
    signature as it builds a model; the builtin ``list``'s is parsed from its text with
    tokenize (2 ms the first time, 0.13 ms each after), a function's read from its code."""
    return []


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        alias_generator=to_camel,
        defer_build=True,
    )


# ---- metadata -------------------------------------------------------------------------


class Metadata(Model):
    name: DNSLabel = Field(description="Site name; output goes to output/<name>/")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Copied as labels onto every generated Kubernetes object"
    )


# ---- kubernetes and platform ----------------------------------------------------------


class Kubernetes(Model):
    version: Version = Field(description='Kubernetes version, "1.N" or "1.N.P" (1.13 .. newest known)')
    service_cidr: CIDR | None = Field(default=None, alias="serviceCIDR")


class PlatformBlock(Model):
    """``spec.platform``: ``type`` picks a registered platform, whose own model (a subclass,
    in ``compiler/platforms/<type>/settings.py``) adds the block named like the type. The
    spec's tagged union of them is made by ``site_model``."""

    type: str


# ---- falco ----------------------------------------------------------------------------


class Chart(Model):
    repository: URL | None = Field(
        default=None, description="Default: the repository that published the chart version"
    )
    name: DNSLabel = "falco"
    version: Version | None = Field(default=None, description="Default follows falco.version")


class ReceiverService(Model):
    type: Literal["NodePort", "ClusterIP"] = "NodePort"
    node_port: NodePortNumber | None = Field(default=None, description="NodePort only; default 30007")
    cluster_ip: IPAddress | None = Field(default=None, alias="clusterIP")


class ReceiverTLS(Model):
    enabled: bool = False
    existing_secret: DNSSubdomain | None = None
    ca_file: RelativeFile | None = None
    insecure_skip_verify: bool = False


class Receiver(Model):
    mode: Literal["webhook", "logfile"] = Field(
        default="webhook",
        description="webhook: kube-apiserver sends its events to Falco's receiver; logfile: Falco "
        "reads the audit log file on each control-plane node (no webhook flag at all)",
    )
    port: Port | None = Field(default=None, description="Default 9765 (plugin) / 8765 (legacy)")
    path: URLPath | None = Field(default=None, description="Default /k8s-audit; /k8s_audit for Falco < 0.24")
    service: ReceiverService = Field(default_factory=ReceiverService)
    address: Host | None = Field(default=None, description="Host the kube-apiserver dials")
    tls: ReceiverTLS = Field(default_factory=ReceiverTLS)


class Rules(Model):
    artifacts_version: Version | None = Field(
        default=None,
        description="Exact k8saudit artifact version falcoctl installs; default follows falco.version",
    )
    follow: bool = Field(
        default=False, description="Let falcoctl follow new k8saudit rules within the minor (off: pinned)"
    )
    custom: list[RelativeFile] = Field(default_factory=_empty)
    lists: dict[SafeText, list[str]] = Field(default_factory=dict)
    disable: list[str] = Field(default_factory=_empty)


class Falco(Model):
    version: Version | None = Field(default=None, description="Falco version; default 0.44.1")
    chart: Chart = Field(default_factory=Chart)
    namespace: DNSLabel = "falco"
    release_name: DNSLabel = "falco"
    receiver: Receiver = Field(default_factory=Receiver)
    rules: Rules = Field(default_factory=Rules)
    syscalls: bool = False
    probe: bool = Field(
        default=True,
        description="auditc's probe rule (auditc verify watches for it); false leaves it out",
    )
    values: dict[str, Any] = Field(default_factory=dict)


# ---- audit ----------------------------------------------------------------------------

Level = Literal["None", "Metadata", "Request", "RequestResponse"]
Stage = Literal["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]


class GroupResources(Model):
    group: str = ""
    resources: list[str] = Field(default_factory=_empty)
    resource_names: list[str] = Field(default_factory=_empty)


class PolicyRule(Model):
    """An audit.k8s.io/v1 PolicyRule; checked like kube-apiserver checks it at start-up."""

    level: Level
    users: list[str] = Field(default_factory=_empty)
    user_groups: list[str] = Field(default_factory=_empty)
    verbs: list[str] = Field(default_factory=_empty)
    resources: list[GroupResources] = Field(default_factory=_empty)
    namespaces: list[str] = Field(default_factory=_empty)
    non_resource_urls: list[str] = Field(default_factory=_empty, alias="nonResourceURLs")
    omit_stages: list[Stage] = Field(default_factory=_empty)
    omit_managed_fields: bool | None = None


class PolicyDocument(Model):
    """A whole audit.k8s.io Policy file (``audit.policy.file``)."""

    api_version: str
    kind: Literal["Policy"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    rules: list[PolicyRule] = Field(default_factory=_empty)
    omit_stages: list[Stage] = Field(default_factory=_empty)
    omit_managed_fields: bool | None = None


class Policy(Model):
    preset: Literal["falco", "gke", "docs-example", "minimal", "none"] = "falco"
    rules: list[PolicyRule] = Field(default_factory=_empty)
    append_rules: list[PolicyRule] = Field(default_factory=_empty)
    omit_stages: list[Stage] = Field(default_factory=lambda: list[Stage](["RequestReceived"]))
    omit_managed_fields: bool = True
    file: RelativeFile | None = None


class Truncate(Model):
    enabled: bool = False
    max_event_size: PositiveInt = 102400
    max_batch_size: PositiveInt = 10485760


class WebhookTruncate(Truncate):
    enabled: bool = True


class Log(Model):
    enabled: bool = True
    path: LogPath | None = Field(default=None, description="Default per platform; '-' is stdout")
    format: Literal["json", "legacy"] = "json"
    max_age: NonNegativeInt = 30
    max_backup: NonNegativeInt = 10
    max_size: NonNegativeInt = 100
    compress: bool = False
    mode: Literal["batch", "blocking", "blocking-strict"] = "blocking"
    truncate: Truncate = Field(default_factory=Truncate)


class Throttle(Model):
    enabled: bool = True
    qps: NonNegativeNumber = 10  # batches per second; a float flag in kube-apiserver
    burst: NonNegativeInt = 15


class Batch(Model):
    buffer_size: PositiveInt = 10000
    max_size: PositiveInt = 400
    max_wait: Duration = "5s"
    throttle: Throttle = Field(default_factory=Throttle)


class Webhook(Model):
    enabled: bool = True
    mode: Literal["batch", "blocking", "blocking-strict"] = "batch"
    batch: Batch = Field(default_factory=Batch)
    initial_backoff: Duration = "10s"
    truncate: WebhookTruncate = Field(default_factory=WebhookTruncate)


class Audit(Model):
    policy: Policy = Field(default_factory=Policy)
    log: Log = Field(default_factory=Log)
    webhook: Webhook = Field(default_factory=Webhook)
    dynamic: bool = False


# ---- sinks (platforms with sink resources) --------------------------------------------


class SinkTLS(Model):
    enabled: bool = True
    insecure_skip_verify: bool = False


class Sink(Model):
    kind: Literal["ClusterLogSink", "LogSink", "ClusterMetricSink", "MetricSink", "ClusterSink", "Sink"]
    name: DNSSubdomain
    namespace: DNSLabel | None = None
    type: Literal["syslog", "webhook"] | None = None
    host: Host | None = None
    port: Port | None = None
    tls: SinkTLS = Field(default_factory=SinkTLS)
    url: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=_empty)
    outputs: list[dict[str, Any]] = Field(default_factory=_empty)


# ---- gitops ---------------------------------------------------------------------------


class ArgoCD(Model):
    namespace: DNSLabel = "argocd"
    project: DNSLabel = "default"
    destination_server: URL = "https://kubernetes.default.svc"


class Flux(Model):
    namespace: DNSLabel = "flux-system"
    interval: Duration = "10m"


class GitOps(Model):
    engine: Literal["none", "argocd", "flux"] = "none"
    repo_url: GitURL | None = Field(default=None, alias="repoURL")
    target_revision: SafeText = "main"
    path: RelativeFile | None = Field(default=None, description="Default output/<name>/cluster")
    engine_cluster: Literal["site", "management"] = Field(
        default="site",
        description="Where Argo CD or Flux runs: in the site's own cluster, or in a management cluster "
        "that deploys to it (the release then goes to output/<name>/management)",
    )
    argocd: ArgoCD = Field(default_factory=ArgoCD)
    flux: Flux = Field(default_factory=Flux)


# ---- the site -------------------------------------------------------------------------


class Lint(Model):
    accept: list[str] = Field(
        default_factory=_empty, description="Lint ids (e.g. AUD002) this site acknowledges; see README"
    )


class SiteSpec(Model):
    kubernetes: Kubernetes
    platform: PlatformBlock
    falco: Falco = Field(default_factory=Falco)
    audit: Audit = Field(default_factory=Audit)
    sinks: list[Sink] = Field(default_factory=_empty)
    gitops: GitOps = Field(default_factory=GitOps)
    lint: Lint = Field(default_factory=Lint)


class Site(Model):
    """One site: ``auditc render`` turns it into output/<metadata.name>/."""

    api_version: Literal["auditc.dev/v1alpha1"]
    kind: Literal["Site"]
    bases: list[str] = Field(
        default_factory=_empty,
        description="kind: SiteDefaults files merged under this site, lowest first, relative to this file",
    )
    metadata: Metadata
    spec: SiteSpec


def site_model(blocks: Sequence[type[PlatformBlock]]) -> type[Site]:
    """The ``Site`` model whose ``spec.platform`` is the tagged union of ``blocks`` (the
    registry's platforms, in registry order): what specs are validated against and what
    ``auditc schema`` prints."""
    from pydantic import create_model

    union: Any = Union[tuple(blocks)]  # noqa: UP007 (a runtime union of classes)
    platform: Any = Annotated[union, Field(discriminator="type")]
    spec = create_model("SiteSpec", __base__=SiteSpec, __module__=__name__, platform=(platform, ...))
    return create_model("Site", __base__=Site, __module__=__name__, __doc__=Site.__doc__, spec=(spec, ...))
