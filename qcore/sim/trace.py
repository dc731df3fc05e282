"""A ring buffer of readable simulator events, printed when a run fails."""

from __future__ import annotations

from collections import deque
from typing import TextIO

from qcore.protocol.raft_codec import BatchRefused, ForwardBatch, PeerMessage
from qcore.raft.types import Message, MessageType


def freeze(msg: PeerMessage) -> tuple | str:
    """The fields worth printing, taken now: the receiver may change the
    message object later (e.g. a follower forwarding a READ_INDEX)."""
    if type(msg) is ForwardBatch:
        return f"{msg.frm}->{msg.to} FORWARD t{msg.term} batch={msg.batch} ({len(msg.data)} bytes)"
    if type(msg) is BatchRefused:
        return f"{msg.frm}->{msg.to} REFUSED t{msg.term} batch={msg.batch}"
    assert type(msg) is Message
    snap = msg.snapshot
    ents = msg.entries
    return (
        msg.frm, msg.to, msg.type, msg.term, msg.log_term, msg.index, msg.commit,
        (ents[0].index, ents[-1].index) if ents else None,
        (snap.meta.index, snap.meta.term) if snap is not None and not snap.is_empty() else None,
        msg.reject, msg.reject_hint, msg.context,
    )


def describe_message(msg: PeerMessage | tuple | str) -> str:
    """One line per message, in etcd-raft's `describe` spirit."""
    if isinstance(msg, str):
        return msg
    if not isinstance(msg, tuple):
        return describe_message(freeze(msg))
    frm, to, mtype, term, log_term, index, commit, ents, snap, reject, hint, ctx = msg
    parts = [f"{frm}->{to} {MessageType(mtype).name} t{term}"]
    if log_term or index:
        parts.append(f"lt{log_term}/i{index}")
    if commit:
        parts.append(f"c{commit}")
    if ents:
        parts.append(f"ents[{ents[0]}..{ents[1]}]")
    if snap:
        parts.append(f"snap@{snap[0]}/t{snap[1]}")
    if reject:
        parts.append(f"REJECT hint={hint}")
    if ctx:
        parts.append(f"ctx={ctx[:16]!r}")
    return " ".join(parts)


class Trace:
    """Events are stored unformatted (formatting every message of a run would
    cost more than the run) and only rendered when printed."""

    def __init__(self, keep: int = 50, echo: TextIO | None = None) -> None:
        self.events: deque[tuple[int, int, str, tuple | str | None]] = deque(maxlen=keep)
        self.echo = echo
        self.count = 0

    def add(self, now: int, text: str, msg: PeerMessage | None = None) -> None:
        self.count += 1
        event = (self.count, now, text, freeze(msg) if msg is not None else None)
        self.events.append(event)
        if self.echo is not None:
            print(_render(event), file=self.echo)

    def dump(self) -> str:
        return "\n".join(_render(e) for e in self.events)


def _render(event: tuple[int, int, str, tuple | str | None]) -> str:
    count, now, text, msg = event
    line = f"#{count:<7} t={now:<6} {text}"
    if msg is not None:
        line += " " + describe_message(msg)
    return line
