"""Constrained scalar types for the site spec, each with a message a person can act on.

Any string that may reach a shell script, a YAML file on a node or a kubeconfig is
restricted here to a character set that cannot break out of its context. Quoting in
the templates is the second line of defence, not the first. Every pattern must match the
whole value (``fullmatch``: a ``$`` anchor would let one trailing newline through).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_NODE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
_REL_PATH = re.compile(r"[A-Za-z0-9._/-]+")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_DURATION = re.compile(r"([0-9]+(ns|us|ms|s|m|h))+")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_VERSION = re.compile(r"[0-9]{1,9}\.[0-9]{1,9}(\.[0-9]{1,9})?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_GIT_URL = re.compile(
    r"((https?|ssh|git)://[A-Za-z0-9.@:-]+(:[0-9]+)?/[A-Za-z0-9._~/-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+)"
)
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/%-]*)?")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*")
# Go's time.ParseDuration, which kube-apiserver uses: the value must fit an int64 of ns
_DURATION_PART = re.compile(r"([0-9]+)(ns|us|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_MAX_DURATION_NS = 2**63 - 1


def excerpt(value: object, limit: int = 40) -> str:
    """A value as an error message may quote it: one line, control characters escaped, cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def _check(predicate: Callable[[str], bool], expected: str) -> Callable[[str], str]:
    def validate(value: str) -> str:
        if not predicate(value):
            raise ValueError(f"{expected} (got {excerpt(value)})")
        return value

    return validate


def pattern(regex: str, expected: str) -> AfterValidator:
    """A validator for a platform's own names: the whole value matches ``regex``; the
    message says what was expected and shows (an excerpt of) what was given."""
    compiled = re.compile(regex)
    return AfterValidator(_check(lambda v: bool(compiled.fullmatch(v)), f"must be {expected}"))


def _int_range(low: int, high: int) -> Callable[[int], int]:
    def validate(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be {low}..{high} (got {value})")
        return value

    return validate


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 address; no IPv6 zone id (`%eth0`): Python's parser accepts anything
    after the `%`, and none of the programs the value reaches needs one."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host(value: str) -> bool:
    """An IP address or a DNS host name: no spaces, quotes or shell metacharacters."""
    if is_ip(value):
        return True
    if not value or len(value) > 253:
        return False
    return all(_HOST_LABEL.fullmatch(label) and len(label) <= 63 for label in value.split("."))


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


def _is_node_path(value: str) -> bool:
    return (
        len(value) <= 1024
        and bool(_NODE_PATH.fullmatch(value))
        and ".." not in value.split("/")
        and "//" not in value
    )


def _is_node_file(value: str) -> bool:
    """A file's path: a node path with a file name (not `/`, not ending in `/`)."""
    return _is_node_path(value) and not value.endswith("/") and value.rsplit("/", 1)[1] not in ("", ".")


def _is_duration(value: str) -> bool:
    if len(value) > 32 or not _DURATION.fullmatch(value):
        return False
    total = sum(int(n) * _NANOSECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    return total <= _MAX_DURATION_NS


def _is_rel_path(value: str) -> bool:
    return len(value) <= 1024 and bool(_REL_PATH.fullmatch(value)) and not value.startswith("/")


def _is_label_key(value: str) -> bool:
    prefix, _, name = value.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_VALUE.fullmatch(name))


DNSLabel = Annotated[
    str,
    AfterValidator(
        _check(
            lambda v: len(v) <= 63 and bool(_DNS_LABEL.fullmatch(v)),
            "must be a DNS-1123 label: 1..63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
        )
    ),
]
DNSSubdomain = Annotated[
    str,
    AfterValidator(
        _check(
            lambda v: len(v) <= 253 and bool(DNS_SUBDOMAIN.fullmatch(v)),
            "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'",
        )
    ),
]
LabelKey = Annotated[str, AfterValidator(_check(_is_label_key, "must be a Kubernetes label key"))]
LabelValue = Annotated[
    str,
    AfterValidator(
        _check(
            lambda v: len(v) <= 63 and bool(_LABEL_VALUE.fullmatch(v)),
            "must be a Kubernetes label value: up to 63 letters, digits, '-', '_' or '.'",
        )
    ),
]
Port = Annotated[int, AfterValidator(_int_range(1, 65535))]
NodePortNumber = Annotated[int, AfterValidator(_int_range(30000, 32767))]
PositiveInt = Annotated[int, AfterValidator(_int_range(1, 2**31 - 1))]
NonNegativeInt = Annotated[int, AfterValidator(_int_range(0, 2**31 - 1))]


def _non_negative(value: float) -> float:
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a number >= 0 (got {value})")
    return value


NonNegativeNumber = Annotated[int | float, AfterValidator(_non_negative)]
Host = Annotated[
    str,
    AfterValidator(
        _check(is_host, "must be an IP address or a DNS host name (no spaces, quotes or shell characters)")
    ),
]
IPAddress = Annotated[str, AfterValidator(_check(is_ip, "must be an IPv4 or IPv6 address"))]
CIDR = Annotated[str, AfterValidator(_check(_is_cidr, "must be a network in CIDR form, e.g. 10.96.0.0/12"))]
NodePath = Annotated[
    str,
    AfterValidator(
        _check(_is_node_path, "must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    ),
]
NodeFile = Annotated[
    str,
    AfterValidator(
        _check(_is_node_file, "must be the absolute path of a file (letters, digits, '.', '_', '-', '/')")
    ),
]
LogPath = Annotated[
    str,
    AfterValidator(
        _check(
            lambda v: v == "-" or _is_node_file(v),
            "must be '-' (stdout) or the absolute path of a file (letters, digits, '.', '_', '-', '/')",
        )
    ),
]
RelativeFile = Annotated[
    str,
    AfterValidator(
        _check(_is_rel_path, "must be a path relative to the spec file (letters, digits, '.', '_', '-', '/')")
    ),
]
URLPath = Annotated[
    str,
    AfterValidator(_check(lambda v: bool(_URL_PATH.fullmatch(v)), "must be a URL path starting with '/'")),
]
URL = Annotated[
    str,
    AfterValidator(_check(lambda v: len(v) <= 2048 and bool(_URL.fullmatch(v)), "must be an http(s):// URL")),
]
GitURL = Annotated[
    str,
    AfterValidator(
        _check(
            lambda v: bool(_GIT_URL.fullmatch(v)),
            "must be a git repository URL (https://host/org/repo.git, ssh://..., or git@host:org/repo.git)",
        )
    ),
]
Duration = Annotated[
    str,
    AfterValidator(
        _check(_is_duration, "must be a duration like 5s, 1m30s or 10m (at most 2562047h, Go's limit)")
    ),
]
EnvName = Annotated[
    str,
    AfterValidator(
        _check(lambda v: bool(_ENV_NAME.fullmatch(v)), "must be an environment variable name like API_TOKEN")
    ),
]
UnixUser = Annotated[
    str, AfterValidator(_check(lambda v: bool(_UNIX_USER.fullmatch(v)), "must be a Unix user name"))
]
Version = Annotated[
    str,
    AfterValidator(
        _check(lambda v: bool(_VERSION.fullmatch(v)), 'must be a version like "1.30" or "1.30.2"')
    ),
]
SafeText = Annotated[
    str,
    Field(min_length=1, max_length=253),
    AfterValidator(
        _check(
            lambda v: bool(_SAFE_TEXT.fullmatch(v)),
            "must be letters, digits and . _ : @ / + = - only",
        )
    ),
]
