"""Collecting diagnostics with their spec locations, raising every error at once."""

from __future__ import annotations

from typing import Any

from compiler.catalog import rules
from compiler.errors import Diagnostic, UserError, format_path
from compiler.spec.source import SourceDoc


class Checks:
    """Collects diagnostics with their spec locations; raises all errors at once."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.items: list[Diagnostic] = []

    def error(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.items.append(Diagnostic(message, self.doc.location(path, key=key), format_path(path)))

    def warn(self, path: tuple[str | int, ...], message: str, *, code: str) -> None:
        """A warning with its finding id (compiler/data/lint-rules.yaml)."""
        rule = rules()[code]
        self.items.append(
            Diagnostic(
                message,
                self.doc.location(path),
                format_path(path),
                rule.severity,
                code=code,
                why=rule.why,
                fix=rule.fix,
            )
        )

    def given(self, path: tuple[str | int, ...]) -> bool:
        node: Any = self.doc.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def finish(self) -> tuple[Diagnostic, ...]:
        errors = [d for d in self.items if d.severity == "error"]
        if errors:
            raise UserError(self.items)
        return tuple(self.items)
