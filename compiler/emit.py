"""Canonical bytes for every structured artifact: the one place YAML and JSON are written.

Objects are built as plain data and serialized once here, so formatting never depends on
how a builder happened to construct a dict: keys are ordered by one rule (``apiVersion``,
``kind``, ``metadata`` first, a few identifying keys next, then alphabetical), multi-line
strings are literal blocks, lines are never folded, and every file ends in ``\\n``.
"""

from __future__ import annotations

import json
import marshal
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

# Plain scalars that a YAML 1.1 reader (Go's yaml.v2 behind kubectl, PyYAML) would not read
# back as strings: written single-quoted whatever the 1.2 emitter thinks. Go's reader takes
# what strconv.ParseInt(s, 0, 64) parses once "_" are dropped: 0X1F, 0B1 and 0O7 too.
_YAML11_NON_STRING = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL"
    r"|[-+]?(?:0[bB][01_]+|0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$"
)

# Go's reader also drops every "_" from a plain scalar that starts with a sign, a digit or
# a dot and takes what strconv.ParseInt(s, 0, 64) or its float parser reads from what is
# left, and 0b or 0o with a sign after them in base 2 or 8: -_0x1, +_1, 1__0, .5e1_0 and
# 0b+1 are numbers to it (each checked against kubectl, Tests)
_GO_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)"
    r"|0b[-+][01]+|0o[-+][0-7]+"
)
_NUMBER_START = frozenset("+-.0123456789")


def _non_string(data: str) -> bool:
    """Whether a YAML 1.1 reader would take ``data``, written plain, for another type."""
    if _YAML11_NON_STRING.match(data):
        return True
    return data[:1] in _NUMBER_START and bool(_GO_NUMBER.fullmatch(data.replace("_", "")))


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
        if _non_string(data):
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return dumper.represent_scalar("tag:yaml.org,2002:str", data)

    Dumper.add_representer(str, represent_str)
    return Dumper


def _dump(document: Any) -> str:
    """The YAML of ``document``. What a fleet's sites share is emitted once per process: a
    whole document (the same namespace, RBAC and policy on every site) and, in mappings
    that differ from site to site, each entry that does not, at the highest level it is
    the same (the chart values differ in a label or two, not in their rules or settings).
    The memo is keyed by the value itself (``_key``), so nothing is copied or ordered
    where it hits."""
    try:
        key = b"d" + _key(document)
    except ValueError:  # not plain data
        return _emit(canonical(document))
    text = _MEMO.get(key)
    if text is None:
        try:
            text = _fresh(document)
        except _NotPlain:
            return _emit(canonical(document))
        _remember(key, text)
    return text


def _key(value: Any) -> bytes:
    """Bytes that tell every plain value apart (marshal's format 2: no back-references
    or interning flags, which would make equal values differ; exactly the built-in types,
    ValueError for anything else, a subclass of them too). Its one blur, a buffer object
    written as bytes, never reaches the memo: ``_plain_canonical`` refuses bytes."""
    return marshal.dumps(value, 2)


def _fresh(document: Any) -> str:
    text = None
    if type(document) is dict and document:
        text = _block(document)
    elif type(document) in (list, tuple) and document:
        text = _sequence(document)
    return text if text is not None else _emit(_plain_canonical(document))


def _block(mapping: dict[str, Any]) -> str | None:
    """A block mapping written entry by entry, a nested mapping or sequence likewise under
    its key line (a mapping indented, a sequence not): the bytes of writing it whole. None where that
    would not hold: an entry that ends its document explicitly ("...", after a block
    scalar kept with its trailing newlines) or a key written as a complex key ("? ")."""
    pieces = []
    for key in _keys(mapping):
        memo = b"e" + _key((key, mapping[key]))
        piece = _MEMO.get(memo, _UNKNOWN)
        if piece is _UNKNOWN:
            piece = _entry(key, mapping[key])
            _remember(memo, piece)
        if piece is None:
            return None
        pieces.append(piece)
    return "".join(pieces)


def _entry(key: str, value: Any) -> str | None:
    """``key: value`` as the emitter writes it inside a block mapping; None as ``_block``."""
    if type(value) is dict and value:
        head = _head(key)
        inner = _block(value)
        shifted = _indented(inner) if inner is not None else None
        if shifted is None or not _simple(head):
            return None
        return head[:-4] + "\n" + shifted
    if type(value) in (list, tuple) and value:
        head = _head(key)
        items = _sequence(value)
        if items is None or not _simple(head):
            return None
        return head[:-4] + "\n" + items  # a sequence in a mapping is not indented
    if type(value) is str and _PLAIN_SAFE.fullmatch(value) and not _non_string(value):
        head = _head(key)
        if _simple(head):
            return head[:-3] + value + "\n"  # "key: value": written plain, as the emitter would
    piece = _emit({key: _plain_canonical(value)})
    if piece.endswith("...\n") or not piece.endswith("\n") or piece.startswith("?"):
        return None
    return piece


def _sequence(items: list[Any] | tuple[Any, ...]) -> str | None:
    """A block sequence written item by item (a mapping item entry by entry, under its
    "- "); None as ``_block``."""
    pieces = []
    for item in items:
        memo = b"i" + _key(item)
        piece = _MEMO.get(memo, _UNKNOWN)
        if piece is _UNKNOWN:
            piece = _item(item)
            _remember(memo, piece)
        if piece is None:
            return None
        pieces.append(piece)
    return "".join(pieces)


def _item(value: Any) -> str | None:
    """``- value`` as the emitter writes it in a block sequence; None as ``_block``."""
    if type(value) is dict and value:
        inner = _block(value)
        shifted = _indented(inner) if inner is not None else None
        if shifted is None or not shifted.startswith("  ") or shifted.startswith("   "):
            return None
        return "- " + shifted[2:]
    piece = _emit([_plain_canonical(value)])
    if piece.endswith("...\n") or not piece.endswith("\n") or not piece.startswith("- "):
        return None
    return piece


def _head(key: str) -> str:
    """``key: {}\n``: the key as the emitter writes it."""
    memo = b"h" + _key(key)
    text = _MEMO.get(memo)
    if text is None:
        text = _emit({key: {}})
        _remember(memo, text)
    return str(text)


def _simple(head: str) -> bool:
    """A key line written as a simple key on one line, ``key: {}``."""
    return head.endswith(": {}\n") and "\n" not in head[:-1] and not head.startswith("?")


# strings the emitter writes plain in any block context: ASCII, no quote and none of the
# indicators that matter there (": ", " #", a leading "-", "?" or "..." which would end a
# document), no space at either end; the ones a YAML 1.1 reader would take for another
# type are quoted (above). Words with spaces are here for what sites say in prose
# (the plan's steps) and key=value pairs (Falco's extra output field)
_PLAIN_SAFE = re.compile(r"(?!\.\.\.)[A-Za-z0-9./][A-Za-z0-9 ./=_(),;-]*(?<! )")


def _keys(mapping: dict[str, Any]) -> list[str]:
    if any(type(k) is not str for k in mapping):
        raise _NotPlain
    return sorted(mapping, key=_rank)


def _indented(text: str) -> str | None:
    """Two spaces before every line but the empty ones (a literal block's blank lines are
    written empty at any depth); None for text holding the other line breaks YAML knows
    (NEL, U+2028, U+2029), after which the emitter indents by its own rules."""
    if not text.isascii() and _OTHER_BREAKS.search(text):
        return None
    if text[:1] == "\n" or not text.endswith("\n"):  # not a block's text: line by line
        return _LINE_START.sub("  ", text)
    shifted = "  " + text.replace("\n", "\n  ")[:-2]  # what the regex does, four times faster
    while "\n  \n" in shifted:  # an empty line stays empty (two in a row take two passes)
        shifted = shifted.replace("\n  \n", "\n\n")
    return shifted


_OTHER_BREAKS = re.compile("[\x85\u2028\u2029]")
_LINE_START = re.compile(r"^(?=.)", re.MULTILINE)  # where a line that is not empty starts


def _remember(key: bytes, text: str | None) -> None:
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    _MEMO[key] = text


class _NotPlain(Exception):
    pass


_PLAIN = (str, int, float, bool, type(None))
_UNKNOWN = object()
# whole documents (b"d" + key), mapping entries (b"e"), sequence items (b"i") and key lines
# (b"h"): their text, None for an entry or item that cannot be written on its own
_MEMO: dict[bytes, Any] = {}
_MEMO_LIMIT = 8192  # distinct documents and entries kept; a fleet's sites share far fewer


def _plain_canonical(value: Any) -> Any:
    """``canonical(value)``, refusing (``_NotPlain``) anything but plain data of exactly the
    built-in types."""
    kind = type(value)
    if kind is dict:
        return {k: _plain_canonical(value[k]) for k in _keys(value)}
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
