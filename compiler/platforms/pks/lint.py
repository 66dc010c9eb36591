"""Lint rules of pks only (their ids: lint-rules.yaml in this folder)."""

from __future__ import annotations

import ipaddress

from compiler.lint.checks import Context, Found, receiver_field, webhook_on
from compiler.platforms.pks.data import data
from compiler.platforms.pks.settings import settings


def aud012(ctx: Context) -> Found:
    if settings(ctx.resolved.site).skip_ssl_validation:
        yield ("spec", "platform", "pks", "skipSslValidation"), "skipSslValidation is true"


def aud013(ctx: Context) -> Found:
    if not webhook_on(ctx):
        return
    receiver = ctx.resolved.receiver
    explicit = ctx.spec.falco.receiver.address is not None
    where = receiver_field("address") if explicit else receiver_field("service", "clusterIP")
    if receiver.cluster_ip and receiver.address == receiver.cluster_ip:
        yield where, f"the webhook dials the ClusterIP {receiver.address}"
        return
    cidr = ctx.spec.kubernetes.service_cidr
    try:
        address = ipaddress.ip_address(receiver.address)
    except ValueError:
        return  # a host name: cannot tell
    if cidr:
        network = ipaddress.ip_network(cidr)
        if address.version == network.version and address in network:
            yield where, f"{address} is inside the service CIDR {cidr}"


def aud014(ctx: Context) -> Found:
    path = ctx.spec.audit.log.path
    if ctx.resolved.paths.manifest_format != "bpm" or not ctx.spec.audit.log.enabled:
        return
    if not path or path == "-":
        return
    writable = data().bpm.writable
    if not any(path.startswith(prefix.rstrip("/") + "/") for prefix in writable):
        yield ("spec", "audit", "log", "path"), f"{path} is not writable for the kube-apiserver job under bpm"


CHECKS = {"AUD012": aud012, "AUD013": aud013, "AUD014": aud014}
