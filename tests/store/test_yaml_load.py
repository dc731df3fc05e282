"""qcore.store.yaml_load reads YAML exactly as yaml.safe_load does, faster."""

from __future__ import annotations

import datetime

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.store.yaml_load import parse_yaml

DOCUMENTS = [
    "",
    "a: 1\nb: [1, 2.5, -3, 0x1F, 1_000, 0o17, +7, .inf, -.inf, 1e3, 1.0e+3]\n",
    "x: {y: null, z: ~, w: true, v: No, u: on, t: 'quoted', s: \"d\\tq\"}\n",
    "when: 2026-01-02\nat: 2026-01-02 03:04:05.123456+01:00\nblob: !!binary AAEC\n",
    "base: &b {k: 1, l: 2}\nother:\n  <<: *b\n  l: 3\n",  # merge keys
    "shared: &s [1, 2]\nagain: *s\n",  # an alias to a collection
    "n: &n 5\nm: *n\n",  # an alias to a scalar
    "dup: 1\ndup: 2\n",
    "- - - deep\n  - [x, {y: [z]}]\n",
    "!!set {a, b}\n",
    "key with spaces: 'value: colon'\n'123': 123\n? complex\n: value\n",
    "tree:\n- {entity_type: Item, name: i3, attributes: {Count: {Int: 3}, Next: {EntityReference: Item$4}}}\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_as_safe_load(text: str) -> None:
    assert parse_yaml(text) == yaml.safe_load(text)
    if isinstance(yaml.safe_load(text), dict):
        assert list(parse_yaml(text)) == list(yaml.safe_load(text))  # keys in document order


def test_errors_are_pyyaml_errors() -> None:
    for bad in ("a: [1, 2", "? [1, 2]\n: x\n", "x: !unknown 3\n", "a: 1\n b: 2\n"):
        with pytest.raises(yaml.YAMLError):
            parse_yaml(bad)


@pytest.mark.parametrize("text,key,line", [
    ("dup: 1\ndup: 2\n", "dup", 2),
    ("a: {x: 1, 'x': 2}\n", "x", 1),
    ("1: a\n01: b\n", 1, 2),
    ("base: &b {k: 1}\nother:\n  <<: *b\n  j: 3\n  j: 4\n", "j", 5),  # a merge: yaml.load's path
])
def test_unique_keys_refuses_a_key_given_twice(text: str, key: object, line: int) -> None:
    with pytest.raises(yaml.constructor.ConstructorError) as ei:
        parse_yaml(text, unique_keys=True)
    assert ei.value.problem == f"found duplicate key {key!r}"
    assert ei.value.problem_mark is not None and ei.value.problem_mark.line + 1 == line


def test_unique_keys_lets_a_merge_be_overridden() -> None:
    for text in ("base: &b {k: 1}\nother:\n  <<: *b\n  k: 3\n", "shared: &s {a: 1}\nagain: *s\n", "!!set {a, b}\n"):
        assert parse_yaml(text, unique_keys=True) == yaml.safe_load(text)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
              st.floats(allow_nan=False), st.datetimes(timezones=st.just(datetime.timezone.utc))),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=200)
@given(json_like, st.sampled_from([None, True, False]))
def test_any_dumped_document_reads_back_the_same(data: object, flow: bool | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert parse_yaml(text) == yaml.safe_load(text)
