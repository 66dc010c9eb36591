"""A seeded generator of hostile site specs, made from the example specs.

Each case is a spec text (plus the files next to it) that a careless user or an attacker
could write: every scalar of an example replaced by wrong types, unicode edge cases,
newlines and shell metacharacters, huge numbers; YAML tags, anchors and merge keys; named
files that are FIFOs, devices, directories, symlink loops or outside the spec's directory.
``tests/test_fuzz.py`` runs them all through the CLI and checks the contract: exit 0 or
2 (never 3, no traceback, no hang), nothing written on 2, and generated scripts that pass
`bash -n` and shellcheck and run nothing unexpected in a dry run.
"""

from __future__ import annotations

import functools
import io
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MARK = "@@HOSTILE@@"

# values written into the YAML text as they are (so tags, escapes and huge numbers reach the
# parser, not our dumper)
RAW_VALUES = [
    "!!set {a, b}",
    "!!binary aGVsbG8=",
    "!!python/object:os.system 'id'",
    "!!python/name:os.system",
    "!!int abc",
    "!!float xyz",
    "!!timestamp 2024-01-01",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    '"\\ud800"',
    '"\\udfff x"',
    '"\\U00110000"',
    '"a\\x00b"',
    '"\\x1b[31mred\\x1b[0m"',
    '"line\\nbreak"',
    '"trail\\n"',
    '"\\u202eevil"',
    '"\\ufeffbom"',
    "1" * 5000,
    "-" + "9" * 5000,
    "1e999",
    "-1e999",
    ".nan",
    ".inf",
    "0x" + "f" * 40,
    "99999999999999999999",
    "-1",
    "0",
    "[]",
    "{}",
    "[a, [b, [c]]]",
    "{a: {b: {c: d}}}",
    "null",
    "~",
    "true",
    "yes",
    "1.30",
    "*nowhere",
    '"$(touch PWNED)"',
    '"`touch PWNED`"',
    "\"x'; touch PWNED; '\"",
    '"a;touch PWNED"',
    '"a && touch PWNED"',
    '"$IFS$(touch${IFS}PWNED)"',
    '"fe80::1%;$(touch PWNED)"',
    '"10.0.0.1\\n"',
    '"valid\\n"',
    '"TKGI_USER\\n"',
    '"99999999999999999999h"',
    '"' + "5s" * 50_000 + '"',
    '"https://]/"',
    '"https://[zz]/x"',
    '"/"',
    '"../../etc/passwd"',
    '"' + "a" * 300 + '"',
    # valid, but at the edge of what each field takes: these render, and their scripts are checked
    '"fd00::10"',
    '"a-b.c"',
    '"' + "a" * 63 + '"',
    "65535",
    "1",
    "30000",
    '"r\u00e8gle \u2603 $(touch PWNED) \'q\' \\"x\\""',
    '"x@y:z/+=-"',
    '"1h"',
    '"/var/lib/a.b/c_d-e"',
]

# whole documents that are not a site at all
DOCUMENTS = [
    "!!python/object:os.system {}\n",
    "!!set {a, b}\n",
    "--- !!map\n? a\n",
    "a: &x [*x]\n",
    "base: &b {<<: *b}\n",
    "<<: *undefined\n",
    "- just\n- a list\n",
    "plain scalar\n",
    "\ufeffapiVersion: auditc.dev/v1alpha1\n",
    "apiVersion: auditc.dev/v1alpha1\nkind: Site\n---\nkind: Site\n",
    "a: 1\na: 2\n",
    "{" * 200 + "}" * 200 + "\n",
    "key: [unclosed\n",
    "\t- tab\n",
    "a: b\n" * 20_000,
]

# what a named file (tls.caFile, rules.custom, policy.file) may be
SPECIAL_FILES = [
    "fifo",
    "dev-zero",
    "dev-urandom",
    "dev-null",
    "directory",
    "symlink-loop",
    "outside",
    "absolute",
    "key-in-ca",
    "missing",
]
NAMED_FILE_FIELDS = {
    "ca": ("spec", "falco", "receiver", "tls", "caFile"),
    "rules": ("spec", "falco", "rules", "custom", 0),
    "policy": ("spec", "audit", "policy", "file"),
}


@dataclass
class Case:
    id: str
    text: str  # the spec file's text
    files: dict[str, bytes] = field(default_factory=dict)  # next to the spec
    special: str = ""  # a special named file to set up (SPECIAL_FILES)
    special_name: str = ""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.width = 4096
    return yaml


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path in the document: containers too (a container replaced by a scalar)."""
    if path:
        yield path
    if isinstance(node, dict):
        for key in node:
            yield from _leaves(node[key], (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _leaves(item, (*path, index))


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _dump(data: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    return buffer.getvalue()


def _example_files(spec: Path) -> dict[str, bytes]:
    out = {}
    for named in ("files", "bases"):
        for path in sorted((spec.parent / named).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(spec.parent))] = path.read_bytes()
    return out


# --full-corpus (tests/conftest.py) or AUDITC_FULL_CORPUS=1: every case; else an eighth of
# the value cases
FULL_CORPUS = os.environ.get("AUDITC_FULL_CORPUS") == "1"
PER_SPEC = (240, 30)  # value cases per example spec: full corpus, default (about 500 in all)
# keys a spec can never accept, each tried at every mapping level of every example spec in
# the full corpus; by default one per level, in turn
HOSTILE_KEYS = ('"\\ud800"', '"\\x1b]0;pwned\\x07"', '"a\\nb"', "[a]", "1", "null")


def examples(default: int, full: int) -> int:
    """How many examples a property test draws: ``full`` under --full-corpus (make
    test-full, which CI also runs), else ``default``; such tests carry the corpus mark."""
    return full if FULL_CORPUS else default


def corpus() -> tuple[Case, ...]:
    """The corpus the tests run: about 3,500 cases in full, about 500 by default (the same
    seed: the first value cases of each spec, one hostile key per mapping level)."""
    if FULL_CORPUS:
        return cases(per_spec=PER_SPEC[0], every_key=True)
    return cases(per_spec=PER_SPEC[1], every_key=False)


@functools.cache
def cases(seed: int = 20261202, per_spec: int = 240, every_key: bool = True) -> tuple[Case, ...]:
    """The corpus: deterministic for a seed. Built once per process (a YAML dump per case).
    Each example spec draws from its own generator, so a new example leaves the others'
    cases as they were."""
    out: list[Case] = []
    for spec in sorted(SPECS.glob("*.yaml")):
        rng = random.Random(f"{seed}-{spec.stem}")
        # one parse per spec: each case changes the document, dumps it and puts it back
        base = _yaml().load(spec.read_text())
        files = _example_files(spec)
        paths = list(_leaves(base))
        pairs = [(p, v) for p in paths for v in RAW_VALUES]
        rng.shuffle(pairs)
        for index, (path, raw) in enumerate(pairs[:per_spec]):
            parent = _get(base, path[:-1])
            kept = parent[path[-1]]
            parent[path[-1]] = MARK
            text = _dump(base).replace(MARK, raw, 1)
            parent[path[-1]] = kept
            out.append(Case(f"{spec.stem}-{index}", text, files))
        # a hostile key at every mapping level
        for index, path in enumerate(p for p in paths if isinstance(_get(base, p), dict)):
            mapping = _get(base, path)
            mapping[MARK] = "x"
            text = _dump(base)
            del mapping[MARK]
            keys = HOSTILE_KEYS if every_key else HOSTILE_KEYS[index % len(HOSTILE_KEYS) :][:1]
            for key in keys:
                out.append(Case(f"{spec.stem}-key-{index}-{len(out)}", text.replace(MARK, key, 1), files))
    for index, document in enumerate(DOCUMENTS):
        out.append(Case(f"document-{index}", document))
    prod = SPECS / "edge-tls.yaml"
    for name, path in NAMED_FILE_FIELDS.items():
        for special in SPECIAL_FILES:
            data = _yaml().load(prod.read_text())
            if name == "policy":
                for key in ("preset", "rules"):
                    data["spec"]["audit"]["policy"].pop(key, None)
            if name == "rules":
                data["spec"]["falco"].setdefault("rules", {})["custom"] = ["x"]
            _set(data, path, f"special/{special}")
            out.append(
                Case(
                    f"file-{name}-{special}", _dump(data), _example_files(prod), special, f"special/{special}"
                )
            )
    return tuple(out)


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    node = data
    for part in path:
        node = node[part]
    return node


KEY_AND_CERT = (
    b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUUz\n-----END CERTIFICATE-----\n"
    b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqG\n-----END PRIVATE KEY-----\n"
)


def materialize(case: Case, directory: Path) -> Path:
    """Write a case into ``directory``; returns the spec path."""

    directory.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    spec = directory / "site.yaml"
    spec.write_text(case.text, encoding="utf-8", errors="surrogatepass")
    if case.special:
        target = directory / case.special_name
        target.parent.mkdir(parents=True, exist_ok=True)
        if case.special == "fifo":
            os.mkfifo(target)
        elif case.special.startswith("dev-"):
            target.symlink_to("/dev/" + case.special.removeprefix("dev-"))
        elif case.special == "directory":
            target.mkdir()
        elif case.special == "symlink-loop":
            target.symlink_to(target.name + ".b")
            target.with_name(target.name + ".b").symlink_to(target.name)
        elif case.special == "outside":
            outside = directory.parent / f"{directory.name}-outside.yaml"
            outside.write_text("- rule: secret line one\n  password: hunter2\n")
            target.symlink_to(outside)
        elif case.special == "absolute":
            target.symlink_to("/etc/passwd")
        elif case.special == "key-in-ca":
            target.write_bytes(KEY_AND_CERT)
    return spec


def cleanup(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
