"""Slowing password guesses (qcore.node.login_throttle) on a clock of our own,
and the hashing pool (qcore.node.passwords)."""

from __future__ import annotations

import asyncio

import pytest

from qcore.node.errors import RequestFailed
from qcore.node.login_throttle import BASE, CAP, FORGET, FRESH, USER_BURST, LoginThrottle, backoff
from qcore.node.passwords import Passwords, hash_with_salt


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n) for n in range(7)] == [0, BASE, 2 * BASE, 4 * BASE, 8 * BASE, 16 * BASE, min(CAP, 32 * BASE)]
    assert backoff(100) == CAP


def test_failures_slow_the_next_attempt_from_that_address_only() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    assert t.wait("alice", "10.0.0.1", 0) == 0
    for _ in range(3):
        t.failed("alice", "10.0.0.1")
    assert t.wait("alice", "10.0.0.1", 0) == backoff(3)
    clock.now += 1.0  # the wait runs from the last failure
    assert t.wait("alice", "10.0.0.1", 0) == backoff(3) - 1.0
    assert t.wait("alice", "10.0.0.2", 0) == 0  # another address
    assert t.wait("bob", "10.0.0.1", 0) == 0  # another user
    assert t.wait("bob", "10.0.0.1", 4) == backoff(4)  # but this connection has failed four times
    t.succeeded("alice", "10.0.0.1")
    assert t.wait("alice", "10.0.0.1", 0) == 0


def test_failures_are_forgotten_after_a_quiet_while() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    for _ in range(6):
        t.failed("alice", "10.0.0.1")
    clock.now += FORGET + 1
    assert t.wait("alice", "10.0.0.1", 0) == 0


def test_a_burst_against_a_user_slows_guessers_but_not_the_user_elsewhere() -> None:
    clock = Clock()
    t = LoginThrottle(clock)
    for i in range(USER_BURST + 1):
        t.failed("admin", f"10.1.0.{i}")
    assert t.wait("admin", "10.1.0.0", 0) == CAP  # an address that guessed
    assert t.wait("admin", "192.168.1.5", 0) == FRESH  # the admin at their desk: a second, not a lock-out
    assert t.wait("alice", "10.1.0.0", 0) == 0  # other users are not under attack
    clock.now += 61
    assert t.wait("admin", "192.168.1.5", 0) == 0


async def test_hashes_verify_and_a_full_pool_refuses_at_once() -> None:
    pw = Passwords(workers=1, queue=0)
    try:
        h = await pw.hash("correct horse")
        assert h.startswith("$argon2id$") and "correct horse" not in h
        assert await pw.verify(h, "correct horse")
        assert not await pw.verify(h, "Tr0ub4dor&3")
        assert not await pw.verify(None, "anything")  # an unknown user: the decoy, same cost
        assert not await pw.verify("not a hash", "x")
        busy = asyncio.ensure_future(pw.hash("one"))
        await asyncio.sleep(0)
        with pytest.raises(RequestFailed) as info:
            await pw.hash("two")
        assert info.value.kind == "overloaded"
        await busy
    finally:
        pw.close()


def test_a_given_salt_gives_the_same_hash_on_every_member() -> None:
    salt = b"0123456789abcdef"
    assert hash_with_salt("pw", salt) == hash_with_salt("pw", salt) != hash_with_salt("pw", b"fedcba9876543210")
