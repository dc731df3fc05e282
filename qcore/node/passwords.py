"""Password hashes (argon2id, argon2-cffi's RFC 9106 low-memory profile), made and
checked off the event loop.

One hash costs ~0.1 s of CPU and 64 MiB on purpose, so it runs on a small
thread pool of its own: the loop, and Raft with it, never waits for one. At
most ``workers`` run at once and ``queue`` more wait; beyond that a request
is refused as overloaded at once, so a burst of logins can slow logins but
not starve the node of memory or CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import argon2

from qcore.node.errors import RequestFailed
from qcore.protocol.errors import Kind

log = logging.getLogger(__name__)

__all__ = ["Passwords", "hash_with_salt"]

T = TypeVar("T")
_HASHER = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)


def hash_with_salt(password: str, salt: bytes) -> str:
    """A hash with a given salt: the same bytes on every member that forms a cluster
    from the same --admin-password-file (the salt is unique to that cluster)."""
    return _HASHER.hash(password, salt=salt)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _HASHER.verify(encoded, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        log.error("a stored password hash is not an argon2 hash; that user cannot log in")
        return False


class Passwords:
    def __init__(self, workers: int = 2, queue: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qcore-passwords")
        self._limit = workers + queue
        self._busy = 0
        self._decoy: str | None = None  # checked against for unknown users, so they take as long

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._busy >= self._limit:
            raise RequestFailed("too many password checks in progress; try again shortly", Kind.OVERLOADED)
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._busy -= 1

    async def hash(self, password: str) -> str:
        """A new salted hash of `password`."""
        return await self._run(_HASHER.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """Does `password` match `encoded`? None (no such user) costs the same and is False."""
        if encoded is None:
            if self._decoy is None:
                self._decoy = await self._run(_HASHER.hash, os.urandom(16).hex())
            await self._run(_verify, self._decoy, password)
            return False
        return await self._run(_verify, encoded, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
