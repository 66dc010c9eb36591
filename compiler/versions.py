"""Kubernetes and Falco version knowledge, read from compiler/data/versions.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from typing import Any

from compiler.datafiles import load_data


@dataclass(frozen=True)
class Version:
    """A dotted version; compares numerically, missing parts count as zero."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Version:
        return _parsed(text) if cls is Version else cls(tuple(int(p) for p in text.split(".")))

    @cached_property
    def _key(self) -> tuple[int, ...]:  # computed once: a site compares versions hundreds of times
        return self.parts + (0,) * (3 - len(self.parts))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @cached_property
    def minor(self) -> Version:  # one object, its key computed once: asked for dozens of times a site
        return Version(self.parts[:2])

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Version:
    """Version.parse, once per text (versions are frozen; each site parses dozens)."""
    return Version(tuple(int(p) for p in text.split(".")))


def in_range(version: Version, entry: dict[str, Any]) -> bool:
    """Whether a Kubernetes version's minor lies in the entry's from..until (inclusive)."""
    low = Version.parse(entry["from"])
    high = entry.get("until")
    return low <= version.minor and (high is None or version.minor <= Version.parse(high))


@cache
def _table() -> dict[str, Any]:
    data = load_data("versions.yaml")
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class Feature:
    name: str
    since: Version
    until: Version | None

    def available(self, version: Version) -> bool:
        return self.since <= version.minor and (self.until is None or version.minor <= self.until)


def kube_feature(name: str) -> Feature:
    entry = _table()["kubernetes"]["features"][name]
    until = entry.get("until")
    return Feature(name, Version.parse(entry["from"]), Version.parse(until) if until else None)


def kube_table() -> dict[str, Any]:
    table = _table()["kubernetes"]
    assert isinstance(table, dict)
    return table


def fact(section: str, name: str) -> Any:
    """A single fact of versions.yaml, written there as {value: ..., source: ...}."""
    return _table()[section][name]["value"]


def flag(name: str) -> dict[str, Any]:
    entry = kube_table()["flags"][name]
    assert isinstance(entry, dict)
    return entry


def flag_available(name: str, version: Version) -> bool:
    return in_range(version, flag(name))


def kube_oldest() -> Version:
    return Version.parse(fact("kubernetes", "oldest"))


def kube_newest() -> Version:
    return Version.parse(fact("kubernetes", "newest"))


def falco_table() -> dict[str, Any]:
    table = _table()["falco"]
    assert isinstance(table, dict)
    return table


def falco_default() -> Version:
    return Version.parse(fact("falco", "default"))


def falco_engine(falco: Version) -> int | None:
    """The rules engine version of a Falco release (the newest entry at or below it)."""
    engine = None
    for entry in falco_table()["engineVersions"]:
        if Version.parse(entry["falco"]) <= falco:
            engine = int(entry["engine"])
    return engine
