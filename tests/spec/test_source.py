"""The two YAML readers agree: libyaml's C parser (the fast path for plain documents) and
ruamel.yaml (tags, anchors, merge keys, every error) give the same data, value types and
positions for every document the fast path takes: the example specs, every YAML file in
tests/data, and the hostile specs of tests/fuzz.py (its whole corpus with --full-corpus)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import UserError
from compiler.spec import source
from tests import fuzz
from tests.paths import ROOT


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _ruamel(text: str, monkeypatch: pytest.MonkeyPatch) -> source.SourceDoc:
    with monkeypatch.context() as patch:
        patch.setattr(source, "_fast_parse", lambda text, display: None)
        return source.parse_yaml(text.encode("utf-8", "surrogatepass"), Path("x"), "x")


# duplicate keys the fast reader refuses itself (both readers go depth first, in document order)
DUPLICATES = [
    "a: 1\na: 2\n",
    "a:\n  b: 1\n  b: 2\na: 3\n",  # the inner one comes first
    "x:\n  - {c: 1, c: 2}\nx: 1\n",
    "k: [1, {z: 1, z: 2}]\nk: 2\n",
    "'a b': 1\n\"a b\": 2\n",  # quoted keys are the same text
    "spec:\n  s\u00e8te \u2603: 1\n  s\u00e8te \u2603: 2\n",
    "a: b\n" * 200,
]


def test_a_long_file_with_a_duplicate_key_is_refused_without_ruamel(monkeypatch: pytest.MonkeyPatch) -> None:
    # ruamel.yaml takes seconds over 20,000 lines; the fast reader refuses at the second one
    import ruamel.yaml

    monkeypatch.setattr(ruamel.yaml, "YAML", None)
    with pytest.raises(UserError) as refusal:
        source.parse_yaml(b"a: b\n" * 20_000, Path("x"), "x")
    assert str(refusal.value) == 'x:2:1: invalid YAML: duplicate key "a"'


@pytest.mark.corpus
def test_both_readers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [p.read_text() for p in sorted((ROOT / "specs").glob("*.yaml"))]
    # the test data's YAML, but the three CRDs of over 50 kB (the shapes they hold are in
    # the smaller ones; read by ruamel they would be half of this test's time)
    data = [p.read_text() for p in sorted((ROOT / "tests" / "data").rglob("*.yaml"))]
    texts += [text for text in data if len(text) <= 50_000]
    # every eighth case of the default corpus (a case differs from its neighbours in one
    # value); every case of the whole corpus with --full-corpus (make test-full)
    corpus = fuzz.corpus() if fuzz.FULL_CORPUS else fuzz.corpus()[::8]
    texts += [case.text for case in corpus]
    texts += DUPLICATES
    fast_count = 0
    for text in texts:
        try:
            fast = source._fast_parse(text, "x")
        except UserError as refusal:  # a duplicate key: ruamel's refusal, word for word
            if len(text) > 50_000:
                continue  # the corpus's 20,000 lines: their shape is in DUPLICATES (200 lines)
            with pytest.raises(UserError) as slow_refusal:
                _ruamel(text, monkeypatch)
            assert refusal.diagnostics == slow_refusal.value.diagnostics, text[:200]
            continue
        if fast is None:
            continue
        fast_count += 1
        slow = _ruamel(text, monkeypatch)
        assert _same(fast[0], slow.data), text[:200]
        assert fast[1] == slow.value_pos, text[:200]
        assert fast[2] == slow.key_pos, text[:200]
    assert fast_count > len(corpus) // 2, "the fast path takes most documents"


@pytest.mark.parametrize(
    "text",
    [
        "a: !!str 1\n",  # a tag
        "a: &x 1\nb: *x\n",  # anchors
        "a: {<<: {b: 1}}\n",  # a merge key
        'a: 1\n"a\\"b": 1\n"a\\"b": 2\n',  # a duplicate key ruamel would print otherwise
        "a: 1\n1: x\n",  # a key that is not text
        "a: 2024-01-01\n",  # a timestamp: ruamel's reader refuses it in place
        "a: [unclosed\n",  # a syntax error: ruamel's message and position
    ],
)
def test_what_the_fast_path_leaves_to_ruamel(text: str) -> None:
    assert source._fast_parse(text, "x") is None


# what the fast path refuses, written plainly: a node property where a token starts, a
# merge key, a complex key, a directive at a line's start (the reader's regex says the
# same, looked for from each mark)
_PLAIN_UNSAFE = re.compile(r"(?:^|[\s\[\]{},:])[!&*]|<<|\? |^%", re.M)


@pytest.mark.corpus
@settings(max_examples=fuzz.examples(2000, 20000), deadline=None)
@given(text=st.text(alphabet="ab !&*<?%:\n\r\t[]{},#'\"\x85\u2028\u3000", max_size=12))
def test_the_fast_paths_refusal_is_the_plain_rule(text: str) -> None:
    assert bool(source._FAST_UNSAFE.search(text)) == bool(_PLAIN_UNSAFE.search(text)), repr(text)


_ALPHABET = "0123456789.+-_:eEoOxXbBtTzZaAfFgGhHnNsSuUlLyY ~/<=!&*%@,[]{}#\t\u00e9"
_SAMPLES = st.sampled_from(
    [
        "10.0.1.171",
        "10.96.0.0/12",
        "0.44.1",
        "1.30",
        "30007",
        "007",
        "0o17",
        "0x1F",
        "1e3",
        "1_000",
        ".inf",
        "-.inf",
        ".nan",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "12:30:45",
        "true",
        "True",
        "tRUE",
        "yes",
        "null",
        "NULL",
        "~",
        "on",
        "y",
        "n",
        "0",
        "-0",
        "+1",
        "0b101",
        "1.",
        ".5",
        "3.",
        "fd00::10",
        "9" * 30,
    ]
)


@pytest.mark.corpus
@settings(max_examples=fuzz.examples(500, 3000), deadline=None)
@given(value=st.one_of(_SAMPLES, st.text(alphabet=_ALPHABET, min_size=1, max_size=12)))
def test_what_the_fast_reader_types_itself_ruamel_types_alike(value: str) -> None:
    """plain_type answers str or int only where ruamel.yaml's YAML 1.2 resolver says the
    same (the fast reader then never loads ruamel.yaml for that scalar)."""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    from compiler.spec.source import plain_type

    known = plain_type(value)
    if known is None:
        return
    tag = str(VersionedResolver().resolve(ScalarNode, value, (True, False)))
    assert tag.endswith(":str" if known is str else ":int"), (value, tag)
    if known is int:
        assert int(value.replace("_", "")) == int(value)


def test_a_byte_order_mark_inside_a_document_is_left_to_ruamel() -> None:
    """libyaml skips a BOM at the start of any line, so a tag, an anchor or a directive
    after one would pass the fast reader's check unseen: such a document is ruamel's."""
    for text in (
        "a: [\n\ufeff!!str 1]\n",
        "\ufeff&k a: 1\nb: [\n\ufeff*k ]\n",
        "\ufeff%YAML 1.1\n---\na: yes\n",
    ):
        assert source._fast_parse(text, "x") is None, text


def test_flow_collections_are_refused_past_the_depth_limit_however_many_there_are() -> None:
    """A document nesting flow brackets deeper than MAX_DEPTH is refused before it is
    parsed; many brackets side by side (more than the limit in all) are no nesting."""
    limit = source.MAX_DEPTH
    deep = ("a: " + "[" * (limit + 1) + "]" * (limit + 1) + "\n").encode()
    with pytest.raises(UserError) as refusal:
        source.parse_yaml(deep, Path("x"), "x")
    assert f"flow collections nest {limit + 1} levels deep (the limit is {limit})" in str(refusal.value)
    nested: list[object] = []
    for _ in range(limit - 1):
        nested = [nested]
    at_limit = ("a: " + "[" * limit + "]" * limit + "\n").encode()
    assert source.parse_yaml(at_limit, Path("x"), "x").data == {"a": nested}
    wide = ("a: [" + ", ".join(["[1]", "{b: 2}"] * limit) + "]\n").encode()
    assert source.parse_yaml(wide, Path("x"), "x").data == {"a": [[1], {"b": 2}] * limit}
