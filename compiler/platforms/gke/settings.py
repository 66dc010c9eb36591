"""``spec.platform`` for type gke: the project and cluster, the Pub/Sub topic and
subscription the audit log travels through, and the Google service account Falco reads it
as (Workload Identity)."""

from __future__ import annotations

from typing import Annotated, Literal

from compiler.spec.model import Model, PlatformBlock, Site
from compiler.spec.types import pattern

# Google's own rules: project IDs (Resource Manager), cluster names (GKE), Pub/Sub resource
# names (no "goog" prefix), sink names (Cloud Logging), service account emails (IAM)
ProjectId = Annotated[
    str, pattern(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", "a Google Cloud project ID, e.g. my-project-123")
]
ClusterName = Annotated[
    str,
    pattern(
        r"[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?", "a GKE cluster name: 1..40 lowercase letters, digits or '-'"
    ),
]
Location = Annotated[
    str, pattern(r"[a-z]+-[a-z]+[0-9]+(?:-[a-z])?", "a GKE region or zone, e.g. europe-west1")
]
PubSubName = Annotated[
    str,
    pattern(
        r"(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}",
        "a Pub/Sub name: 3..255 characters, starting with a letter, not with 'goog'",
    ),
]
SinkName = Annotated[str, pattern(r"[A-Za-z0-9_.-]{1,100}", "a Logging sink name: 1..100 of [A-Za-z0-9_.-]")]
ServiceAccountEmail = Annotated[
    str,
    pattern(
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com",
        "a Google service account email, e.g. falco-audit@my-project.iam.gserviceaccount.com",
    ),
]


class GkeSettings(Model):
    project: ProjectId
    cluster: ClusterName
    location: Location
    service_account: ServiceAccountEmail
    topic: PubSubName | None = None  # default falco-audit-<cluster>
    subscription: PubSubName | None = None  # default falco-audit-<cluster>
    sink: SinkName | None = None  # default falco-audit-<cluster>


class GkePlatform(PlatformBlock):
    type: Literal["gke"]
    gke: GkeSettings


def settings(site: Site) -> GkeSettings:
    """The site's ``spec.platform.gke`` block (the site is of this type)."""
    block = site.spec.platform
    assert isinstance(block, GkePlatform)
    return block.gke


def names(own: GkeSettings) -> tuple[str, str, str]:
    """The topic, subscription and sink, defaults filled in."""
    default = f"falco-audit-{own.cluster}"
    return own.topic or default, own.subscription or default, own.sink or default
