"""Read a YAML file into plain data, remembering the line and column of every node.

ruamel.yaml's round-trip loader keeps positions; everything downstream works on plain
dicts/lists/scalars plus a position table keyed by the node's path. The reader guards
against inputs that would hang or mislead: binary files, huge files, duplicate keys,
several documents and alias bombs (a billion-laughs document is a small DAG that
explodes only when walked, so walking is budgeted).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import Diagnostic, Location, UserError

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceDoc:
    """One parsed YAML file: plain data plus where each node came from."""

    path: Path
    display: str  # the name used in messages (as the user gave it)
    data: Any
    raw: bytes
    value_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)

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
                    return Location(self.display, line, col)
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
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fail(name, f"{what} is {size} bytes; the limit is {MAX_BYTES} (1 MiB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(name, f"cannot read {what}: {exc.strerror or exc}") from None
    return parse_yaml(raw, path, name, what=what)


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

    depth = _bracket_depth(text)
    if depth > MAX_DEPTH:
        raise _fail(
            display, f"invalid YAML: flow collections nest {depth} levels deep (the limit is {MAX_DEPTH})"
        )

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

    walker = _Walker(display)
    data = walker.convert(node, ())
    return SourceDoc(path, display, data, raw, walker.value_pos, walker.key_pos)


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
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key in node:
                child = (*path, key)
                key_at, value_at = _positions(node, key, self.value_pos.get(path, (1, 1)))
                if not isinstance(key, str):
                    raise _fail(self.display, f"mapping keys must be strings (got {key!r})", *key_at)
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
        return _scalar(node)


def _positions(node: Any, key: Any, fallback: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """1-based (key, value) positions; a key merged in with `<<: *anchor` has none of its own."""
    try:
        kline, kcol = node.lc.key(key)
        vline, vcol = node.lc.value(key)
    except (KeyError, TypeError):
        return fallback, fallback
    return (kline + 1, kcol + 1), (vline + 1, vcol + 1)


def _scalar(node: Any) -> Any:
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, ScalarBoolean):  # an anchored boolean: an int subclass in ruamel
        return bool(node)
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):
        return node  # left for the schema to reject with a readable message
    return str(node)
