"""Jinja2 environment for the scripts auditc emits.

Templates are for scripts and prose only, never for YAML structure. Autoescape is off
(it is HTML escaping, meaningless in shell); instead every value that reaches a script
goes through ``shq``, which makes it one single-quoted POSIX shell word. StrictUndefined
turns a misspelt variable into an error instead of an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from compiler.paths import package_dir


def shq(value: object) -> str:
    """Quote ``value`` as one POSIX shell word: nothing inside it is ever interpreted."""
    text = str(value)
    if "\0" in text:
        raise ValueError("a NUL byte cannot be passed to a shell script")
    return "'" + text.replace("'", "'\"'\"'") + "'"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(package_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        # shell has `${#var}`: move jinja's comment markers out of its way
        comment_start_string="{#{",
        comment_end_string="}#}",
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shq"] = shq
    return env


def render_template(name: str, context: Mapping[str, Any]) -> str:
    """Render the template ``name``, relative to the package (for example
    ``platforms/<type>/templates/apply.sh.j2``)."""
    text = _environment().get_template(name).render(**context)
    return text if text.endswith("\n") else text + "\n"
