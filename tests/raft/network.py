"""A tiny in-memory cluster for unit tests of the Raft core.

Each node is a RawNode with an in-memory "disk" (hard state, entries,
snapshot) and a state machine that is just the list of applied NORMAL
payloads. `process(id)` runs the runtime loop of rawnode.py (persist, send,
apply, advance) for one node; messages go into a queue that `deliver()`
hands to their recipients, unless the link is cut. Everything is
synchronous and deterministic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from qcore.raft import Config, RawNode, Ready
from qcore.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
)

MT = MessageType


def addr(nid: int) -> str:
    return f"127.0.0.1:{9000 + nid}"


@dataclass
class Disk:
    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None

    def save(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            # A snapshot from the leader replaces the whole log.
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            if self.entries and self.entries[-1].index >= first:
                self.entries = [e for e in self.entries if e.index < first]
            self.entries.extend(rd.entries)
        if rd.hard_state is not None:
            self.hard_state = HardState(rd.hard_state.term, rd.hard_state.vote, rd.hard_state.commit)


@dataclass
class Machine:
    """The state machine: applied NORMAL payloads, in order."""

    data: list[bytes] = field(default_factory=list)
    applied: int = 0
    # Every (index, term) handed out to apply, to check state machine safety.
    log: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    def snapshot_bytes(self) -> bytes:
        return json.dumps({"applied": self.applied, "data": [d.hex() for d in self.data]}).encode()

    @classmethod
    def restore(cls, data: bytes) -> Machine:
        obj = json.loads(data) if data else {"applied": 0, "data": []}
        return cls(data=[bytes.fromhex(h) for h in obj["data"]], applied=obj["applied"])


class Network:
    def __init__(
        self,
        ids: Iterable[int],
        *,
        seed: int = 0,
        bootstrap: bool = True,
        learners: Iterable[int] = (),
        **cfg_kw: object,
    ) -> None:
        self.rng = random.Random(seed)
        self.cfg_kw = cfg_kw
        self.nodes: dict[int, RawNode] = {}
        self.disks: dict[int, Disk] = {}
        self.machines: dict[int, Machine] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()  # (from, to) links that drop
        self.drop_types: set[MessageType] = set()
        self.drop_if: Callable[[Message], bool] | None = None  # drop matching messages
        self.sent: list[Message] = []  # every message ever sent, for assertions
        self.snapshots_sent: list[Message] = []
        self.ids = list(ids)
        for nid in self.ids:
            self.add_node(nid)
        if bootstrap:
            first = self.ids[0]
            self.nodes[first].bootstrap({n: addr(n) for n in self.ids}, [])
            self.process(first)
            # Every node of the initial configuration starts from the same
            # bootstrap entry, as if each had been initialised (etcd style),
            # so any of them can campaign. Tests of a single seed node pass
            # bootstrap=False and bootstrap it themselves.
            for nid in self.ids[1:]:
                self.nodes[nid].bootstrap({n: addr(n) for n in self.ids}, [])
                self.process(nid)
        for nid in learners:
            self.add_node(nid)

    # -- membership of the harness -------------------------------------

    def config(self, nid: int) -> Config:
        return Config(id=nid, **self.cfg_kw)  # type: ignore[arg-type]

    def add_node(self, nid: int) -> RawNode:
        self.disks[nid] = Disk()
        self.machines[nid] = Machine()
        self.read_states[nid] = []
        self.nodes[nid] = RawNode(self.config(nid), random.Random(self.rng.random()))
        return self.nodes[nid]

    def restart(self, nid: int) -> RawNode:
        """Crash and restart `nid`: only what it persisted survives."""
        d = self.disks[nid]
        self.machines[nid] = Machine.restore(d.snapshot.data) if d.snapshot else Machine()
        if d.snapshot:
            self.machines[nid].applied = d.snapshot.meta.index
        self.nodes[nid] = RawNode(
            self.config(nid), random.Random(self.rng.random()), d.hard_state, d.snapshot, list(d.entries)
        )
        self.read_states[nid] = []
        # A runtime processes the first Ready at once: it re-applies the
        # committed entries, and with them the configuration.
        self.process(nid)
        return self.nodes[nid]

    # -- the runtime loop ------------------------------------------------

    def process(self, nid: int) -> bool:
        node = self.nodes[nid]
        did = False
        while node.has_ready():
            did = True
            rd = node.ready()
            self.on_ready(nid, rd)
            self.disks[nid].save(rd)
            for m in rd.messages:
                assert m.frm == nid
                self.sent.append(m)
                if m.type == MT.SNAP:
                    self.snapshots_sent.append(m)
                self.queue.append(m)
            sm = self.machines[nid]
            if rd.snapshot is not None:
                restored = Machine.restore(rd.snapshot.data)
                restored.applied = rd.snapshot.meta.index
                restored.log = sm.log
                self.machines[nid] = sm = restored
            for e in rd.committed_entries:
                assert e.index == sm.applied + 1, f"node {nid} applies {e.index} after {sm.applied}"
                sm.applied = e.index
                sm.log[e.index] = (e.term, e.data)
                if e.type == EntryType.NORMAL and e.data:
                    sm.data.append(e.data)
            self.read_states[nid].extend(rd.read_states)
            node.advance(rd)
        return did

    def on_ready(self, nid: int, rd: Ready) -> None:
        """Hook for subclasses that narrate (see test_interaction.py)."""

    def process_all(self) -> bool:
        did = False
        for nid in list(self.nodes):
            did |= self.process(nid)
        return did

    def deliver(self, pred: Callable[[Message], bool] | None = None) -> int:
        """Deliver the queued messages (those matching `pred`, if given)."""
        msgs, keep = [], []
        for m in self.queue:
            (msgs if pred is None or pred(m) else keep).append(m)
        self.queue = keep
        n = 0
        for m in msgs:
            if (m.frm, m.to) in self.cut or m.type in self.drop_types or m.to not in self.nodes:
                continue
            if self.drop_if is not None and self.drop_if(m):
                continue
            self.nodes[m.to].step(m)
            n += 1
        return n

    def stabilize(self, max_rounds: int = 200) -> None:
        for _ in range(max_rounds):
            did = self.process_all()
            if not self.queue and not did:
                return
            self.deliver()
        raise AssertionError("network did not stabilize")

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].tick()

    def tick_all(self, n: int = 1, stabilize: bool = True) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                node.tick()
            if stabilize:
                self.stabilize()

    # -- faults --------------------------------------------------------------

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def partition(self, *groups: Iterable[int]) -> None:
        sets = [set(g) for g in groups]
        for a in self.nodes:
            for b in self.nodes:
                if a != b and not any(a in s and b in s for s in sets):
                    self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()
        self.drop_types.clear()
        self.drop_if = None

    # -- conveniences ----------------------------------------------------

    def elect(self, nid: int) -> None:
        self.nodes[nid].campaign()
        self.stabilize()
        assert self.nodes[nid].status().role == "Leader", self.nodes[nid].status()

    def leaders(self) -> list[int]:
        return [n for n, node in self.nodes.items() if node.status().role == "Leader"]

    def propose(self, nid: int, data: bytes) -> tuple[int, int]:
        r = self.nodes[nid].propose(data)
        self.stabilize()
        return r

    def change(self, nid: int, *changes: tuple[ConfChangeType, int], **kw: object) -> tuple[int, int]:
        cc = ConfChange(
            changes=tuple(ConfChangeSingle(t, n) for t, n in changes),
            addresses={n: addr(n) for t, n in changes if t != ConfChangeType.REMOVE_NODE},
            **kw,  # type: ignore[arg-type]
        )
        return self.nodes[nid].propose_conf_change(cc)

    def status(self, nid: int):  # noqa: ANN201 - Status
        return self.nodes[nid].status()


def conf_entry(ids: Iterable[int], term: int = 1, index: int = 1) -> Entry:
    cc = ConfChange(
        changes=tuple(ConfChangeSingle(ConfChangeType.ADD_NODE, n) for n in sorted(ids)),
        addresses={n: addr(n) for n in ids},
    )
    return Entry(term=term, index=index, type=EntryType.CONF_CHANGE, data=cc.encode())


def log_from_terms(ids: Iterable[int], terms: list[int]) -> list[Entry]:
    """Index 1 is the bootstrap conf entry (term 1); index i+2 has terms[i]."""
    ents = [conf_entry(ids)]
    for i, t in enumerate(terms):
        ents.append(Entry(term=t, index=i + 2, data=f"t{t}i{i + 2}".encode()))
    return ents


def network_from_logs(logs: dict[int, tuple[int, list[int]]], seed: int = 0, **cfg_kw: object) -> Network:
    """A cluster whose node `n` starts with hard state term logs[n][0] and
    log_from_terms(logs[n][1]); only the bootstrap entry is committed."""
    ids = sorted(logs)
    net = Network(ids, seed=seed, bootstrap=False, **cfg_kw)
    for nid, (term, terms) in logs.items():
        d = net.disks[nid]
        d.hard_state = HardState(term=term, vote=0, commit=1)
        d.entries = log_from_terms(ids, terms)
        net.restart(nid)
    net.stabilize()
    return net
