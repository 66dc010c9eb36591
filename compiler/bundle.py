"""What a lowering produces: files with their bytes, relative to output/<site>/."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Artifact:
    path: str  # POSIX path relative to output/<site>/
    content: bytes
    executable: bool = False
