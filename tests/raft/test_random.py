"""Randomised runs of the test network with partitions, message loss and
restarts, checking Raft's safety properties (paper Figure 3) after every
step. A small in-package cousin of the simulator (qcore.sim), which goes
much further; this one needs nothing but the core and the test network.
Set QCORE_SLOW=1 for more seeds."""

from __future__ import annotations

import os
import random

import pytest

from qcore.raft import ProposalDropped

from .network import Network

SEEDS = range(300) if os.environ.get("QCORE_SLOW") == "1" else range(25)


def check_safety(net: Network, leaders_by_term: dict[int, int]) -> None:
    # Election Safety: at most one leader per term.
    for nid, node in net.nodes.items():
        st = node.status()
        if st.role == "Leader":
            assert leaders_by_term.setdefault(st.term, nid) == nid, f"two leaders in term {st.term}"
    # State Machine Safety: no two nodes apply different entries at one index.
    applied: dict[int, tuple[int, bytes]] = {}
    for m in net.machines.values():
        for idx, ent in m.log.items():
            assert applied.setdefault(idx, ent) == ent, f"different entries applied at {idx}"


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_keep_raft_safe_and_live(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.choice([3, 5])
    net = Network(range(1, n + 1), seed=seed, max_inflight_msgs=rnd.choice([1, 4, 64]), max_size_per_msg=rnd.choice([64, 1 << 20]))
    leaders_by_term: dict[int, int] = {}
    proposed = 0
    for step in range(300):
        r = rnd.random()
        if r < 0.05:
            a = rnd.sample(sorted(net.nodes), rnd.randint(1, n // 2))
            net.partition(a, [x for x in net.nodes if x not in a])
        elif r < 0.10:
            net.heal()
        elif r < 0.13:
            net.restart(rnd.choice(sorted(net.nodes)))
        elif r < 0.16 and net.leaders():
            # Compact a random node at its applied index.
            nid = rnd.choice(sorted(net.nodes))
            st = net.status(nid)
            if st.applied > st.snapshot_index:
                snap = net.nodes[nid].create_snapshot(st.applied, net.machines[nid].snapshot_bytes())
                net.disks[nid].snapshot = snap
                net.disks[nid].entries = [e for e in net.disks[nid].entries if e.index > st.applied]
                net.nodes[nid].compact(st.applied)
        elif r < 0.40:
            for ld in net.leaders():
                try:
                    net.nodes[ld].propose(b"p%d" % proposed)
                    proposed += 1
                except ProposalDropped:
                    pass
        # Deliver a random subset of messages (loss), process, tick.
        net.process_all()
        net.queue = [m for m in net.queue if rnd.random() > 0.1]
        rnd.shuffle(net.queue)
        net.deliver()
        net.process_all()
        for node in net.nodes.values():
            node.tick()
        net.process_all()
        # Snapshots in flight count as delivered (the test transport is reliable for them).
        for m in net.snapshots_sent:
            if m.frm in net.leaders():
                net.nodes[m.frm].report_snapshot(m.to, True)
        net.snapshots_sent.clear()
        check_safety(net, leaders_by_term)
    # Liveness: heal everything; a leader emerges and a new proposal commits everywhere.
    net.heal()
    for _ in range(100):
        net.tick_all(1)
        if len(net.leaders()) == 1:
            break
    [ld] = net.leaders()
    net.propose(ld, b"final")
    net.tick_all(5)
    for nid, m in net.machines.items():
        assert m.data[-1:] == [b"final"], f"node {nid} did not apply the final write"
    check_safety(net, leaders_by_term)
