"""ReadBatcher: one ReadIndex round per batch, served in index order, retried when lost."""

from __future__ import annotations

import asyncio

from qcore.node.reads import ReadBatcher


async def test_batch_shares_a_round_and_waits_for_apply() -> None:
    asked: list[bytes] = []
    rb = ReadBatcher(asked.append, retry_ticks=10)
    loop = asyncio.get_running_loop()
    a, b = loop.create_future(), loop.create_future()
    rb.issue([a, b], now_tick=0)
    assert len(asked) == 1  # one round for both reads
    rb.on_read_state(asked[0], index=7)
    rb.serve(applied=6)
    assert not a.done() and not b.done()  # not before the read index is applied
    rb.serve(applied=7)
    assert a.done() and b.done()


async def test_an_unanswered_round_is_asked_again_and_either_answer_serves() -> None:
    asked: list[bytes] = []
    rb = ReadBatcher(asked.append, retry_ticks=10)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    rb.issue([fut], now_tick=5)
    rb.retry_stale(now_tick=14)
    assert len(asked) == 1
    rb.retry_stale(now_tick=15)
    assert len(asked) == 2 and asked[0] != asked[1]
    # The first round's answer arrives late, after the retry: it was computed
    # after the read arrived, so it serves it (a round trip longer than the
    # retry interval must not retry forever).
    rb.on_read_state(asked[0], index=3)
    rb.serve(applied=3)
    assert fut.result() == 3
    rb.on_read_state(asked[1], index=4)  # the other answer finds nothing left to serve
    rb.serve(applied=4)
    assert fut.result() == 3
    # Rounds whose reads were all served are forgotten at the next retry pass.
    other = loop.create_future()
    rb.issue([other], now_tick=20)
    rb.retry_stale(now_tick=30)
    rb.retry_stale(now_tick=31)
    other.cancel()
    rb.retry_stale(now_tick=32)
    assert rb._retried == {}  # noqa: SLF001 - the bookkeeping itself is what is checked


async def test_rounds_are_served_in_index_order_and_pending_lists_the_rest() -> None:
    asked: list[bytes] = []
    rb = ReadBatcher(asked.append, retry_ticks=10)
    loop = asyncio.get_running_loop()
    early, late, waiting = loop.create_future(), loop.create_future(), loop.create_future()
    for f in (late, early, waiting):
        rb.issue([f], now_tick=0)
    rb.on_read_state(asked[0], index=20)
    rb.on_read_state(asked[1], index=10)
    rb.serve(applied=15)
    assert early.done() and not late.done()
    assert set(rb.pending()) == {late, waiting}


async def test_an_answer_to_another_boots_round_serves_nothing() -> None:
    """Rounds carry the boot's prefix: a late answer to a round of an
    earlier boot of the node (same round number) must not serve a new read."""
    old_asked: list[bytes] = []
    old = ReadBatcher(old_asked.append, retry_ticks=10, prefix=b"1:aaaa")
    loop = asyncio.get_running_loop()
    old.issue([loop.create_future()], now_tick=0)
    asked: list[bytes] = []
    rb = ReadBatcher(asked.append, retry_ticks=10, prefix=b"1:bbbb")
    fut = loop.create_future()
    rb.issue([fut], now_tick=0)
    rb.on_read_state(old_asked[0], index=3)  # the old boot's round 1
    rb.serve(applied=100)
    assert not fut.done()
    rb.on_read_state(asked[0], index=5)
    rb.serve(applied=5)
    assert fut.result() == 5
