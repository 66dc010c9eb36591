"""User errors versus bugs, and the exit codes of SPEC.md §8.

Everything a user can get wrong is a ``UserError`` carrying one or more ``Diagnostic``s
(file:line:col, field path, what was expected). Anything else is a bug: the CLI's single
error boundary turns it into exit code 3 and a one-line request for a bug report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal


class ExitCode(IntEnum):
    OK = 0
    CHANGED = 1  # render --check: stale output; diff: differences
    FINDINGS = 1  # validate: a lint error not accepted (--strict: any warning)
    INVALID = 2  # bad input: nothing was written
    BUG = 3


Severity = Literal["error", "warning"]

# what a terminal would act on instead of showing: C0/C1 controls, DEL and the bidirectional
# overrides (U+202A..U+202E, U+2066..U+2069) that reorder what is shown
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


FIELD_LIMIT = 120  # a field path or message a spec can make as long as it likes is cut
MESSAGE_LIMIT = 400


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (\\n, \\x1b, \\u202e)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
        if char in named:
            return named[char]
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _UNPRINTABLE.sub(escape, text)


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based

    def __str__(self) -> str:
        if self.line is None:
            return printable(self.file)
        return f"{printable(self.file)}:{self.line}:{self.col or 1}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    location: Location | None = None
    field: str = ""  # dotted spec path, e.g. spec.falco.receiver.port
    severity: Severity = "error"
    code: str = ""  # a lint rule id, e.g. AUD003
    accepted: bool = False  # a lint finding the spec acknowledges in spec.lint.accept
    why: str = ""  # lint: the rule's one-line reason
    fix: str = ""  # lint: what to do about it

    def __str__(self) -> str:
        parts = [str(self.location)] if self.location else []
        if self.code:
            label = "accepted" if self.accepted else self.severity
            parts.append(f"{label}[{self.code}]")
        elif self.severity == "warning":
            parts.append("warning")
        if self.field:
            parts.append(_cut(printable(self.field), FIELD_LIMIT))
        parts.append(_cut(printable(self.message), MESSAGE_LIMIT))
        if self.why:
            parts.append(self.why)
        text = ": ".join(parts)
        return f"{text} (fix: {self.fix})" if self.fix else text

    def short(self, limit: int = 160) -> str:
        """One line for a run's output: where, the id and what was found (the reason and the
        fix are `auditc explain ID`), cut to about ``limit`` characters."""
        parts = [str(self.location)] if self.location else []
        label = "accepted" if self.accepted else self.severity
        parts.append(f"{label}[{self.code}]" if self.code else label)
        if self.field:
            parts.append(_cut(printable(self.field), FIELD_LIMIT))
        parts.append(printable(self.message))
        text = ": ".join(parts)
        return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class WorkerLost(Exception):
    """A worker process killed from outside (the OOM killer, kill -9, a SIGTERM): exit 3,
    not reported as a bug in auditc; nothing was put in place."""


class Refusal(Exception):
    """A command that would not go on (a stale plan, a lock held by another apply): exit 1,
    nothing touched. Each reason is one line."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class UserError(Exception):
    """Bad input: reported without a traceback, exit code 2, nothing written."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = Diagnostic(diagnostics)
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


def format_path(path: tuple[str | int, ...]) -> str:
    """('spec', 'audit', 'policy', 'rules', 2, 'level') -> spec.audit.policy.rules[2].level"""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text
