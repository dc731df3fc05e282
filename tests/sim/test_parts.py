"""The simulator's parts on their own: network, disk, log view, options."""

from __future__ import annotations

import random

import pytest

from qcore.raft.types import Entry, HardState, Message, MessageType, Snapshot, SnapshotMeta
from qcore.sim.disk import DiskContractError, SimDisk
from qcore.sim.logview import LogGapError, LogView
from qcore.sim.network import MessageMutated, Network
from qcore.sim.options import NetworkOptions, derive_options, derive_rng
from qcore.sim.register import Register


def msg(frm: int, to: int, n: int) -> Message:
    return Message(MessageType.APP, to=to, frm=frm, index=n, entries=[Entry(1, n, data=b"x")])


def drain(net: Network, until: int) -> list[tuple[int, Message, bool]]:
    out = []
    for now in range(until + 1):
        while (item := net.pop_due(now)) is not None:
            _src, m, delivered = item
            out.append((now, m, delivered))
    return out


# -- network -------------------------------------------------------------------


def test_fifo_link_without_reordering_keeps_order() -> None:
    net = Network(random.Random(1), NetworkOptions(delay_min=1, delay_max=20))
    for n in range(50):
        net.send(msg(1, 2, n), now=n // 5)
    got = [m.index for _, m, ok in drain(net, 100) if ok]
    assert got == list(range(50))


def test_reordering_lets_packets_overtake() -> None:
    net = Network(random.Random(2), NetworkOptions(delay_min=1, delay_max=20, reorder=0.5))
    for n in range(200):
        net.send(msg(1, 2, n), now=0)
    got = [m.index for _, m, ok in drain(net, 100)]
    assert sorted(got) == list(range(200))
    assert got != list(range(200))


def test_stragglers_arrive_long_after_everything_else() -> None:
    net = Network(random.Random(9), NetworkOptions(delay_min=1, delay_max=5, straggle=0.05))
    for n in range(400):
        net.send(msg(1, 2, n), now=0)
    arrivals = drain(net, 200)
    late = [m.index for t, m, _ in arrivals if t > 5]
    assert 5 < len(late) < 50 and len(arrivals) == 400


def test_loss_and_duplication_rates() -> None:
    net = Network(random.Random(3), NetworkOptions(delay_min=1, delay_max=3, loss=0.2, duplicate=0.1))
    for n in range(2000):
        net.send(msg(1, 2, n), now=0)
    got = [m.index for _, m, _ in drain(net, 10)]
    distinct = set(got)
    assert 1400 < len(distinct) < 1800  # about 80% arrive
    assert len(got) - len(distinct) > 100  # some twice


def test_delivered_message_is_a_private_copy() -> None:
    net = Network(random.Random(4), NetworkOptions(delay_min=1, delay_max=1, duplicate=1.0))
    original = msg(1, 2, 7)
    net.send(original, now=0)
    (_, a, _), (_, b, _) = drain(net, 5)
    a.entries[0].data = b"mutated"
    a.entries.clear()
    assert b.entries[0].data == b"x" and original.entries[0].data == b"x"


def test_one_way_partition_blocks_one_direction_only() -> None:
    net = Network(random.Random(5), NetworkOptions(delay_min=1, delay_max=1))
    net.split([1], [2, 3], one_way=True)
    assert not net.send(msg(1, 2, 0), 0)
    assert net.send(msg(2, 1, 0), 0)
    assert net.send(msg(2, 3, 0), 0)
    net.heal()
    assert net.send(msg(1, 2, 0), 0)


def test_partition_while_in_flight_drops_on_arrival() -> None:
    net = Network(random.Random(6), NetworkOptions(delay_min=5, delay_max=5))
    net.send(msg(1, 2, 0), 0)
    net.isolate(2, [1, 2, 3])
    [(_, m, delivered)] = drain(net, 10)
    assert m.to == 2 and not delivered


def test_forwarded_message_travels_on_the_senders_link() -> None:
    net = Network(random.Random(7), NetworkOptions(delay_min=1, delay_max=1))
    net.block(2, 3)
    forwarded = msg(3, 3, 0)  # node 2 forwards node 3's request to node 3
    assert not net.send(forwarded, 0, src=2)
    assert net.send(forwarded, 0, src=1)


def test_message_changed_after_sending_is_detected() -> None:
    net = Network(random.Random(8), NetworkOptions(delay_min=2, delay_max=2))
    m = msg(1, 2, 0)
    net.send(m, 0)
    m.to = 3
    with pytest.raises(MessageMutated):
        drain(net, 5)


# -- disk ----------------------------------------------------------------------


def ents(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=f"e{i}".encode()) for i in range(first, last + 1)]


def test_synced_writes_survive_a_crash_unsynced_do_not() -> None:
    disk = SimDisk(random.Random(1), torn=False)
    disk.save(HardState(1, 1, 0), ents(1, 3), None, sync=True)
    disk.save(HardState(2, 2, 3), ents(4, 5, term=2), None, sync=False)
    assert disk.visible().last_index() == 5
    assert disk.crash() == 2
    img = disk.recover()
    assert img.hard_state == HardState(1, 1, 0)
    assert [e.index for e in img.entries] == [1, 2, 3]


def test_torn_crash_keeps_a_prefix_in_write_order() -> None:
    kept_hs = kept_entries = 0
    for seed in range(50):
        disk = SimDisk(random.Random(seed), torn=True)
        disk.save(HardState(1, 1, 0), ents(1, 2), None, sync=True)
        disk.save(HardState(2, 0, 2), ents(3, 3, term=2), None, sync=False)
        disk.crash()
        img = disk.recover()
        if img.hard_state.term == 2:
            kept_hs += 1
            assert img.last_index() == 3  # entries are written before the hard state
        if img.last_index() == 3:
            kept_entries += 1
    assert 0 < kept_hs < kept_entries < 50


def test_append_replaces_suffix_and_refuses_gaps() -> None:
    disk = SimDisk(random.Random(1), torn=False)
    disk.save(None, ents(1, 5), None, sync=True)
    disk.save(None, ents(3, 3, term=2), None, sync=True)
    assert [(e.index, e.term) for e in disk.recover().entries] == [(1, 1), (2, 1), (3, 2)]
    with pytest.raises(DiskContractError):
        disk.save(None, ents(5, 6), None, sync=True)


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term), Register(applied=index).snapshot_data())


def test_snapshot_keeps_matching_log_suffix_only() -> None:
    disk = SimDisk(random.Random(1), torn=False)
    disk.save(None, ents(1, 6), None, sync=True)
    disk.save(None, [], snap(4, 1), sync=True)
    img = disk.recover()
    assert img.snapshot is not None and [e.index for e in img.entries] == [5, 6]
    disk.save(None, [], snap(5, 3), sync=True)  # term differs at 5: the log is dropped
    assert disk.recover().entries == []
    assert disk.recover().first_index == 6


def test_local_snapshot_is_durable_and_compacts() -> None:
    disk = SimDisk(random.Random(1), torn=False)
    disk.save(HardState(1, 0, 3), ents(1, 4), None, sync=False)
    disk.save_snapshot(snap(3, 1))
    disk.crash()
    img = disk.recover()
    assert img.snapshot is not None and img.snapshot.meta.index == 3
    assert [e.index for e in img.entries] == [4]


# -- log view ------------------------------------------------------------------


def test_log_view_chains_prefixes() -> None:
    a, b = LogView(), LogView()
    a.append(ents(1, 5))
    b.append(ents(1, 5))
    assert a.chain_at(5) == b.chain_at(5)
    b.append(ents(3, 3, term=2))
    assert b.last_index == 3 and a.chain_at(3) != b.chain_at(3)
    assert a.chain_at(2) == b.chain_at(2)
    with pytest.raises(LogGapError):
        a.append(ents(7, 8))


def test_log_view_compact_and_restore() -> None:
    v = LogView()
    v.append(ents(1, 6))
    c4 = v.chain_at(4)
    v.compact(4)
    assert v.base_index == 4 and v.chain_at(4) == c4 and v.last_index == 6
    v.restore(10, 3, b"z" * 12)
    assert v.base_index == 10 and v.last_index == 10 and v.term_at(10) == 3


# -- state machine and options ---------------------------------------------------


def test_register_snapshot_round_trip() -> None:
    r = Register()
    for e in ents(1, 4):
        r.apply(e, [e.data] if e.data else [])
    r2 = Register.restore(r.snapshot_data())
    assert (r2.applied, r2.chain, r2.value) == (4, r.chain, b"e4")


def test_options_are_a_function_of_the_seed() -> None:
    assert derive_options(42) == derive_options(42)
    sizes = {derive_options(s).nodes for s in range(200)}
    assert sizes == {1, 2, 3, 4, 5}
    assert derive_options(7, nodes=3, steps=99).nodes == 3
    assert derive_rng(1, "a").random() != derive_rng(1, "b").random()


def test_the_membership_workload_removes_learners_in_awkward_states() -> None:
    """Learners are removed by one simple change (as RemoveNode does):
    one the leader never replicated anything to (added and removed again at
    once), one behind the leader's log, and one that is down. These seeds
    (any cluster size) happen to cover all three; a workload that stopped
    doing any of it would fail here."""
    from collections import Counter

    from qcore.sim.runner import Simulation
    from qcore.sim.trace import Trace

    seen: Counter[tuple[str, str]] = Counter()
    for seed in (9, 10, 11):
        sim = Simulation(derive_options(seed), Trace(keep=1))
        sim.run()  # raises on a safety or liveness failure
        seen += sim.cluster.workload.learner_removals
    for state in ("empty", "behind", "down"):
        assert seen["simple", state], (state, seen)
