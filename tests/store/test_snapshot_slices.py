"""The snapshot encoder works on long columns a slice at a time
(qcore.store.slices, so that a build on its own thread lets go of the GIL
between slices): with slices of two rows and text slices of three
characters, every state encodes to the very bytes it does in one piece."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.store import Store, slices, snapshot

from .test_properties import EXAMPLES, resolve, seeded, steps


def _in_one_piece(s: Store, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(slices, "SLICE", 1 << 40)
        m.setattr(snapshot, "_TEXT_SLICE", 1 << 40)
        return s.snapshot()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
@given(steps)
def test_sliced_encoding_gives_the_bytes_of_one_piece(monkeypatch: pytest.MonkeyPatch, seq) -> None:
    s = seeded()
    for cmd, now, _ in seq:
        s.apply(resolve(cmd, s), now)
    whole = _in_one_piece(s, monkeypatch)
    monkeypatch.setattr(slices, "SLICE", 2)
    monkeypatch.setattr(snapshot, "_TEXT_SLICE", 3)
    assert s.snapshot() == whole
    assert s.clone().snapshot(consume=True) == whole
    assert Store.restore(whole).snapshot() == whole


@given(st.lists(st.integers(0, 5), max_size=12), st.integers(1, 4))
def test_each_slice_operation_is_its_one_call_version(xs: list[int], width: int) -> None:
    slices_before = slices.SLICE
    slices.SLICE = width
    try:
        a = array("q", xs)
        assert slices.count(a, 0) == xs.count(0)
        assert slices.as_list(a) == xs
        assert slices.differences(a, a[::-1]) == [x - y for x, y in zip(xs, xs[::-1])]
        assert slices.delta(a) == ([xs[0]] + [y - x for x, y in zip(xs, xs[1:])] if xs else [])
        assert slices.where_not(a, 0) == [i for i, x in enumerate(xs) if x != 0]
        assert slices.where_is(a, 0) == [i for i, x in enumerate(xs) if x == 0]
        off = array("Q", xs)
        ln = array("I", [1] * len(xs))
        nz = [x for x in xs if x]
        assert slices.text_span(off, ln) == ((min(nz) if nz else 0), max((x + 1 for x in xs), default=0))
        rows = [(o, n) for o, n in zip(off, ln) if o]
        expect = bool(rows) and all(o2 == o1 + n1 for (o1, n1), (o2, _) in zip(rows, rows[1:]))
        assert slices.back_to_back(off, ln) == expect
    finally:
        slices.SLICE = slices_before
