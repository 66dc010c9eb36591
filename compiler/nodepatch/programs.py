"""The awk programs of the patch script, kept as files so they can be read and tested on
their own (tests/nodepatch/test_awk.py runs them directly), and embedded in the script as
quoted heredocs so that a node needs nothing beside the script and its config files.

A mode's program is its parts joined in order: yaml.awk (reading and writing the YAML
lines, the inputs), args.awk (the owned-flag rules), then the mode's own patcher, which
holds the one BEGIN block.
"""

from __future__ import annotations

from functools import cache

from compiler.paths import package_dir

HEREDOC_END = "AUDITC_AWK"  # the script's heredoc terminator: no awk line may equal it
PARTS = ("yaml.awk", "args.awk", "static-pod.awk", "bpm.awk")
PROGRAMS: dict[str, tuple[str, ...]] = {
    "static-pod": ("yaml.awk", "args.awk", "static-pod.awk"),
    "bpm": ("yaml.awk", "args.awk", "bpm.awk"),
}


@cache
def part(name: str) -> str:
    """One awk file's text without its final newline, as the script embeds it."""
    text = (package_dir() / "nodepatch" / name).read_text(encoding="utf-8")
    if HEREDOC_END in text.splitlines():
        raise ValueError(f"{name}: a line {HEREDOC_END} would end the script's heredoc")
    return text.rstrip("\n")


def parts() -> dict[str, str]:
    """Every part by file name: what the template embeds."""
    return {name: part(name) for name in PARTS}


def program(mode: str) -> str:
    """The whole awk program of ``mode`` (static-pod or bpm), as the script runs it."""
    return "\n".join(part(name) for name in PROGRAMS[mode]) + "\n"
