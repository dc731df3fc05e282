"""The nemesis: a seeded schedule of faults against a running cluster.

One fault at a time: a quiet period, then a fault held for a while, then its
repair (heal, resume, restart), so every fault is followed by a chance to
recover and the next one starts from a repaired cluster. Everything random is
drawn from the run's seeded ``random.Random``; the exact timing still depends
on the machine, so a seed replays the same *schedule*, not the same
interleaving.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from qcore.chaos.cluster import Cluster

logger = logging.getLogger(__name__)

__all__ = ["FAULTS", "FaultEvent", "Nemesis"]

#: Every fault kind, by name (``--faults`` takes a comma-separated subset).
FAULTS = (
    "kill",          # kill -9 a random node, restart it with the same data dir
    "kill_leader",   # kill -9 the leader (recovery time is measured from here)
    "isolate",       # cut one node (the leader half the time) off both ways
    "split",         # majority / minority partition
    "oneway",        # asymmetric: the leader's outbound bytes to everyone are lost
    "pause",         # SIGSTOP a node (the leader half the time) past the election timeout
    "membership",    # add a spare as learner, promote it, remove a voter
    "membership_kill",  # the same, with kill -9 of the leader in the middle of it
    "restart_all",   # kill -9 every node, restart them all
    "delay",         # add latency to every peer link
)


@dataclass
class FaultEvent:
    kind: str
    detail: str
    start: float
    end: float = 0.0
    error: str | None = None


@dataclass
class Nemesis:
    cluster: Cluster
    rng: random.Random
    faults: tuple[str, ...] = FAULTS
    hold: tuple[float, float] = (2.0, 6.0)
    quiet: tuple[float, float] = (2.0, 5.0)
    pause_seconds: tuple[float, float] = (3.0, 6.0)  # > the nodes' election timeout (<= 2 s)
    events: list[FaultEvent] = field(default_factory=list)
    leader_kills: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        usable = [f for f in self.faults
                  if not f.startswith("membership") or len(self.cluster.nodes) > len(self.cluster.voters)]
        if self.cluster.network is None:
            usable = [f for f in usable if f not in ("isolate", "split", "oneway", "delay")]
        self.faults = tuple(usable)
        self._stop = asyncio.Event()

    async def run(self, duration: float) -> None:
        """Inject faults until ``duration`` seconds have passed or :meth:`stop`."""
        end = time.monotonic() + duration
        if not self.faults:
            await self._sleep(duration)
            return
        while time.monotonic() < end and not self._stop.is_set():
            if await self._sleep(self.rng.uniform(*self.quiet)):
                break
            if time.monotonic() >= end:
                break
            kind = self.rng.choice(self.faults)
            ev = FaultEvent(kind, "", time.monotonic())
            self.events.append(ev)
            try:
                await getattr(self, f"_{kind}")(ev)
            except Exception as e:  # noqa: BLE001 - recorded; the run's checks decide
                ev.error = repr(e)
                logger.warning("nemesis %s failed: %r", kind, e)
                await self.heal_all()
            ev.end = time.monotonic()
            logger.info("nemesis: %s %s (%.1fs)%s", kind, ev.detail, ev.end - ev.start,
                        f" error {ev.error}" if ev.error else "")

    def stop(self) -> None:
        self._stop.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True if stopped."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def heal_all(self) -> None:
        """Undo every fault: heal links, resume paused nodes, start dead ones."""
        if self.cluster.network is not None:
            self.cluster.network.heal()
        for n in self.cluster.nodes.values():
            if n.paused:
                n.resume()
        for n in self.cluster.nodes.values():
            if not n.running:
                await self.cluster.restart(n.id)

    def _live_voters(self) -> list[int]:
        return sorted(v for v in self.cluster.voters if self.cluster.nodes[v].running)

    async def _victim(self, prefer_leader: bool) -> int:
        if prefer_leader:
            leader = await self.cluster.find_leader()
            if leader is not None:
                return leader
        return self.rng.choice(self._live_voters())

    # --- faults --------------------------------------------------------------------

    async def _kill(self, ev: FaultEvent) -> None:
        node = self.rng.choice(self._live_voters())
        ev.detail = f"node {node}"
        await self.cluster.kill(node)
        await self._sleep(self.rng.uniform(*self.hold))
        await self.cluster.restart(node)

    async def _kill_leader(self, ev: FaultEvent) -> None:
        leader = await self.cluster.find_leader()
        if leader is None:
            ev.detail = "no leader to kill"
            return
        ev.detail = f"leader {leader}"
        await self.cluster.kill(leader)
        self.leader_kills.append(time.monotonic())
        await self._sleep(self.rng.uniform(*self.hold))
        await self.cluster.restart(leader)

    async def _isolate(self, ev: FaultEvent) -> None:
        node = await self._victim(self.rng.random() < 0.5)
        ev.detail = f"node {node}"
        assert self.cluster.network is not None
        self.cluster.network.isolate(node)
        await self._sleep(self.rng.uniform(*self.hold))
        self.cluster.network.heal()

    async def _split(self, ev: FaultEvent) -> None:
        assert self.cluster.network is not None
        nodes = sorted(self.cluster.nodes)
        self.rng.shuffle(nodes)
        voters = [n for n in nodes if n in self.cluster.voters]
        minority = voters[: (len(voters) - 1) // 2] + [n for n in nodes if n not in self.cluster.voters][:1]
        majority = [n for n in nodes if n not in minority]
        ev.detail = f"{sorted(majority)} | {sorted(minority)}"
        self.cluster.network.partition([majority, minority])
        await self._sleep(self.rng.uniform(*self.hold))
        self.cluster.network.heal()

    async def _oneway(self, ev: FaultEvent) -> None:
        assert self.cluster.network is not None
        src = await self._victim(True)
        ev.detail = f"bytes from {src} to every peer lost"
        for dst in self.cluster.nodes:
            if dst != src:
                self.cluster.network.cut(src, dst)
        await self._sleep(self.rng.uniform(*self.hold))
        self.cluster.network.heal()

    async def _delay(self, ev: FaultEvent) -> None:
        assert self.cluster.network is not None
        seconds = self.rng.uniform(0.02, 0.3)
        ev.detail = f"{seconds * 1000:.0f} ms on every peer link"
        self.cluster.network.set_delay(seconds)
        await self._sleep(self.rng.uniform(*self.hold))
        self.cluster.network.heal()

    async def _pause(self, ev: FaultEvent) -> None:
        node = await self._victim(self.rng.random() < 0.5)
        seconds = self.rng.uniform(*self.pause_seconds)
        ev.detail = f"node {node} for {seconds:.1f}s"
        self.cluster.pause(node)
        await self._sleep(seconds)
        self.cluster.resume(node)

    async def _membership(self, ev: FaultEvent) -> None:
        """Swap a voter for a spare (or, after a change that failed half-way,
        add or remove one to get back to the cluster's size)."""
        await self.cluster.refresh_membership()
        voters = set(self.cluster.voters)
        spares = sorted(n for n in self.cluster.nodes if n not in voters)
        add = self.rng.choice(spares) if spares and len(voters) <= self.cluster.size else None
        remove = None
        if len(voters) >= self.cluster.size:
            remove = await self._victim(self.rng.random() < 0.5)
        ev.detail = f"add {add}, remove {remove}"
        if add is not None:
            if not self.cluster.nodes[add].running:
                await self.cluster.restart(add)
            await self.cluster.add_learner(add)
            await self.cluster.change_membership(sorted(self.cluster.voters | {add}))
        if remove is not None:  # by either request: both take a voter out by joint consensus
            if self.rng.random() < 0.5:
                await self.cluster.remove_node(remove)
            else:
                await self.cluster.change_membership(sorted(self.cluster.voters - {remove}))

    async def _membership_kill(self, ev: FaultEvent) -> None:
        change = asyncio.create_task(self._membership(ev))
        await self._sleep(self.rng.uniform(0.0, 0.5))
        leader = await self.cluster.find_leader()
        if leader is not None:
            await self.cluster.kill(leader)
            ev.detail += f"; killed leader {leader} during the change"
        try:
            await asyncio.wait_for(change, 30.0)
        except Exception as e:  # noqa: BLE001 - a change cut short by the kill may fail
            ev.detail += f"; change failed: {e!r}"[:200]
        await self._sleep(self.rng.uniform(*self.hold))
        if leader is not None:
            await self.cluster.restart(leader)
        await self.cluster.wait_leader(timeout=30.0)
        await self.cluster.refresh_membership()
        ev.detail += f"; voters now {sorted(self.cluster.voters)}"

    async def _restart_all(self, ev: FaultEvent) -> None:
        ev.detail = "kill -9 all, restart all"
        await self.cluster.restart_all()

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ev in self.events:
            out[ev.kind] = out.get(ev.kind, 0) + 1
        return out
