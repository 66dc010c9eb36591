"""Canonical bytes for every structured artifact: the one place YAML and JSON are written.

Objects are built as plain data and serialized once here, so formatting never depends on
how a builder happened to construct a dict: keys are ordered by one rule (``apiVersion``,
``kind``, ``metadata`` first, a few identifying keys next, then alphabetical), multi-line
strings are literal blocks, lines are never folded, and every file ends in ``\\n``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

# Plain scalars that a YAML 1.1 reader (Go's yaml.v2 behind kubectl, PyYAML) would not read
# back as strings: written single-quoted whatever the 1.2 emitter thinks.
_YAML11_NON_STRING = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL"
    r"|[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$"
)

_FIRST = ("apiVersion", "kind", "metadata", "name", "rule", "macro", "list", "level")


def _rank(key: str) -> tuple[int, str]:
    return (_FIRST.index(key), "") if key in _FIRST else (len(_FIRST), key)


def canonical(value: Any) -> Any:
    """A copy of ``value`` with every mapping's keys in canonical order."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=lambda k: _rank(str(k)))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


@cache
def _yaml() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import SafeRepresenter

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 1_000_000
    yaml.allow_unicode = True
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.representer.sort_base_mapping_type_on_output = False

    def represent_str(representer: Any, data: str) -> Any:
        # a literal block keeps rule files and PEM data readable in review
        if "\n" in data and all(line == line.rstrip() for line in data.splitlines()):
            return representer.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        if _YAML11_NON_STRING.match(data):
            return representer.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return SafeRepresenter.represent_str(representer, data)

    yaml.representer.add_representer(str, represent_str)
    return yaml


def yaml_bytes(document: Any) -> bytes:
    return yaml_documents_bytes([document])


def yaml_documents_bytes(documents: Iterable[Any]) -> bytes:
    """One or more YAML documents, separated by ``---``."""
    out = io.StringIO()
    for index, document in enumerate(documents):
        if index:
            out.write("---\n")
        _yaml().dump(canonical(document), out)
    return out.getvalue().encode("utf-8")


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
