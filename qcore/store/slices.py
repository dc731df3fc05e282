"""Whole-column operations for the snapshot encoder, done a slice at a time.

A snapshot is encoded on a thread of its own while the node's loop goes on
applying. A C-level loop over a million rows (``array.count``, ``map``
into a list, ``compress``) holds the GIL from start to end, 10-130 ms at
1M entities, and the loop waits that long. Done ``SLICE`` rows at a time,
with Python bytecode between the slices, the interpreter can hand the GIL
over between them (after its switch interval), so the loop waits a few
milliseconds at most. The results are those of the one-call versions.
"""

from __future__ import annotations

from array import array
from itertools import compress
from operator import add, sub
from typing import Any, Callable, Sequence

SLICE = 1 << 16


def _bounds(n: int) -> range:
    return range(0, n, SLICE)


def count(seq: Sequence[Any], value: Any) -> int:
    """``seq.count(value)``."""
    return sum(seq[i:i + SLICE].count(value) for i in _bounds(len(seq)))


def as_list(seq: Sequence[Any]) -> list[Any]:
    """``list(seq)``."""
    out: list[Any] = []
    for i in _bounds(len(seq)):
        out.extend(seq[i:i + SLICE])
    return out


def differences(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """``list(map(sub, a, b))`` for sequences of one length."""
    out: list[int] = []
    for i in _bounds(len(a)):
        out.extend(map(sub, a[i:i + SLICE], b[i:i + SLICE]))
    return out


def delta(seq: Sequence[int]) -> list[int]:
    """The first item, then each item minus the one before it."""
    if not seq:
        return []
    out = [seq[0]]
    n = len(seq)
    for i in range(1, n, SLICE):
        j = min(n, i + SLICE)
        out.extend(map(sub, seq[i:j], seq[i - 1:j - 1]))
    return out


def where_not(seq: Sequence[Any], unless: Any) -> list[int]:
    """Positions of ``seq`` whose item is not ``unless``."""
    return _positions(seq, unless.__ne__)


def where_is(seq: Sequence[Any], value: Any) -> list[int]:
    """Positions of ``seq`` whose item is ``value``."""
    return _positions(seq, value.__eq__)


def _positions(seq: Sequence[Any], test: Callable[[Any], Any]) -> list[int]:
    out: list[int] = []
    n = len(seq)
    for i in _bounds(n):
        out.extend(compress(range(i, min(n, i + SLICE)), map(test, seq[i:i + SLICE])))
    return out


def text_span(off: array[int], ln: array[int]) -> tuple[int, int]:
    """``(min of the nonzero offsets, max of offset + length)`` of a String
    column (rows at the default have offset 0); (0, 0) if none."""
    lo = hi = 0
    for i in _bounds(len(off)):
        o = off[i:i + SLICE]
        m = min(filter(None, o), default=0)
        if m and (not lo or m < lo):
            lo = m
        hi = max(hi, max(map(add, o, ln[i:i + SLICE]), default=0))
    return lo, hi


def back_to_back(off: array[int], ln: array[int]) -> bool:
    """Whether the rows holding text of their own (offset not 0) hold it in
    row order, each right after the previous one."""
    prev_end = -1  # where the previous row with text ends; -1: none yet
    for i in _bounds(len(off)):
        o = array("Q", compress(off[i:i + SLICE], off[i:i + SLICE]))
        if not o:
            continue
        n = array("I", compress(ln[i:i + SLICE], off[i:i + SLICE]))
        if prev_end >= 0 and o[0] != prev_end:
            return False
        if o[1:] != array("Q", map(add, o[:-1], n[:-1])):
            return False
        prev_end = o[-1] + n[-1]
    return prev_end >= 0
