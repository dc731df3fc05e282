"""A ring buffer of readable simulator events, printed when a run fails."""

from __future__ import annotations

from collections import deque
from typing import TextIO

from qcore.raft.types import Message, MessageType


def describe_message(msg: Message) -> str:
    """One line per message, in etcd-raft's `describe` spirit."""
    parts = [f"{msg.frm}->{msg.to} {MessageType(msg.type).name} t{msg.term}"]
    if msg.log_term or msg.index:
        parts.append(f"lt{msg.log_term}/i{msg.index}")
    if msg.commit:
        parts.append(f"c{msg.commit}")
    if msg.entries:
        first, last = msg.entries[0], msg.entries[-1]
        parts.append(f"ents[{first.index}..{last.index}]")
    if msg.snapshot is not None and not msg.snapshot.is_empty():
        parts.append(f"snap@{msg.snapshot.meta.index}/t{msg.snapshot.meta.term}")
    if msg.reject:
        parts.append(f"REJECT hint={msg.reject_hint}")
    if msg.context:
        parts.append(f"ctx={msg.context[:16]!r}")
    return " ".join(parts)


class Trace:
    """Events are stored unformatted (formatting every message of a run would
    cost more than the run) and only rendered when printed."""

    def __init__(self, keep: int = 50, echo: TextIO | None = None) -> None:
        self.events: deque[tuple[int, int, str, Message | None]] = deque(maxlen=keep)
        self.echo = echo
        self.count = 0

    def add(self, now: int, text: str, msg: Message | None = None) -> None:
        self.count += 1
        event = (self.count, now, text, msg)
        self.events.append(event)
        if self.echo is not None:
            print(_render(event), file=self.echo)

    def dump(self) -> str:
        return "\n".join(_render(e) for e in self.events)


def _render(event: tuple[int, int, str, Message | None]) -> str:
    count, now, text, msg = event
    line = f"#{count:<7} t={now:<6} {text}"
    if msg is not None:
        line += " " + describe_message(msg)
    return line
