"""Same spec, same bytes: across runs and whatever order the spec's keys are written in."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from compiler.api import compile_site
from tests import fuzz
from tests.sites import ROOT, example_specs


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _bytes(spec: Path) -> dict[str, bytes]:
    return {a.path: a.content for a in compile_site(spec).artifacts if a.path != "MANIFEST.json"}


def test_rendering_twice_gives_identical_bytes() -> None:
    for spec in example_specs():
        first = {a.path: a.content for a in compile_site(spec).artifacts}
        second = {a.path: a.content for a in compile_site(spec).artifacts}
        assert first == second


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), index=st.integers(min_value=0, max_value=100))
def test_shuffled_mapping_keys_give_identical_bytes(seed: int, index: int) -> None:
    specs = example_specs()
    spec = specs[index % len(specs)]
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(spec.read_text())
    shuffled = _shuffled(data, random.Random(seed))
    with tempfile.TemporaryDirectory() as tmp:
        for named in ("files", "bases"):
            if (spec.parent / named).is_dir():
                shutil.copytree(spec.parent / named, Path(tmp) / named)
        copy = Path(tmp) / spec.name
        with copy.open("w") as handle:
            yaml.dump(shuffled, handle)
        # MANIFEST.json carries the spec digest, which covers the spec's bytes: compare the rest
        assert _bytes(copy) == _bytes(spec)


def test_every_file_ends_with_one_newline_and_uses_lf() -> None:
    for spec in example_specs():
        for artifact in compile_site(spec).artifacts:
            assert artifact.content.endswith(b"\n"), artifact.path
            assert b"\r" not in artifact.content, artifact.path


def test_files_a_spec_names_count_in_the_spec_digest(tmp_path: Path) -> None:
    from tests.sites import write_spec

    rules = {"rules/extra.yaml": "- list: my_list\n  items: [a]\n"}
    spec = write_spec(tmp_path, {"falco": {"rules": {"custom": ["rules/extra.yaml"]}}}, files=rules)

    def digest() -> str:
        site = compile_site(spec)
        manifest = next(a.content for a in site.artifacts if a.path == "MANIFEST.json")
        return str(json.loads(manifest)["specDigest"])

    before = digest()
    (tmp_path / "rules/extra.yaml").write_text("- list: my_list\n  items: [b]\n")
    assert digest() != before


def test_pure_python_and_libyaml_emitters_write_the_same_bytes(monkeypatch: Any) -> None:
    """Where PyYAML has no libyaml the pure emitter is used: output must not change."""
    import yaml

    from compiler import emit

    with_c = {a.path: a.content for spec in example_specs() for a in compile_site(spec).artifacts}
    emit._dumper.cache_clear()
    emit._MEMO.clear()  # what the C emitter wrote must not stand in for the pure one
    monkeypatch.delattr(yaml, "CSafeDumper")
    try:
        pure = {a.path: a.content for spec in example_specs() for a in compile_site(spec).artifacts}
    finally:
        monkeypatch.undo()
        emit._dumper.cache_clear()
        emit._MEMO.clear()
    assert pure == with_c


_TEXT = st.sampled_from(
    [
        "a",
        "yes",
        "0o17",
        "1e3",
        "",
        " x",
        "a: b",
        "#c",
        "- d",
        "~",
        "x\n",
        "x\n\n",
        "l1\nl2",
        "l1\n\nl2\n",
        "k" * 130,
        "a \n\n b \n",  # quoted over lines (trailing blanks): continuation lines indented
        "\u2028\u2028",  # line breaks YAML knows besides \n
        "a\n\u2028\nb",
        "x\x85y",
    ]
)
# what the emitter is trusted to write plain without being asked: with the YAML 1.1 words
# and numbers it must quote, and every character of the class in every place
_PLAIN_LOOKING = st.from_regex(r"[A-Za-z0-9./][A-Za-z0-9 ./=_(),;-]{0,10}", fullmatch=True) | st.sampled_from(
    [
        *["1.5", "1e3", "0x1F", ".5", ".inf", "2001-12-14", "1.2.3", "./a", "-", ".", "/", "on", "Null"],
        *["0o7", "...", ".../a", "....", "0X1F", "0B1", "0O7", "-_0x1", "1__0"],
        *["a b", "a ", "a  b", "a=b", "f(x), g;", "1 2", "2001-12-14 x", "a -b", "y n", ". .", "- a"],
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    _TEXT,
    _PLAIN_LOOKING,
)
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6) | _TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.corpus
@settings(max_examples=fuzz.examples(60, 400), deadline=None)
@given(document=st.dictionaries(st.text(max_size=6) | _TEXT, _DOCS, max_size=5) | st.lists(_DOCS, max_size=4))
def test_a_mapping_written_entry_by_entry_is_the_mapping_written_whole(document: Any) -> None:
    """emit writes a mapping's entries and a sequence's items one by one, nested mappings
    indented under their key lines, plain-looking strings without asking the emitter (to
    share what sites share, and not to call it for what they do not): the same bytes as
    writing it whole, whatever the entries hold (block scalars with blank lines, keys that
    must be quoted or are too long for a simple key, words YAML 1.1 reads as other types)."""
    from compiler import emit

    emit._MEMO.clear()
    assert emit._dump(document) == emit._emit(emit.canonical(document))
    assert emit._dump(document) == emit._emit(emit.canonical(document)), "and from the memo"


@pytest.mark.parametrize(
    "word", ["...", ".../a", "....", "0X1F", "0B1", "0O7", "-_0x1", "1__0", "0x", "..", "a"]
)
def test_a_plain_looking_string_is_written_as_the_emitter_writes_it(word: str) -> None:
    """The plain fast path quotes what the emitter quotes: "..." (it would end a document)
    and what a YAML 1.1 reader takes for a number."""
    from compiler import emit

    for document in ({"k": word}, {"k": [word, {"j": word}]}, [word]):
        emit._MEMO.clear()
        assert emit._dump(document) == emit._emit(emit.canonical(document)), document


def test_separate_processes_with_other_hash_seeds_and_locales_give_identical_trees(tmp_path: Path) -> None:
    """Same bytes from fresh interpreters whose set and dict-of-str orders differ (hash seed),
    with another locale, time zone and umask: nothing in the output may depend on them."""

    def render(name: str, env: dict[str, str], umask: int) -> dict[str, tuple[bytes, int]]:
        out = tmp_path / name
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import os, sys; os.umask({umask}); from compiler.cli import main; main()",
                "render",
                "-q",
                str(ROOT / "specs"),
                "-o",
                str(out),
            ],
            env={**os.environ, **env},
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )
        return {
            str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(out.rglob("*"))
            if p.is_file() and ".auditc-cache" not in p.parts  # local state, not output
        }

    first = render("a", {"PYTHONHASHSEED": "0", "LC_ALL": "C", "TZ": "UTC"}, 0o022)
    second = render("b", {"PYTHONHASHSEED": "4242", "LC_ALL": "C.UTF-8", "TZ": "Pacific/Kiritimati"}, 0o077)
    third = render("c", {"PYTHONHASHSEED": "random", "TZ": "America/St_Johns"}, 0o002)
    assert len(first) > 50
    assert first == second == third


def test_the_template_cache_changes_no_byte_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    """Rendered with a template cache being filled, with it full, and with every cached
    template damaged: the bytes of the committed output each time (new processes)."""
    cache = tmp_path / "cache"

    def render(name: str, where: str) -> dict[str, bytes]:
        out = tmp_path / name
        env = {**os.environ, "AUDITC_CACHE_DIR": where}
        argv = [
            sys.executable,
            "-m",
            "compiler",
            "render",
            "-q",
            str(ROOT / "specs/prod-east.yaml"),
            "-o",
            str(out),
        ]
        subprocess.run(argv, env=env, check=True, capture_output=True)
        return {
            str(p.relative_to(out)): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file() and ".auditc-cache" not in p.parts
        }

    none = {  # the committed output: rendered with no template cache (make render, CI)
        str(p.relative_to(ROOT / "output")): p.read_bytes()
        for p in sorted((ROOT / "output/prod-east").rglob("*"))
        if p.is_file()
    }
    assert render("filling", str(cache)) == none
    cached = sorted(cache.rglob("*.cache"))
    assert cached, "the templates were cached"
    assert render("full", str(cache)) == none
    for path in cached:
        path.write_bytes(b"damaged")
    assert render("damaged", str(cache)) == none
