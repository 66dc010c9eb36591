"""Read a YAML file into plain data, remembering the line and column of every node.

ruamel.yaml's round-trip loader keeps positions; everything downstream works on plain
dicts/lists/scalars plus a position table keyed by the node's path. The reader guards
against inputs that would hang or mislead: binary files, huge files, duplicate keys,
several documents and alias bombs (a billion-laughs document is a small DAG that
explodes only when walked, so walking is budgeted).
"""

from __future__ import annotations

import datetime
import errno
import functools
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from compiler.errors import Diagnostic, Location, UserError

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """A file read into a document: a base a site inherits from (compiler.spec.bases)."""

    path: Path  # as opened: relative to the file that names it, symlinks not resolved
    display: str
    raw: bytes
    name: str  # relative to the site's spec, however the spec was named: what the digest covers


@dataclass(frozen=True)
class SourceDoc:
    """One parsed YAML file: plain data plus where each node came from. A site with bases
    is one document too: ``data`` merged, and ``origins`` naming the base that wrote each
    node that did not come from the site's own file."""

    path: Path
    display: str  # the name used in messages (as the user gave it)
    data: Any
    raw: bytes
    value_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    origins: dict[Path_, Source] = field(default_factory=dict)
    bases: tuple[Source, ...] = ()  # every base merged in, lowest first

    def file_of(self, path: Path_) -> Path:
        """The file that wrote ``path``: names in it are relative to that file."""
        origin = self.origins.get(tuple(path))
        return origin.path if origin is not None else self.path

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """Where to point for ``path``: a scalar's value, a mapping's or list's key (its value
        starts on a later line), and for a field not written, the key of the nearest
        ancestor that is."""
        probe = tuple(path)
        exact = True
        while probe:
            container = isinstance(self.node(probe), dict | list)
            order = (self.key_pos, self.value_pos)
            if exact and not key and not container:
                order = (self.value_pos, self.key_pos)
            for table in order:
                if probe in table:
                    line, col = table[probe]
                    origin = self.origins.get(probe)
                    return Location(origin.display if origin else self.display, line, col)
            probe = probe[:-1]
            exact = False
        return Location(self.display, 1, 1)

    def node(self, path: Path_) -> Any:
        """The data at ``path``, or None when it is not there."""
        node = self.data
        for part in path:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not (in_dict or in_list):
                return None
            node = node[part]
        return node


def _fail(display: str, message: str, line: int | None = None, col: int | None = None) -> UserError:
    return UserError(Diagnostic(message, Location(display, line, col)))


def read_yaml(path: Path, display: str | None = None, *, what: str = "file") -> SourceDoc:
    """Parse one YAML document from ``path``; any problem is a one-line ``UserError``."""
    name = display or str(path)
    return parse_yaml(read_limited(path, name, what), path, name, what=what)


_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "special file")


def read_limited(path: Path, display: str, what: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. A FIFO, device, directory or
    socket is refused before it is opened for reading (it would hang or never end), the
    size is checked on the open file, and at most ``limit`` + 1 bytes are ever read."""
    try:
        kind = _kind(path.stat().st_mode)
        if kind is not None:
            raise _fail(display, f"{what} is a {kind}, expected a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise _fail(display, f"cannot read {what}: {reason}") from None
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)  # it may have been swapped since the stat
        if kind is not None:
            raise _fail(display, f"{what} is a {kind}, expected a regular file")
        if info.st_size > limit:
            raise _fail(display, f"{what} is {info.st_size} bytes; the limit is {_size(limit)}")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _fail(display, f"cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise _fail(display, f"{what} is larger than {_size(limit)}")
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit} ({limit // (1024 * 1024)} MiB)" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


@functools.lru_cache(maxsize=32)
def parse_named(raw: bytes, display: str, what: str) -> SourceDoc:
    """A file a spec names, parsed once however many artifacts read it (the result is
    shared: callers only read it)."""
    return parse_yaml(raw, Path(display), display, what=what)


def parse_yaml(raw: bytes, path: Path, display: str, *, what: str = "file") -> SourceDoc:
    if len(raw) > MAX_BYTES:
        raise _fail(display, f"{what} is {len(raw)} bytes; the limit is {MAX_BYTES} (1 MiB)")
    if b"\0" in raw:
        raise _fail(display, f"{what} is binary (it contains NUL bytes), expected YAML text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(display, f"{what} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise _fail(display, f"{what} is empty, expected a YAML mapping")

    # no deeper than its open brackets: counted first (a spec has a few), walked when many
    depth = _bracket_depth(text) if text.count("[") + text.count("{") > MAX_DEPTH else 0
    if depth > MAX_DEPTH:
        raise _fail(
            display, f"invalid YAML: flow collections nest {depth} levels deep (the limit is {MAX_DEPTH})"
        )

    fast = _fast_parse(text, display)
    if fast is not None:
        data, value_pos, key_pos = fast
        return SourceDoc(path, display, data, raw, value_pos, key_pos)

    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip().splitlines()[0]
        if "duplicate key" in problem:
            problem = problem.replace("found duplicate key", "duplicate key")
            problem = problem.split(" with value")[0]
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise _fail(display, f"invalid YAML: {problem}", line, col) from None
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid YAML"
        raise _fail(display, f"invalid YAML: {first}") from None
    except RecursionError:
        raise _fail(display, "invalid YAML: nesting is too deep") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # the YAML library building a value it cannot: a number over Python's 4300-digit
        # limit, a code point beyond U+10FFFF, `!!int abc`, a tag on a merge key, ...
        raise _fail(display, f"invalid YAML: {_library_problem(exc)}", *_locate(text)) from None

    walker = _Walker(display)
    data = walker.convert(node, ())
    return SourceDoc(path, display, data, raw, walker.value_pos, walker.key_pos)


class _Fallback(Exception):
    """The fast reader met something it leaves to ruamel.yaml (which reports errors too)."""


# what the fast reader leaves to ruamel.yaml: a tag, an anchor or an alias (a node property
# starts a token: at a line's start, after a blank, or after a flow indicator or a colon),
# a merge key, a complex key and a directive (a false alarm inside a string, such as a
# Falco rule's `%ka.user.name` or `!=`, only costs speed). Every match starts at its mark,
# what comes before it looked behind at: the engine skips to the next mark (a policy's
# "*" costs 4 us, not 40 as with an alternation tried at every character)
_FAST_UNSAFE = re.compile(
    r"[!&*<?%]"
    r"(?:(?<=[!&*])(?<![^\s\[\]{},:][!&*])"  # a tag, anchor or alias: no other character before it
    r"|(?<=<)<"  # a merge key
    r"|(?<=\?) "  # a complex key
    r"|(?<=%)(?<![^\n]%))"  # a directive, at a line's start
)
_FAST_UNSAFE_MARKS = "!&*<?%"  # one of them is in every match: a spec without any is not searched


def _fast_parse(
    text: str, display: str
) -> tuple[Any, dict[Path_, tuple[int, int]], dict[Path_, tuple[int, int]]] | None:
    """The same data and positions as the ruamel.yaml reader, from libyaml's C parser (about
    ten times faster), for documents without tags, anchors or merge keys; None when the
    document needs ruamel.yaml (any of those, a duplicate key, any syntax error, a value
    that is not plain data). A test checks both readers agree on every document it reads."""
    unsafe = any(mark in text for mark in _FAST_UNSAFE_MARKS) and _FAST_UNSAFE.search(text)
    if unsafe or "\ufeff" in text:  # libyaml skips a BOM at any line's start
        return None
    loader_class = _c_loader()
    if loader_class is None:
        return None
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
    except Exception:
        return None
    finally:
        loader.dispose()
    walker = _FastWalker(display)
    try:
        data = walker.convert(root, (), 0)
    except _Fallback:
        return None
    return data, walker.value_pos, walker.key_pos


@functools.cache
def _c_loader() -> Any:
    """libyaml's parser with PyYAML's node composer (made once: a class costs more to make
    than a site's spec to read), or None without libyaml."""
    try:
        from yaml.constructor import BaseConstructor
        from yaml.cyaml import CParser as parser
        from yaml.resolver import BaseResolver
    except (ImportError, AttributeError):
        return None

    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    tags: dict[type, str] = {
        ScalarNode: BaseResolver.DEFAULT_SCALAR_TAG,
        SequenceNode: BaseResolver.DEFAULT_SEQUENCE_TAG,
        MappingNode: BaseResolver.DEFAULT_MAPPING_TAG,
    }

    class Loader(parser, BaseConstructor, BaseResolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            parser.__init__(self, stream)
            BaseConstructor.__init__(self)
            BaseResolver.__init__(self)

        def resolve(self, kind: type, value: object, implicit: object) -> str:
            """The default tag of each node, as BaseResolver gives it (it has no implicit
            or path resolvers), without looking for them at every node: the walker
            resolves plain scalars itself, and a document with a tag is not read here."""
            return tags[kind]

    return Loader


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


class _FastWalker:
    """libyaml nodes into plain data with positions, resolving plain scalars as ruamel.yaml
    does (YAML 1.2: `yes` is text, `017` is 17, `0o17` is 15)."""

    def __init__(self, display: str) -> None:
        from yaml.nodes import MappingNode, ScalarNode, SequenceNode

        # looked up once a document, not at every node
        self.mapping, self.sequence, self.scalar_node = MappingNode, SequenceNode, ScalarNode
        self.display = display
        self.count = 0
        self.value_pos: dict[Path_, tuple[int, int]] = {}
        self.key_pos: dict[Path_, tuple[int, int]] = {}
        self._resolver: Any = None

    @property
    def resolver(self) -> Any:
        """ruamel.yaml's YAML 1.2 resolver, loaded for the first scalar ``plain_type``
        leaves to it (importing it loads all of ruamel.yaml)."""
        if self._resolver is None:
            from ruamel.yaml.resolver import VersionedResolver

            self._resolver = VersionedResolver()
        return self._resolver

    def convert(self, node: Any, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _Fallback  # ruamel's reader reports it with its own budget
        if isinstance(node, self.mapping):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                if not isinstance(key, str) or _has_surrogate(key):
                    raise _Fallback
                if key in out:
                    self.duplicate(key, key_node)
                child = (*path, key)
                self.key_pos[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                self.value_pos[child] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
                out[key] = self.convert(value_node, child, depth + 1)
            return out
        if isinstance(node, self.sequence):
            items = []
            for index, item in enumerate(node.value):
                self.value_pos[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.convert(item, (*path, index), depth + 1))
            return items
        return self.scalar(node)

    def duplicate(self, key: str, node: Any) -> NoReturn:
        """ruamel.yaml's refusal of a duplicate key, without its reading the whole document
        again (seconds for a long file): the same message at the same place, both readers
        walking depth first in document order. A key that would print differently is left
        to ruamel.yaml."""
        if not key.isprintable() or '"' in key or "\\" in key:
            raise _Fallback
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise _fail(self.display, f'invalid YAML: duplicate key "{key}"', line, col)

    def scalar(self, node: Any) -> Any:
        if not isinstance(node, self.scalar_node):
            raise _Fallback  # a mapping or list as a key
        value = node.value
        if node.style not in (None, ""):  # quoted or block: text
            if _has_surrogate(value):
                raise _Fallback
            return value
        known = plain_type(value)
        if known is str:
            return value
        if known is int:
            return int(value)
        from ruamel.yaml.nodes import ScalarNode

        resolved = self.resolver.resolve(ScalarNode, value, (True, False))
        tag = str(getattr(resolved, "value", resolved))
        if tag.endswith(":str"):
            return value
        if tag.endswith(":null"):
            return None
        if tag.endswith(":bool"):
            return value.lower() == "true"
        if tag == _INT:
            digits = value.replace("_", "")
            sign = -1 if digits.startswith("-") else 1
            digits = digits.lstrip("+-")
            base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2].lower(), 10)
            try:
                return sign * int(digits[2:] if base != 10 else digits, base)
            except ValueError:
                raise _Fallback from None  # more digits than int() takes: ruamel reports it
        if tag == _FLOAT:
            special = _SPECIAL_FLOATS.get(value.lower())
            return special if special is not None else float(value.replace("_", ""))
        raise _Fallback  # a timestamp or anything else: ruamel's reader refuses it in place


# the characters of what can make a plain scalar that starts with a digit, a sign or a
# dot anything but text in YAML 1.2 (ruamel.yaml's core schema): numbers in every base and
# notation, .inf and .nan in their three spellings, timestamps (date, T/t or blanks, time,
# fraction, Z or an offset)
_NUMBERLIKE = frozenset("0123456789abcdefABCDEF+-._:xXoOtTzZiInN \t")
_TEXT_WORDS = frozenset(["true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"])


def plain_type(value: str) -> type | None:
    """``str`` or ``int`` for a plain scalar whose type is plain to see, None for one left
    to ruamel.yaml's resolver (a test holds the two to the same answer): a word that starts
    with a letter and is no boolean or null, text that no number or timestamp could be (a
    digit-first address, a CIDR, a version with two dots), or a decimal integer."""
    if not value:
        return None
    first = value[0]
    if first.isascii() and first.isalpha():
        return None if value in _TEXT_WORDS else str
    if first.isdigit() or first in "+-.":
        if not set(value) <= _NUMBERLIKE:
            return str
        if value.isascii() and value.isdigit() and (value == "0" or first != "0") and len(value) < 19:
            return int
        if value.count(".") >= 2 and set(value) <= set("0123456789."):
            return str
    return None


def _locate(text: str) -> tuple[int | None, int | None]:
    """Where the YAML library failed to build a value: compose the document (no values
    built), then build its scalars one by one; the first that fails is the place."""
    import re

    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    for match in re.finditer(r"\\U([0-9A-Fa-f]{8})", text):
        if int(match.group(1), 16) > 0x10FFFF:  # the scanner itself fails on these
            line = text.count("\n", 0, match.start()) + 1
            return line, match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(text)
    except Exception:
        return None, None
    constructor = yaml.constructor
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop(0)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            try:
                constructor.construct_object(node, deep=True)
            except Exception:
                return node.start_mark.line + 1, node.start_mark.column + 1
        elif isinstance(node, MappingNode):
            merges = any(
                getattr(key.tag, "value", key.tag) == "tag:yaml.org,2002:merge" for key, _ in node.value
            )
            if merges and any(value is node for _, value in node.value):  # a mapping merged into itself
                return node.start_mark.line + 1, node.start_mark.column + 1
            stack += [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            stack += list(node.value)
    return None, None


def _library_problem(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "digits" in text and "limit" in text:
        return "a number with more digits than can be read (the limit is 4300)"
    if "chr()" in text or "code point" in text:
        return "a character escape beyond U+10FFFF"
    if "add_referent" in text or isinstance(exc, RecursionError):
        return "a mapping merges itself (`<<:` names an anchor that contains it)"
    return f"a value that is not what its tag says ({text[:60]!r})"


def _bracket_depth(text: str) -> int:
    """Deepest run of open flow brackets; the YAML parser is slow on absurd nesting."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


class _Walker:
    """Copy ruamel's round-trip nodes into plain Python, recording positions, on a node budget."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.count = 0
        self.value_pos: dict[Path_, tuple[int, int]] = {}
        self.key_pos: dict[Path_, tuple[int, int]] = {}

    def convert(self, node: Any, path: Path_, depth: int = 0) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _fail(
                self.display,
                f"document expands to more than {MAX_NODES} nodes or {MAX_DEPTH} levels "
                "(an alias bomb?); a site spec is far smaller",
            )
        at = self.value_pos.get(path, (1, 1))
        tag = _tag(node)
        if tag is not None and isinstance(node, CommentedMap | CommentedSeq):
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise _fail(self.display, f"a YAML {shown} value is not allowed in a spec: remove the tag", *at)
        if type(node) not in (CommentedMap, CommentedSeq) and isinstance(node, CommentedMap | CommentedSeq):
            kind = "!!omap" if isinstance(node, CommentedMap) else type(node).__name__
            raise _fail(
                self.display, f"a YAML {kind} value is not allowed in a spec: write a plain mapping", *at
            )
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key in node:
                child = (*path, key)
                key_at, value_at = _positions(node, key, self.value_pos.get(path, (1, 1)))
                if not isinstance(key, str):
                    raise _fail(self.display, f"mapping keys must be strings (got {_show(key)})", *key_at)
                if _has_surrogate(key):
                    raise _fail(self.display, f"key {_show(key)} {_SURROGATE}", *key_at)
                self.key_pos[child] = key_at
                self.value_pos[child] = value_at
                out[key] = self.convert(node[key], child, depth + 1)
            return out
        if isinstance(node, CommentedSeq):
            items = []
            for index, item in enumerate(node):
                line, col = node.lc.item(index)
                self.value_pos[(*path, index)] = (line + 1, col + 1)
                items.append(self.convert(item, (*path, index), depth + 1))
            return items
        return _scalar(node, self.display, at)


_SURROGATE = "holds an unpaired UTF-16 surrogate (a \\ud800..\\udfff escape), which is not text"


def _has_surrogate(text: str) -> bool:
    return _SURROGATES.search(text) is not None


_SURROGATES = re.compile("[\ud800-\udfff]")


def _show(value: Any) -> str:
    """A value as a message may quote it: one line, escaped, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:35] + "...'"


def _positions(node: Any, key: Any, fallback: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """1-based (key, value) positions; a key merged in with `<<: *anchor` has none of its own."""
    try:
        kline, kcol = node.lc.key(key)
        vline, vcol = node.lc.value(key)
    except (KeyError, TypeError):
        return fallback, fallback
    return (kline + 1, kcol + 1), (vline + 1, vcol + 1)


def _tag(node: Any) -> str | None:
    """The explicit tag of a ruamel node (None for none or a standard one)."""
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) and value else None


def _scalar(node: Any, display: str, at: tuple[int, int]) -> Any:
    """A plain scalar as the spec may hold one: null, a boolean, a number or text. Every
    other value a YAML tag can make is refused where it was written."""
    from ruamel.yaml.comments import CommentedSet, TaggedScalar
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, TaggedScalar) and _tag(node) in ("tag:yaml.org,2002:str", "!!str"):
        node = str(node.value)  # `!!str 1.30`: the text, as written
    if isinstance(node, ScalarBoolean):  # an anchored boolean: an int subclass in ruamel
        return bool(node)
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        if _has_surrogate(node):
            raise _fail(display, f"the value {_SURROGATE}", *at)
        return str(node)
    if isinstance(node, datetime.date):
        raise _fail(display, f"{node.isoformat()} is a YAML timestamp: quote it if you mean the text", *at)
    if isinstance(node, bytes | bytearray):
        raise _fail(display, "a !!binary value is not allowed in a spec: write text", *at)
    if isinstance(node, CommentedSet):
        raise _fail(display, "a !!set value is not allowed in a spec: write a list", *at)
    tag = (_tag(node) or type(node).__name__).replace("tag:yaml.org,2002:", "!!")
    raise _fail(display, f"a YAML {tag} value is not allowed in a spec: write a mapping, list or scalar", *at)
