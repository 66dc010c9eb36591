"""Secret values hidden from anything auditc shows: review diffs and live diffs.

A value is secret by the key it sits under (password, token, private key, ...), by the
name of the env entry it belongs to, or by being a PEM private key block. Both sides of
a diff are masked together so a reader still sees *whether* a secret changed, never what.
"""

from __future__ import annotations

import re

# keys whose values never appear in a diff: only whether they changed
_SECRET_KEY = re.compile(
    r"^(?P<head>\s*-?\s*[\"']?(?P<key>[A-Za-z0-9_.-]*(?:password|passwd|secret|token|private[-_]?key|"
    r"client-key-data|apikey|api[-_]key|credential|webhook[-_]?url)[A-Za-z0-9_.-]*)[\"']?\s*:\s*)(?P<value>\S.*)$",
    re.IGNORECASE,
)
# `- name: API_TOKEN` followed by `value: ...` (container env, chart extra env)
_SECRET_NAME = re.compile(
    r"^\s*-?\s*name:\s*[\"']?[A-Za-z0-9_.-]*(?:password|secret|token|key|credential)", re.I
)
_VALUE = re.compile(r"^(?P<head>\s*value:\s*)(?P<value>\S.*)$")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")


def _secrets(lines: list[str]) -> list[tuple[str, int, int, str, str]]:
    """(signature, first line, last line, kept prefix, secret) for each secret in ``lines``."""
    found: list[tuple[str, int, int, str, str]] = []
    seen: dict[str, int] = {}

    def sign(name: str) -> str:
        seen[name] = seen.get(name, 0) + 1
        return f"{name}#{seen[name]}"

    index = 0
    while index < len(lines):
        line = lines[index]
        if _PEM_BEGIN.search(line):
            end = index
            while end < len(lines) - 1 and not _PEM_END.search(lines[end]):
                end += 1
            indent = line[: len(line) - len(line.lstrip())]
            found.append((sign("pem"), index, end, indent, "\n".join(lines[index : end + 1])))
            index = end + 1
            continue
        match = _SECRET_KEY.match(line)
        if match:
            found.append((sign(match["key"].lower()), index, index, match["head"], match["value"]))
        elif (
            _SECRET_NAME.match(line) and index + 1 < len(lines) and (value := _VALUE.match(lines[index + 1]))
        ):
            found.append((sign(line.strip()), index + 1, index + 1, value["head"], value["value"]))
            index += 1
        index += 1
    return found


def _mask(text: str, secrets: list[tuple[str, int, int, str, str]], changed: set[str], side: str) -> str:
    lines = text.splitlines()
    for signature, first, last, head, _ in reversed(secrets):
        marker = f"<hidden, {side} value>" if signature in changed else "<hidden>"
        lines[first : last + 1] = [head + marker]
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def hide_pair(old: str, new: str) -> tuple[str, str]:
    """Hide secret values on both sides of a diff: whether each changed shows, never what."""
    old_secrets, new_secrets = _secrets(old.splitlines()), _secrets(new.splitlines())
    before = {sig: value for sig, *_, value in old_secrets}
    after = {sig: value for sig, *_, value in new_secrets}
    changed = {sig for sig in before.keys() | after.keys() if before.get(sig) != after.get(sig)}
    return _mask(old, old_secrets, changed, "old"), _mask(new, new_secrets, changed, "new")


def hide_secrets(text: str) -> str:
    """One text with every secret value hidden."""
    return hide_pair(text, text)[1]
