"""Failover time: ``kill -9`` of the leader -> the next acknowledged write.

``python -m qcore.chaos --failover 20`` forms a cluster of real nodes, keeps
a steady write load on it from clients of the client library
(`qcore.client.Client`, each started on a different node, as an
application's clients would be), and then, again and again: waits a
little, finds the leader, kills it with ``kill -9``, waits for writes to
flow again, restarts the dead node and waits until it has caught up.

Per kill it records, from the moment the signal is sent:

* **next write** — the first acknowledgement of a write the application
  *issued after* the kill (an acknowledgement of a write committed before
  the kill, whose reply was still travelling, proves nothing);
* **all clients** — until every client has had such a write acknowledged
  (a client whose connection went down with the leader included).

The figures are end to end: the dead leader's connections closing, the
early election they trigger (docs/raft.md), the new leader's first commit,
and the clients noticing and retrying. Peer links are direct, as in a
deployment (no fault proxies); ``--tls`` puts TLS and a peer secret on them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qcore.chaos.cluster import Cluster
from qcore.client import Client
from qcore.client.errors import QcoreError
from qcore.local_tls import make_local_tls

logger = logging.getLogger(__name__)

__all__ = ["FailoverConfig", "FailoverReport", "measure_failover"]


@dataclass
class FailoverConfig:
    kills: int = 20
    nodes: int = 3
    clients: int = 4
    seed: int = 1
    settle: tuple[float, float] = (1.0, 2.0)  # seconds of steady writes before each kill
    give_up: float = 15.0  # seconds to wait for writes to resume after a kill
    base_dir: Path | None = None
    keep: bool = False
    tls: bool = False
    node_args: list[str] = field(default_factory=list)


@dataclass
class Kill:
    leader: int
    next_write: float | None  # seconds from the kill; None: no write within give_up
    all_clients: float | None


@dataclass
class FailoverReport:
    config: FailoverConfig
    kills: list[Kill] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    run_dir: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(k.next_write is not None for k in self.kills)

    def render(self) -> str:
        c = self.config
        lines = [f"failover: {len(self.kills)} leader kills, {c.nodes} nodes, {c.clients} clients, seed {c.seed}"
                 + (", TLS" if c.tls else "")]
        for what in ("next_write", "all_clients"):
            got = [getattr(k, what) for k in self.kills]
            done = sorted(t for t in got if t is not None)
            if not done:
                lines.append(f"  {what.replace('_', ' ')}: no measurement")
                continue
            missing = len(got) - len(done)
            lines.append(
                f"  kill -9 -> {what.replace('_', ' ')}: median {statistics.median(done) * 1000:.0f} ms, "
                f"worst {done[-1] * 1000:.0f} ms, best {done[0] * 1000:.0f} ms"
                + (f", {missing} never within {c.give_up:g} s" if missing else "")
            )
        lines.append("  per kill (ms): " + " ".join(
            f"{k.next_write * 1000:.0f}" if k.next_write is not None else "-" for k in self.kills))
        if self.errors:
            top = sorted(self.errors.items(), key=lambda kv: -kv[1])[:6]
            lines.append("  client errors seen: " + "; ".join(f"{k} x{v}" for k, v in top))
        for p in self.problems:
            lines.append(f"  PROBLEM: {p}")
        if self.run_dir:
            lines.append(f"  run directory (node logs): {self.run_dir}")
        return "\n".join(lines)


class _Writers:
    """Clients writing in a loop; every acknowledgement is stamped with when
    its write was issued and when it was acknowledged."""

    def __init__(self, addresses: list[str], register: Any, clients: int, tls_ca: str | None) -> None:
        self._addresses = addresses
        self._register = register
        self._count = clients
        self._tls_ca = tls_ca
        self.acks: list[tuple[int, float, float]] = []  # (client, issued, acknowledged)
        self.errors: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = False

    def start(self) -> None:
        for i in range(self._count):
            # Each client starts on a different node: some lose their connection with the leader.
            order = self._addresses[i % len(self._addresses):] + self._addresses[: i % len(self._addresses)]
            self._tasks.append(asyncio.create_task(self._run(i, order)))

    async def _run(self, i: int, addresses: list[str]) -> None:
        async with Client(addresses, tls_ca=self._tls_ca, request_timeout=10.0) as c:
            while not self._stop:
                issued = time.monotonic()
                try:
                    await c.write(self._register, "Value", 1, adjust="Add")
                except QcoreError as e:
                    self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                    continue
                self.acks.append((i, issued, time.monotonic()))

    def recovered(self, since: float) -> tuple[float | None, float | None]:
        """Seconds from `since` to the first ack of a write issued after it, and
        to every client having had one (None: not yet)."""
        first: float | None = None
        per_client: dict[int, float] = {}
        for client, issued, acked in self.acks:
            if issued <= since:
                continue
            if first is None or acked < first:
                first = acked
            if client not in per_client or acked < per_client[client]:
                per_client[client] = acked
        every = max(per_client.values()) if len(per_client) == self._count else None
        return (None if first is None else first - since), (None if every is None else every - since)

    async def stop(self) -> None:
        self._stop = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _caught_up(cluster: Cluster, timeout: float = 30.0) -> bool:
    """Every node has applied as far as the others (the restarted one caught up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        applied = set()
        for n in sorted(cluster.voters):
            try:
                applied.add(int((await cluster.metrics(n)).get("last_applied", {}).get("index", 0) or 0))
            except Exception:  # noqa: BLE001 - not answering yet
                applied.add(-1)
        # Writes keep flowing: "caught up" is within a few entries of each other.
        if -1 not in applied and max(applied) - min(applied) <= 50:
            return True
        await asyncio.sleep(0.2)
    return False


async def measure_failover(cfg: FailoverConfig) -> FailoverReport:
    report = FailoverReport(cfg)
    rng = random.Random(f"failover-{cfg.seed}")
    tmp = Path(cfg.base_dir) if cfg.base_dir else Path(tempfile.mkdtemp(prefix="qcore-failover-"))
    tls = make_local_tls(tmp / "tls") if cfg.tls else None
    cluster = Cluster(tmp, cfg.nodes, 0, registers=8, proxies=False,
                      extra_args=[*(tls.node_args() if tls else []), *cfg.node_args],
                      client_tls=tls.client() if tls else None)
    writers: _Writers | None = None
    try:
        await cluster.start()
        await cluster.form()
        addresses = [cluster.nodes[n].addr for n in sorted(cluster.nodes)]
        tls_ca = str(tls.ca) if tls else None
        async with Client(addresses, tls_ca=tls_ca) as admin:
            register = (await admin.find("Register", limit=1))[0]
        writers = _Writers(addresses, register, cfg.clients, tls_ca)
        writers.start()
        for k in range(cfg.kills):
            await asyncio.sleep(rng.uniform(*cfg.settle))
            leader = await cluster.wait_leader(timeout=30.0)
            t0 = time.monotonic()
            await cluster.kill(leader)
            deadline = t0 + cfg.give_up
            nxt = every = None
            while time.monotonic() < deadline:
                nxt, every = writers.recovered(t0)
                if every is not None:
                    break
                await asyncio.sleep(0.01)
            report.kills.append(Kill(leader, nxt, every))
            logger.info("kill %d of %d: leader %d; next write after %s s, every client after %s s",
                        k + 1, cfg.kills, leader, _s(nxt), _s(every))
            await cluster.restart(leader)
            if not await _caught_up(cluster):
                report.problems.append(f"after kill {k + 1}, node {leader} did not catch up within 30 s")
                break
    except Exception as e:  # noqa: BLE001 - reported; the cluster is stopped below
        report.problems.append(f"{type(e).__name__}: {e}")
    finally:
        if writers is not None:
            await writers.stop()
            report.errors = dict(writers.errors)
        crashes = cluster.crashes()
        report.problems += crashes
        await cluster.stop()
        if report.ok and not cfg.keep and not cfg.base_dir:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            report.run_dir = str(tmp)
    return report


def _s(t: float | None) -> str:
    return "-" if t is None else f"{t:.3f}"
