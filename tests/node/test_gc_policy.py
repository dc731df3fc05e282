"""The node's garbage-collector policy (qcore.node.gc_policy)."""

from __future__ import annotations

import gc
import weakref
from typing import Iterator

import pytest

from qcore.node import gc_policy


@pytest.fixture
def policy() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc_policy.install()
    try:
        yield
    finally:
        gc.callbacks.remove(gc_policy._freeze_survivors)  # noqa: SLF001
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.peer: "Node | None" = None


def test_survivors_of_a_generation_1_collection_are_frozen(policy: None) -> None:
    gc.unfreeze()
    keep = [Node() for _ in range(1000)]
    gc.collect(1)
    assert gc.get_freeze_count() >= len(keep)
    assert gc.get_threshold() == gc_policy.THRESHOLDS
    gc_policy.install()  # twice is once
    assert gc.callbacks.count(gc_policy._freeze_survivors) == 1  # noqa: SLF001


def test_young_cycles_are_still_collected(policy: None) -> None:
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect(0)
    assert ref() is None
