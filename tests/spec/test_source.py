"""The two YAML readers agree: libyaml's C parser (the fast path for plain documents) and
ruamel.yaml (tags, anchors, merge keys, every error) give the same data, value types and
positions for every document the fast path takes: the example specs, every YAML file in
tests/data, and the hostile specs of tests/fuzz.py (its whole corpus with --full-corpus)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.corpus
def test_both_readers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [p.read_text() for p in sorted((ROOT / "specs").glob("*.yaml"))]
    texts += [p.read_text() for p in sorted((ROOT / "tests" / "data").rglob("*.yaml"))]
    # every fourth case of the default corpus (a case differs from its neighbours in one
    # value); every case of the whole corpus with --full-corpus (make test-full)
    corpus = fuzz.corpus() if fuzz.FULL_CORPUS else fuzz.corpus()[::4]
    texts += [case.text for case in corpus]
    fast_count = 0
    for text in texts:
        fast = source._fast_parse(text, "x")
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
        "a: 1\na: 2\n",  # a duplicate key: ruamel reports it
        "a: 2024-01-01\n",  # a timestamp: ruamel's reader refuses it in place
        "a: [unclosed\n",  # a syntax error: ruamel's message and position
    ],
)
def test_what_the_fast_path_leaves_to_ruamel(text: str) -> None:
    assert source._fast_parse(text, "x") is None
