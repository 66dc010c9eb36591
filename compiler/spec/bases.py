"""Sites that inherit from shared defaults: ``bases:`` and ``kind: SiteDefaults``.

A site lists the files it inherits from, lowest first::

    bases: [bases/corp.yaml, bases/prod.yaml]

Each is a ``SiteDefaults`` document (``metadata.labels`` and ``spec`` only, and ``bases``
of its own). The site is the merge of its bases in order, then itself on top: mappings
merge key by key, at any depth; anything else (a scalar, a list) is replaced whole by the
layer above, so a site that writes ``controlPlanes:`` or ``lint.accept:`` says the whole
list. A base named by several others (a diamond) is merged once, at its first mention.
The merged site is one ``SourceDoc`` whose ``origins`` name the base that wrote each node,
so every message points at the file and line a value came from.

Base files follow the rule of every file a spec names: relative to the file that names
them, inside the spec's directory or a ``--files-root``, regular files of at most 1 MiB.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from compiler.errors import Diagnostic, UserError, format_path
from compiler.spec.source import Path_, Source, SourceDoc, read_yaml

KIND = "SiteDefaults"
API_VERSION = "auditc.dev/v1alpha1"
MAX_BASES = 32  # in one list
MAX_DEPTH = 8  # bases of bases
MAX_FILES = 64  # distinct bases of one site, however they nest
_TOP = ("apiVersion", "kind", "metadata", "bases", "spec")


def with_bases(doc: SourceDoc, roots: tuple[Path, ...] = ()) -> SourceDoc:
    """``doc`` with its bases merged under it; ``doc`` itself when it names none."""
    if not isinstance(doc.data, dict) or "bases" not in doc.data:
        return doc
    allowed = [Path(os.path.realpath(p)) for p in (doc.path.parent, *roots)]
    problems: list[Diagnostic] = []
    layers = _layers(doc, None, allowed, (Path(os.path.realpath(doc.path)),), problems, set())
    if problems:
        raise UserError(problems)
    return _merge(doc, layers)


def _layers(
    doc: SourceDoc,
    source: Source | None,
    allowed: list[Path],
    chain: tuple[Path, ...],
    problems: list[Diagnostic],
    merged: set[Path],
) -> list[tuple[Source | None, SourceDoc]]:
    """``doc``'s bases (theirs first, depth first) and then ``doc``: lowest layer first. A
    base that several others name is merged once, where it first appears (``merged``: the
    files taken so far), as Kapitan merges a class once."""
    layers: list[tuple[Source | None, SourceDoc]] = []
    for index, name in _names(doc, problems):
        at = ("bases", index)
        where = doc.location(at)
        opened = doc.path.parent / name
        target = Path(os.path.realpath(opened))
        if not any(target == root or target.is_relative_to(root) for root in allowed):
            problems.append(
                Diagnostic(
                    f"{name} is outside the spec's directory; keep bases next to the specs, "
                    "or allow their directory with --files-root",
                    where,
                    format_path(at),
                )
            )
            continue
        if target in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(target) :], target))
            problems.append(Diagnostic(f"bases form a cycle: {cycle}", where, format_path(at)))
            continue
        if target in merged:
            continue
        if len(chain) > MAX_DEPTH or len(merged) >= MAX_FILES:
            limit = (
                f"nest more than {MAX_DEPTH} levels deep"
                if len(chain) > MAX_DEPTH
                else f"exceed {MAX_FILES} files"
            )
            problems.append(Diagnostic(f"bases {limit}", where, format_path(at)))
            continue
        merged.add(target)
        display = _shown_path(Path(doc.display).parent / name, target)
        try:  # read where it resolved (checked above); names in it are relative to where it was named
            base = replace(read_yaml(target, display, what="base"), path=opened)
        except UserError as exc:  # a file that cannot be read is named at the line naming it
            problems += [
                Diagnostic(f"{name}: {d.message}", where, format_path(at))
                if not (d.location and d.location.line)
                else d
                for d in exc.diagnostics
            ]
            continue
        if _defaults_problems(base, problems):
            continue
        named = _shown_path(Path(source.name).parent / name if source else Path(name), target)
        below = Source(opened, display, base.raw, named)
        layers += _layers(base, below, allowed, (*chain, target), problems, merged)
    layers.append((source, doc))
    return layers


def _shown_path(path: Path, target: Path) -> str:
    """``path`` tidied (``a/b/../c`` is ``a/c``) unless that names another file (a symlinked
    folder before the ``..``): messages and the digest never name a file that was not read."""
    tidy = os.path.normpath(path)
    return tidy if Path(os.path.realpath(tidy)) == target else str(path)


def _names(doc: SourceDoc, problems: list[Diagnostic]) -> list[tuple[int, str]]:
    """The ``bases`` list of ``doc``, checked: a list of distinct file names."""
    value = doc.data.get("bases")
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Diagnostic("must be a list of file names", doc.location(("bases",)), "bases"))
        return []
    if len(value) > MAX_BASES:
        problems.append(Diagnostic(f"at most {MAX_BASES} bases", doc.location(("bases",)), "bases"))
        return []
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, name in enumerate(value):
        at = ("bases", index)
        if not isinstance(name, str) or not name.strip():
            problems.append(Diagnostic("must be a file name (text)", doc.location(at), format_path(at)))
        elif os.path.normpath(name) in seen:
            problems.append(Diagnostic(f"{name} is named twice", doc.location(at), format_path(at)))
        else:
            seen.add(os.path.normpath(name))
            out.append((index, name))
    return out


def _defaults_problems(base: SourceDoc, problems: list[Diagnostic]) -> bool:
    """Whether ``base`` is not a SiteDefaults document (each reason added to ``problems``)."""
    found: list[Diagnostic] = []

    def problem(path: Path_, message: str, *, key: bool = False) -> None:
        found.append(Diagnostic(message, base.location(path, key=key), format_path(path)))

    data = base.data
    if not isinstance(data, dict):
        problem((), f"a base must be a mapping (kind: {KIND})")
    else:
        if data.get("kind") != KIND:
            problem(("kind",), f"a base must be kind {KIND} (got {_shown(data.get('kind'))})")
        if data.get("apiVersion") != API_VERSION:
            problem(("apiVersion",), f"must be {API_VERSION} (got {_shown(data.get('apiVersion'))})")
        for key in data:
            if key not in _TOP:
                problem((key,), f"unknown field {key!r} in a {KIND} (expected one of: {', '.join(_TOP)})")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            problem(("metadata",), "must be a mapping")
        elif isinstance(metadata, dict):
            for key in metadata:
                why = "a site's name is its own" if key == "name" else "only labels are inherited"
                if key != "labels":
                    problem(("metadata", key), f"a {KIND} sets no metadata.{key}: {why}", key=True)
        if "spec" in data and not isinstance(data["spec"], dict):
            problem(("spec",), "must be a mapping (the part of a site's spec this base sets)")
    problems += found
    return bool(found)


def _shown(value: Any) -> str:
    return "nothing" if value is None else repr(value) if isinstance(value, str) else type(value).__name__


def _merge(doc: SourceDoc, layers: list[tuple[Source | None, SourceDoc]]) -> SourceDoc:
    merger = _Merger(layers)
    data = merger.merge((), [(index, _own(src, layer)) for index, (src, layer) in enumerate(layers)])
    return SourceDoc(
        doc.path,
        doc.display,
        data,
        doc.raw,
        merger.value_pos,
        merger.key_pos,
        merger.origins,
        tuple(src for src, _ in layers if src is not None),
    )


def _own(source: Source | None, layer: SourceDoc) -> dict[str, Any]:
    """What a layer adds to the site: a base its labels and spec, the site all it says."""
    if source is None:
        return dict(layer.data)
    return {key: layer.data[key] for key in ("metadata", "spec") if key in layer.data}


class _Merger:
    """Mappings merge key by key; anything else comes whole from the highest layer that
    writes it, with its positions and its file."""

    def __init__(self, layers: list[tuple[Source | None, SourceDoc]]) -> None:
        self.layers = layers
        self.value_pos: dict[Path_, tuple[int, int]] = {}
        self.key_pos: dict[Path_, tuple[int, int]] = {}
        self.origins: dict[Path_, Source] = {}

    def merge(self, path: Path_, held: list[tuple[int, Any]]) -> Any:
        """``held``: (layer, value at ``path``) for every layer that writes ``path``."""
        top, value = held[-1]
        self._place(path, top)
        if not isinstance(value, dict):
            self._copy(path, top, value)
            return value
        run: list[tuple[int, dict[str, Any]]] = []
        for index, each in reversed(held):  # the mappings on top of the last thing replaced
            if not isinstance(each, dict):
                break
            run.insert(0, (index, each))
        keys: dict[str, None] = {}
        for _, mapping in run:
            keys.update(dict.fromkeys(mapping))
        return {key: self.merge((*path, key), [(i, m[key]) for i, m in run if key in m]) for key in keys}

    def _place(self, path: Path_, index: int) -> None:
        source, layer = self.layers[index]
        if path in layer.value_pos:
            self.value_pos[path] = layer.value_pos[path]
        if path in layer.key_pos:
            self.key_pos[path] = layer.key_pos[path]
        if source is not None:
            self.origins[path] = source

    def _copy(self, path: Path_, index: int, value: Any) -> None:
        """The positions of everything under ``path`` in layer ``index``."""
        children = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, child in children:
            self._place((*path, key), index)
            self._copy((*path, key), index, child)


def defaults_schema(site: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a SiteDefaults document, from ``site``'s (``auditc schema``): the
    same fields with none required, since a base may say any part of a site. A list's
    items stay whole (a list is replaced whole, so each item is complete), and the
    platform blocks are a plain choice (a base may leave ``type`` to the site)."""
    originals: dict[str, Any] = site["$defs"]
    defs: dict[str, Any] = dict(originals)

    def partial_ref(ref: str) -> str:
        name = ref.rsplit("/", 1)[1]
        if f"Partial{name}" not in defs:
            defs[f"Partial{name}"] = {}  # taken before it is made: a def may refer to itself
            defs[f"Partial{name}"] = partial(originals[name])
        return f"#/$defs/Partial{name}"

    def partial(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {key: value for key, value in node.items() if key not in ("required", "discriminator")}
        if "$ref" in out:
            out["$ref"] = partial_ref(out["$ref"])
        if isinstance(out.get("properties"), dict):
            out["properties"] = {key: partial(value) for key, value in out["properties"].items()}
        if isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = partial(out["additionalProperties"])
        for key in ("anyOf", "allOf", "oneOf"):
            if key in out:
                out[key] = [partial(option) for option in out[key]]
        if "oneOf" in out:  # partial variants overlap: any of them, not exactly one
            out["anyOf"] = out.pop("oneOf")
        return out  # "items" as they are: whole

    properties = site["properties"]
    labels = originals["Metadata"]["properties"]["labels"]
    return {
        "$defs": defs,
        "$id": "https://auditc.dev/schemas/site-defaults-v1alpha1.json",
        "$schema": site["$schema"],
        "additionalProperties": False,
        "description": "Defaults sites inherit with `bases:`: any part of a site's spec, and labels.",
        "properties": {
            "apiVersion": properties["apiVersion"],
            "kind": {"const": KIND, "title": "Kind", "type": "string"},
            "bases": properties["bases"],
            "metadata": {"additionalProperties": False, "properties": {"labels": labels}, "type": "object"},
            "spec": partial(properties["spec"]),
        },
        "required": ["apiVersion", "kind"],
        "title": KIND,
        "type": "object",
    }
