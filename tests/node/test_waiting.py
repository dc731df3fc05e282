"""Request futures and their timeouts (qcore.node.waiting, qcore.node.driver.SettledNow)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qcore.node.errors import OutcomeUnknown
from qcore.node.driver import SettledNow
from qcore.node.waiting import Deadlines


async def test_expire_fails_only_what_is_overdue_and_pending() -> None:
    loop = asyncio.get_running_loop()
    dl = Deadlines(timeout_ticks=10, timeout_s=5.0)
    answered, overdue, young = loop.create_future(), loop.create_future(), loop.create_future()
    dl.add(answered, "answered", now=0)
    dl.add(overdue, "the write was not applied", now=1)
    dl.add(young, "young", now=5)
    answered.set_result("ok")
    dl.expire(now=11)
    assert answered.result() == "ok"
    with pytest.raises(OutcomeUnknown, match=r"the write was not applied \(after 5s\)"):
        overdue.result()
    assert not young.done()
    assert len(dl) == 1
    dl.expire(now=15)
    assert isinstance(young.exception(), OutcomeUnknown)
    assert len(dl) == 0


async def test_forget_settled_drops_answered_requests_up_to_the_first_pending() -> None:
    loop = asyncio.get_running_loop()
    dl = Deadlines(timeout_ticks=10, timeout_s=5.0)
    futs = [loop.create_future() for _ in range(4)]
    for f in futs:
        dl.add(f, "w", now=0)
    futs[0].set_result(0)
    futs[1].set_result(1)
    futs[3].set_result(3)  # behind a pending one: kept until that settles
    dl.forget_settled()
    assert len(dl) == 2
    futs[2].set_result(2)
    dl.forget_settled()
    assert len(dl) == 0


async def test_settled_now_calls_back_before_set_result_returns() -> None:
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    fut = SettledNow(loop, lambda f: seen.append(f.result()))
    fut.set_result(42)
    assert seen == [42]  # not a loop iteration later
    failing = SettledNow(loop, lambda f: seen.append(type(f.exception()).__name__))
    failing.set_exception(OutcomeUnknown("x"))
    assert seen == [42, "OutcomeUnknown"]
    raising = SettledNow(loop, lambda f: 1 / 0)
    raising.set_result(None)  # the callback's error is logged, not raised into the apply
    assert raising.done()
