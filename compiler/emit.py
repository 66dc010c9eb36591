"""Canonical bytes for every structured artifact: the one place YAML and JSON are written.

Objects are built as plain data and serialized once here, so formatting never depends on
how a builder happened to construct a dict: keys are ordered by one rule (``apiVersion``,
``kind``, ``metadata`` first, a few identifying keys next, then alphabetical), multi-line
strings are literal blocks, lines are never folded, and every file ends in ``\\n``.
"""

from __future__ import annotations

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


_RANKS = {key: (index, "") for index, key in enumerate(_FIRST)}


def _rank(key: str) -> tuple[int, str]:
    return _RANKS.get(key) or (len(_FIRST), key)


def canonical(value: Any) -> Any:
    """A copy of ``value`` with every mapping's keys in canonical order."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=lambda k: _rank(str(k)))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


@cache
def _dumper() -> Any:
    """PyYAML's libyaml emitter (pure-Python fallback, same bytes), with auditc's string rules."""
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[valid-type,misc]
        pass

    def represent_str(dumper: Any, data: str) -> Any:
        # a literal block keeps rule files and PEM data readable in review
        if "\n" in data and all(line == line.rstrip() for line in data.splitlines()):
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        if _YAML11_NON_STRING.match(data):
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return dumper.represent_scalar("tag:yaml.org,2002:str", data)

    Dumper.add_representer(str, represent_str)
    return Dumper


def _dump(document: Any) -> str:
    """The YAML of ``document``. What a fleet's sites share is emitted once per process: a
    whole document (the same namespace, RBAC and policy on every site) and, in mappings
    that differ from site to site, each entry that does not (the chart values differ in a
    label or two, not in their rules or settings)."""
    try:
        ordered = _plain_canonical(document)
    except _NotPlain:
        return _emit(canonical(document))
    if type(ordered) is not dict or len(ordered) < 2:
        return _emit_once(ordered)
    text = _block(ordered)
    return text if text is not None else _emit_once(ordered)


def _block(mapping: dict[str, Any]) -> str | None:
    """A block mapping written entry by entry, a nested mapping of two or more entries
    likewise under its key line, indented: the bytes of writing it whole. None where that
    would not hold: an entry that ends its document explicitly ("...", after a block
    scalar kept with its trailing newlines) or a key written as a complex key ("? ")."""
    pieces = []
    for key, value in mapping.items():
        if type(value) is dict and len(value) >= 2:
            head = _emit_once({key: {}})  # "key: {}\n": the key as the emitter writes it
            inner = _block(value)
            shifted = _indented(inner) if inner is not None else None
            if shifted is None or not head.endswith(": {}\n") or "\n" in head[:-1] or head.startswith("?"):
                return None
            pieces.append(head[:-4] + "\n" + shifted)
        else:
            piece = _emit_once({key: value})
            if piece.endswith("...\n") or not piece.endswith("\n") or piece.startswith("?"):
                return None
            pieces.append(piece)
    return "".join(pieces)


def _indented(text: str) -> str | None:
    """Two spaces before every line but the empty ones (a literal block's blank lines are
    written empty at any depth); None for text holding the other line breaks YAML knows
    (NEL, U+2028, U+2029), after which the emitter indents by its own rules."""
    if any(char in text for char in _OTHER_BREAKS):
        return None
    return "\n".join("  " + line if line else line for line in text.split("\n"))


_OTHER_BREAKS = "\x85\u2028\u2029"


def _emit_once(ordered: Any) -> str:
    key = repr(ordered)  # for these types, equal text means equal data and equal YAML
    text = _MEMO.get(key)
    if text is None:
        text = _emit(ordered)
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = text
    return text


class _NotPlain(Exception):
    pass


_PLAIN = (str, int, float, bool, type(None))
_MEMO: dict[str, str] = {}
_MEMO_LIMIT = 4096  # distinct documents and entries kept; a fleet's sites share far fewer


def _plain_canonical(value: Any) -> Any:
    """``canonical(value)``, refusing (``_NotPlain``) anything but plain data of exactly the
    built-in types, whose repr tells every value apart."""
    kind = type(value)
    if kind is dict:
        if any(type(k) is not str for k in value):
            raise _NotPlain
        return {k: _plain_canonical(value[k]) for k in sorted(value, key=_rank)}
    if kind is list or kind is tuple:
        return [_plain_canonical(v) for v in value]
    if kind in _PLAIN:
        return value
    raise _NotPlain


def _emit(document: Any) -> str:
    """``document`` (keys already in canonical order) as YAML."""
    import yaml

    text: str = yaml.dump(
        document,
        Dumper=_dumper(),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,  # never fold: a long line reads the same at any depth
    )
    return text


def yaml_bytes(document: Any) -> bytes:
    return yaml_documents_bytes([document])


def yaml_documents_bytes(documents: Iterable[Any]) -> bytes:
    """One or more YAML documents, separated by ``---``."""
    return "---\n".join(_dump(document) for document in documents).encode("utf-8")


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
