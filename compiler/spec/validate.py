"""Turn a parsed document into a ``Site``, or into diagnostics that point at spec lines.

pydantic's error locations include union tags and python names; they are mapped back
onto the document (following the data, not the model) so each message names the field
path the user wrote and the line and column it sits at.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from compiler.errors import Diagnostic, UserError, format_path
from compiler.spec.model import Site
from compiler.spec.source import SourceDoc
from compiler.spec.types import excerpt


def parse_site(doc: SourceDoc, model: type[Site], types: Sequence[str]) -> Site:
    """Validate ``doc`` against ``model`` (the registry's ``site_schema()``, whose platform
    ``types`` are given too); every problem is reported at once."""
    if not isinstance(doc.data, dict):
        got = type(doc.data).__name__ if doc.data is not None else "nothing"
        raise UserError(Diagnostic(f"top level must be a mapping (a Site), got {got}", doc.location(())))
    diagnostics = _platform_block_check(doc, types)
    try:
        site = model.model_validate(doc.data)
    except ValidationError as exc:
        diagnostics += [pydantic_diagnostic(doc, error, types, model) for error in exc.errors()]
        site = None
    if diagnostics or site is None:
        raise UserError(_dedupe(diagnostics))
    return site


def _platform_block_check(doc: SourceDoc, types: Sequence[str]) -> list[Diagnostic]:
    """Exactly the block named by `type`: a stray block gets a message that says so."""
    spec = doc.data.get("spec")
    platform = spec.get("platform") if isinstance(spec, dict) else None
    if not isinstance(platform, dict) or platform.get("type") not in types:
        return []
    chosen = platform["type"]
    out = []
    for other in types:
        if other != chosen and other in platform:
            path = ("spec", "platform", other)
            out.append(
                Diagnostic(
                    f"the `{other}` block does not belong to type {chosen}; give only the `{chosen}` block",
                    doc.location(path, key=True),
                    format_path(path),
                )
            )
    return out


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str]] = set()
    out = []
    for d in diagnostics:
        if (d.field, d.message) in seen:
            continue
        # a stray platform block is already reported with a better message
        if d.message.startswith("unknown field") and any(
            o.field == d.field and "does not belong" in o.message for o in diagnostics
        ):
            continue
        seen.add((d.field, d.message))
        out.append(d)
    return out


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Follow pydantic's ``loc`` through the user's data, dropping union member tags.

    A part that names a key or index in the data is followed. Past the data, a part is
    kept when the node it would be looked up in is a mapping or missing (a missing field
    and its children), and dropped when the node is a scalar or the part looks like a
    pydantic union tag (``str``, ``function-after[...]``, ``literal[...]``).
    """
    path: list[str | int] = []
    node = data
    missing = False
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif missing or (isinstance(node, dict) and not _is_tag(part)):
            path.append(part)
            node, missing = None, True
    return tuple(path)


def _is_tag(part: str | int) -> bool:
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict"})


def _show(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return excerpt(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def pydantic_diagnostic(
    doc: SourceDoc, error: Any, types: Sequence[str] = (), model: type[BaseModel] = Site
) -> Diagnostic:
    """``types``: the platform types, when ``error`` is about a site; ``model``: what
    ``doc`` was validated against (an unknown field's suggestion is one of its fields)."""
    loc = tuple(error["loc"])
    if loc[:2] == ("spec", "platform") and len(loc) > 2 and loc[2] in types:
        loc = loc[:2] + loc[3:]  # the discriminated union's tag, not a field
    path = _data_path(doc.data, loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    field = format_path(path)
    location = doc.location(path, key=kind == "extra_forbidden")
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = f"unknown field {excerpt(path[-1])}" + _did_you_mean(model, path)
    elif kind == "value_error":
        message = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    elif kind == "literal_error":
        message = f"must be one of: {_expected(ctx)} (got {_show(value)})"
    elif kind == "union_tag_invalid":
        message = f"must be one of: {_expected(ctx)} (got {_show(value)})"
        field = format_path((*path, "type"))
        location = doc.location((*path, "type"))
    elif kind == "union_tag_not_found":
        message = f"required field `type` is missing (one of: {' | '.join(types)})"
    elif kind == "string_type":
        hint = "; quote it, YAML reads 1.30 as the number 1.3" if isinstance(value, float) else ""
        message = f"must be a string (got {_show(value)}){hint}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"must be a whole number (got {_show(value)})"
    elif kind == "bool_type":
        message = f"must be true or false (got {_show(value)})"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"must be a mapping (got {_show(value)})"
    elif kind == "list_type":
        message = f"must be a list (got {_show(value)})"
    elif kind == "too_short":
        message = f"must have at least {ctx.get('min_length', 1)} item(s)"
    elif kind in ("string_too_short", "string_too_long"):
        message = error["msg"].replace("String should", "must")
    else:
        message = error["msg"]
    return Diagnostic(message, location, field)


def _expected(ctx: dict[str, Any]) -> str:
    text = str(ctx.get("expected") or ctx.get("expected_tags") or "")
    return text.replace("'", "").replace(" or ", ", ").replace(", ", " | ")


def _did_you_mean(schema: type[BaseModel], path: tuple[str | int, ...]) -> str:
    """Suggest the closest field name ``schema`` has at that place (a site's platform block
    is found only in the registry's schema, which has every platform's)."""
    model: Any = schema
    for part in path[:-1]:
        model = _child_model(model, part)
        if model is None:
            return ""
    names = _field_names(model)
    match = difflib.get_close_matches(str(path[-1]), names, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else f" (expected one of: {', '.join(names)})"


def _field_names(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _child_model(model: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return model
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        # a union of platform models: pick by the block name
        for option in _models_in(model):
            if part in _field_names(option):
                return _child_model(option, part)
        return None
    for name, info in model.model_fields.items():
        if part in (name, info.alias):
            candidates = _models_in(info.annotation)
            return candidates[0] if len(candidates) == 1 else tuple(candidates) or None
    return None


def _models_in(annotation: Any) -> list[Any]:
    if isinstance(annotation, tuple):
        return list(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[Any] = []
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            out += _models_in(arg)
    return out
