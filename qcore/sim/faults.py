"""Fault injection for the safety phase: crashes and network partitions.

Rates come from the run's options (so some seeds have none of a kind).
Partitions are of five shapes: one node isolated, a majority/minority
split, a one-way cut out of or into one node, and random one-way link cuts.
Each lasts a random time and then heals; some close the connections they
cut (a reset), most leave them silently open, as a real partition does.
Now and then a link between two live nodes closes and reopens at once (a
flap): each end is told its link went down, nothing else happens. Crashed nodes come back after a
random downtime with whatever their disk kept. Rarely, every node crashes
at once (a power cut: SPEC 5 says the whole cluster may be restarted
without losing an acknowledged write).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qcore.sim.cluster import Cluster


class Faults:
    def __init__(self, cluster: "Cluster", rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.opts = cluster.opts
        self.partition_until: int | None = None
        self.crashes = 0
        self.partitions = 0

    def step(self) -> None:
        c = self.cluster
        now = c.now
        if self.partition_until is not None and now >= self.partition_until:
            c.network.heal()
            self.partition_until = None
            c.trace.add(now, "network heals")
        elif self.partition_until is None and self.rng.random() < self.opts.partition_rate:
            self._partition()
        if self.opts.link_flap_rate and self.rng.random() < self.opts.link_flap_rate:
            live = [n.id for n in c.running()]
            if len(live) >= 2:
                a, b = self.rng.sample(live, 2)
                c.trace.add(now, f"link n{a}-n{b} flaps")
                c.network.close_link(a, b, now)
        if self.rng.random() < self.opts.crash_all_rate:
            downtime = self.rng.randint(1, 2 * self.opts.restart_ticks)
            c.trace.add(now, "POWER CUT: every node crashes")
            for node in c.running():
                self.crashes += 1
                c.crash(node, downtime + self.rng.randint(0, self.opts.raft_tick))
        if self.rng.random() < self.opts.crash_rate:
            running = c.running()
            if running:
                node = self.rng.choice(running)
                self.crashes += 1
                c.crash(node, self.rng.randint(1, 2 * self.opts.restart_ticks))

    def _partition(self) -> None:
        c = self.cluster
        net = c.network
        ids = sorted(n.id for n in c.nodes.values() if not n.retired)
        if len(ids) < 2:
            return
        rng = self.rng
        shape = rng.choice(("isolate", "split", "one_way_out", "one_way_in", "links"))
        if shape == "isolate":
            net.isolate(rng.choice(ids), ids)
        elif shape == "split":
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            net.split(shuffled[:cut], shuffled[cut:])
        elif shape == "one_way_out":
            node = rng.choice(ids)
            net.split([node], [i for i in ids if i != node], one_way=True)
        elif shape == "one_way_in":
            node = rng.choice(ids)
            net.split([i for i in ids if i != node], [node], one_way=True)
        else:
            for a in ids:
                for b in ids:
                    if a != b and rng.random() < 0.3:
                        net.block(a, b)
        self.partitions += 1
        self.partition_until = c.now + rng.randint(1, 2 * self.opts.partition_ticks)
        resets = rng.random() < self.opts.partition_resets
        c.trace.add(c.now, f"partition ({shape}) until t={self.partition_until}{' (resets links)' if resets else ''}: "
                           f"{net.describe_partition()}")
        if resets:
            for a, b in sorted({tuple(sorted(link)) for link in net.blocked}):
                net.close_link(a, b, c.now)
