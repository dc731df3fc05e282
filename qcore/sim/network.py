"""A simulated packet network between Raft nodes.

Every ordered pair of nodes is a link. A packet sent on a link is delivered
after a random delay, unless it is lost, and may be delivered twice. Links
are FIFO (like the persistent TCP/WebSocket connections of the real node)
except for packets picked to be "reordered", which get a delay of their own
and may overtake earlier packets. Partitions are sets of blocked directed
links, so one-way (asymmetric) partitions are as easy as full ones; a packet
is dropped if its link is blocked when it is sent or when it arrives.

Connections closing are events of their own (`close_link`): the real
transport tells the node when a link closes under it (a crashed peer's
connections close at once; a partition alone closes nothing). Each end
hears of it after its own random delay.

The network knows nothing about Raft beyond `Message.to` / `Message.frm`;
the cluster decides what to do with a dropped SNAP (report_snapshot) or a
message to a crashed node. Forwarded write batches are never duplicated:
the real transport never resends a frame, so it delivers them at most once
(a duplicate would be a second proposal of the same writes).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Iterable

from qcore.protocol.raft_codec import PeerMessage
from qcore.raft.types import Entry, Message
from qcore.sim.options import NetworkOptions


@dataclass(slots=True)
class Packet:
    deliver_at: int
    seq: int
    src: int  # the node that sent it (a forwarded message keeps its original `frm`)
    msg: PeerMessage
    fingerprint: tuple
    duplicate: bool = False


class MessageMutated(Exception):
    """The sender changed a message after handing it out in a Ready."""


def fingerprint(msg: PeerMessage) -> tuple:
    """The fields of a message, to notice a sender mutating it in flight."""
    if type(msg) is not Message:
        return (msg,)  # frozen
    snap = msg.snapshot
    return (
        msg.type, msg.to, msg.frm, msg.term, msg.log_term, msg.index, msg.commit, msg.reject,
        msg.reject_hint, msg.context, len(msg.entries),
        msg.entries[0].index if msg.entries else 0,
        snap.meta.index if snap is not None else -1,
    )


def copy_message(msg: PeerMessage) -> PeerMessage:
    """A private copy for the receiver: real nodes never share objects, and a
    core that mutated a received message must not corrupt the sender's log
    or a duplicate still in flight."""
    if type(msg) is not Message:
        return msg  # frozen
    return Message(
        type=msg.type, to=msg.to, frm=msg.frm, term=msg.term, log_term=msg.log_term, index=msg.index,
        entries=[Entry(e.term, e.index, e.type, e.data) for e in msg.entries] if msg.entries else [],
        commit=msg.commit, snapshot=msg.snapshot, reject=msg.reject, reject_hint=msg.reject_hint,
        context=msg.context,
    )


class Network:
    def __init__(self, rng: random.Random, options: NetworkOptions, link_rng: random.Random | None = None) -> None:
        """`link_rng` draws the delays of links closing (default: `rng`)."""
        self.rng = rng
        self.options = options
        self.blocked: set[tuple[int, int]] = set()
        self._queue: list[tuple[int, int, Packet]] = []  # (deliver_at, seq, packet)
        self._seq = 0
        # Last delivery time per link: FIFO order for non-reordered packets.
        self._link_tail: dict[tuple[int, int], int] = {}
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0
        # (at, seq, observer, peer): `observer` learns its link to `peer` closed.
        self._closings: list[tuple[int, int, int, int]] = []
        self._link_rng = link_rng if link_rng is not None else rng
        self.links_closed = 0

    # -- sending and delivery ------------------------------------------------

    def send(self, msg: PeerMessage, now: int, src: int | None = None) -> bool:
        """Queue `msg` from node `src` (default msg.frm); False if it was
        dropped at once (loss or partition)."""
        self.sent += 1
        src = msg.frm if src is None else src
        if (src, msg.to) in self.blocked or self.rng.random() < self.options.loss:
            self.dropped += 1
            return False
        fp = fingerprint(msg)
        self._enqueue(src, msg, fp, now, duplicate=False)
        if self.rng.random() < self.options.duplicate and type(msg) is Message:
            self.duplicated += 1
            self._enqueue(src, msg, fp, now, duplicate=True)
        return True

    def _enqueue(self, src: int, msg: PeerMessage, fp: tuple, now: int, duplicate: bool) -> None:
        opts = self.options
        at = now + self.rng.randint(opts.delay_min, opts.delay_max)
        link = (src, msg.to)
        if opts.straggle and self.rng.random() < opts.straggle:
            at += self.rng.randint(1, 20 * opts.delay_max)  # a straggler: overtaken by everything
        elif duplicate or self.rng.random() < opts.reorder:
            pass  # free to overtake or be overtaken
        else:
            at = max(at, self._link_tail.get(link, 0))
            self._link_tail[link] = at
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, Packet(at, self._seq, src, msg, fp, duplicate)))

    def pop_due(self, now: int) -> tuple[int, PeerMessage, bool] | None:
        """The next packet due at or before `now`: (sender, message,
        delivered). `delivered` is False when a partition cut the link
        meanwhile; the caller gets the message anyway to report SNAP
        failures. Raises MessageMutated if the sender changed the message
        after sending it (a runtime may serialise it at any later time)."""
        if not self._queue or self._queue[0][0] > now:
            return None
        packet = heapq.heappop(self._queue)[2]
        msg = packet.msg
        if fingerprint(msg) != packet.fingerprint:
            raise MessageMutated(f"message from {packet.src} changed in flight: {packet.fingerprint} -> {fingerprint(msg)}")
        if (packet.src, msg.to) in self.blocked:
            self.dropped += 1
            return packet.src, msg, False
        return packet.src, copy_message(msg), True

    def in_flight(self) -> int:
        return len(self._queue)

    # -- connections closing --------------------------------------------------

    def close_link(self, a: int, b: int, now: int) -> None:
        """The connection between `a` and `b` closes: each end hears of it
        after a delay of its own (the other end may be dead: then it never
        does), and after the packets the other end sent it first (a TCP
        close follows the data), stragglers and reordered packets aside."""
        for observer, peer in ((a, b), (b, a)):
            self._seq += 1
            at = now + self._link_rng.randint(self.options.delay_min, self.options.delay_max)
            at = max(at, self._link_tail.get((peer, observer), 0))
            heapq.heappush(self._closings, (at, self._seq, observer, peer))
        self.links_closed += 1

    def pop_link_closed(self, now: int) -> tuple[int, int] | None:
        """(observer, peer) of the next link closing due at or before `now`."""
        if not self._closings or self._closings[0][0] > now:
            return None
        _, _, observer, peer = heapq.heappop(self._closings)
        return observer, peer

    # -- partitions ----------------------------------------------------------

    def block(self, frm: int, to: int) -> None:
        self.blocked.add((frm, to))

    def isolate(self, node: int, others: Iterable[int]) -> None:
        for other in others:
            if other != node:
                self.blocked.add((node, other))
                self.blocked.add((other, node))

    def split(self, side_a: Iterable[int], side_b: Iterable[int], one_way: bool = False) -> None:
        """Cut every link from side_a to side_b (and back unless one_way)."""
        side_b = list(side_b)
        for a in side_a:
            for b in side_b:
                if a != b:
                    self.blocked.add((a, b))
                    if not one_way:
                        self.blocked.add((b, a))

    def heal(self) -> None:
        self.blocked.clear()

    def reachable(self, frm: int, to: int) -> bool:
        return (frm, to) not in self.blocked

    def describe_partition(self) -> str:
        if not self.blocked:
            return "none"
        return " ".join(f"{a}->{b}" for a, b in sorted(self.blocked))
