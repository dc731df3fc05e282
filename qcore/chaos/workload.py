"""Concurrent clients doing reads, Set writes and Add writes, recorded as a history.

Keys are the ``Value`` field of pre-created ``Register`` entities. Following
Jepsen's *independent keys*, each key receives at most ``ops_per_key``
operations and is then retired for a fresh one: the linearizability search is
exponential in the number of concurrent and unknown operations, so many short
per-key histories are checkable where one long history is not. A few keys are
active at once so that clients contend.

Each worker is one logical process bound to one node, doing one operation at
a time (the Jepsen process model). Set values are unique per run; Add deltas
are small positive ints.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
import time
from dataclasses import dataclass, field

from qcore.chaos.linearizability import History, Kind
from qcore.chaos.raw_client import RawClient, Reply, read_request, read_value, write_request

logger = logging.getLogger(__name__)

__all__ = ["KeyRotation", "Workload", "WorkloadStats"]


class KeyRotation:
    """Hands out keys so that each gets at most ``ops_per_key`` operations."""

    def __init__(self, keys: list[int], active: int, ops_per_key: int, rng: random.Random) -> None:
        self._fresh = list(keys)
        self._rng = rng
        self.ops_per_key = ops_per_key
        self.active: list[int] = [self._fresh.pop(0) for _ in range(min(active, len(self._fresh)))]
        self.count: dict[int, int] = {k: 0 for k in self.active}
        self.used: list[int] = list(self.active)

    def pick(self) -> int:
        key = self._rng.choice(self.active)
        self.count[key] += 1
        if self.count[key] >= self.ops_per_key and self._fresh:
            nxt = self._fresh.pop(0)
            self.active[self.active.index(key)] = nxt
            self.count[nxt] = 0
            self.used.append(nxt)
        return key


@dataclass
class WorkloadStats:
    ok: int = 0
    fail: int = 0
    unknown: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def note(self, reply: Reply) -> None:
        setattr(self, reply.outcome, getattr(self, reply.outcome) + 1)
        if reply.error:
            short = reply.error.split(":")[0][:60]
            self.errors[short] = self.errors.get(short, 0) + 1


class Workload:
    """Runs ``workers`` client processes against the given node addresses."""

    def __init__(self, addrs: dict[int, str], keys: list[int], rng: random.Random, *, workers: int,
                 active_keys: int = 3, ops_per_key: int = 150, timeout: float = 5.0,
                 tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None) -> None:
        self.addrs = addrs
        self.tls = tls
        self.login = login
        self.rng = rng
        self.workers = workers
        self.timeout = timeout
        self.rotation = KeyRotation(keys, active_keys, ops_per_key, rng)
        self.history = History()
        self.stats = WorkloadStats()
        self.write_completions: list[float] = []  # completion times of ok writes, for recovery
        self._values = itertools.count(1)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[RawClient] = []

    def start(self) -> None:
        nodes = sorted(self.addrs)
        for p in range(self.workers):
            node = nodes[p % len(nodes)]
            client = RawClient(self.addrs[node], name=f"p{p}", tls=self.tls, login=self.login)
            self._clients.append(client)
            self._tasks.append(asyncio.create_task(self._worker(p, client, random.Random(self.rng.random()))))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in self._clients:
            await c.close()

    async def _worker(self, p: int, client: RawClient, rng: random.Random) -> None:
        while not self._stop.is_set():
            key = self.rotation.pick()
            r = rng.random()
            kind: Kind = "read" if r < 0.5 else ("set" if r < 0.75 else "add")
            arg = None if kind == "read" else (next(self._values) if kind == "set" else rng.randint(1, 5))
            reply = await self.run_op(p, client, key, kind, arg)
            if reply.outcome != "ok":
                # A failed node or no leader: back off a little instead of spinning.
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.05 + rng.random() * 0.1)
                except asyncio.TimeoutError:
                    pass
            if reply.outcome == "unknown":
                await client.close()  # a fresh connection, as a crashed Jepsen process would

    async def run_op(self, p: int | str, client: RawClient, key: int, kind: Kind, arg: int | None,
                     timeout: float | None = None) -> Reply:
        """One operation, recorded in the history."""
        op_id = self.history.invoke(p, str(key), kind, arg, time.monotonic())
        if kind == "read":
            reply = await client.perform(read_request(key), timeout or self.timeout, writes=False)
        else:
            assert arg is not None
            reply = await client.perform(write_request(key, arg, "Set" if kind == "set" else "Add"),
                                         timeout or self.timeout, writes=True)
        result = None
        if reply.outcome == "ok" and kind == "read":
            try:
                result = read_value(reply.body)
            except (KeyError, IndexError, TypeError, ValueError) as e:
                reply = Reply("fail", error=f"malformed read reply: {e!r}")
                logger.error("p%s: %s", p, reply.error)
        now = time.monotonic()
        self.history.complete(op_id, now, reply.outcome, result, note=reply.error)
        self.stats.note(reply)
        if reply.outcome == "ok" and kind != "read":
            self.write_completions.append(now)
        return reply
