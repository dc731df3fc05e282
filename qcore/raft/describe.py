"""Stable, compact text for Raft messages, entries and Readys.

For traces (the simulator, debug logs) and golden interaction tests: the
output of a given input never changes between runs or Python versions, so a
diff of two transcripts shows a change in behaviour and nothing else.
Modelled on etcd-raft's DescribeMessage / DescribeReady.

    1->2 APP t3 lt2/i5 c5 [t3/i6 t3/i7]
    2->1 APP_RESP t3 i7
    2->1 APP_RESP t3 i5 REJECT hint=i4/t2
"""

from __future__ import annotations

from collections.abc import Iterable

from .types import ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType

__all__ = ["describe_message", "describe_entry", "describe_entries", "describe_conf_state", "describe_ready"]

MT = MessageType


def describe_entry(e: Entry) -> str:
    s = f"t{e.term}/i{e.index}"
    if e.type == EntryType.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        if not cc.changes:
            return s + " LEAVE-JOINT"
        names = {0: "v", 1: "l", 2: "r"}
        return s + " CONF " + " ".join(f"{names[int(c.type)]}{c.node_id}" for c in cc.changes)
    if e.data:
        if e.data.isascii() and len(e.data) <= 24:
            return s + " " + e.data.decode("ascii")
        return s + f" <{len(e.data)}B>"
    return s


def describe_entries(entries: Iterable[Entry]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in entries) + "]"


def describe_message(m: Message) -> str:
    parts = [f"{m.frm}->{m.to} {m.type.name} t{m.term}"]
    t = m.type
    if t == MT.APP:
        parts.append(f"lt{m.log_term}/i{m.index} c{m.commit}")
        if m.entries:
            parts.append(describe_entries(m.entries))
    elif t == MT.APP_RESP:
        parts.append(f"i{m.index}")
        if m.reject:
            parts.append(f"REJECT hint=i{m.reject_hint}/t{m.log_term}")
    elif t in (MT.VOTE, MT.PRE_VOTE):
        parts.append(f"lt{m.log_term}/i{m.index}")
    elif t in (MT.VOTE_RESP, MT.PRE_VOTE_RESP):
        if m.reject:
            parts.append("REJECT")
    elif t == MT.HEARTBEAT:
        parts.append(f"c{m.commit}")
    elif t == MT.SNAP and m.snapshot is not None:
        meta = m.snapshot.meta
        parts.append(f"snap=t{meta.term}/i{meta.index} {describe_conf_state(meta.conf_state)}")
    elif t in (MT.READ_INDEX_RESP,):
        parts.append(f"i{m.index}")
    if m.context and t in (MT.READ_INDEX, MT.READ_INDEX_RESP, MT.VOTE, MT.PRE_VOTE, MT.HEARTBEAT, MT.HEARTBEAT_RESP):
        parts.append(f"ctx={m.context.decode('ascii', 'replace')}")
    return " ".join(parts)


def describe_conf_state(cs: ConfState) -> str:
    s = "v" + ",".join(map(str, cs.voters))
    if cs.voters_outgoing:
        s += "&" + ",".join(map(str, cs.voters_outgoing))
    if cs.learners:
        s += " l" + ",".join(map(str, cs.learners))
    if cs.learners_next:
        s += " ln" + ",".join(map(str, cs.learners_next))
    if cs.auto_leave:
        s += " autoleave"
    return s


def describe_hard_state(hs: HardState) -> str:
    return f"term={hs.term} vote={hs.vote} commit={hs.commit}"


def describe_ready(rd: object) -> str:
    """Multi-line description of a `Ready` (typed loosely to avoid an import cycle)."""
    lines: list[str] = []
    ss = getattr(rd, "soft_state", None)
    if ss is not None:
        lines.append(f"SoftState: leader={ss.leader_id} role={ss.role}")
    hs = getattr(rd, "hard_state", None)
    if hs is not None:
        lines.append("HardState: " + describe_hard_state(hs))
    ents = getattr(rd, "entries", [])
    if ents:
        lines.append("Entries: " + describe_entries(ents))
    snap = getattr(rd, "snapshot", None)
    if snap is not None:
        lines.append(f"Snapshot: t{snap.meta.term}/i{snap.meta.index} {describe_conf_state(snap.meta.conf_state)}")
    committed = getattr(rd, "committed_entries", [])
    if committed:
        lines.append("Committed: " + describe_entries(committed))
    msgs = getattr(rd, "messages", [])
    if msgs:
        lines.append("Messages:")
        lines.extend("  " + describe_message(m) for m in msgs)
    rs = getattr(rd, "read_states", [])
    if rs:
        lines.append("ReadStates: " + ", ".join(f"{r.request_ctx.decode('ascii', 'replace')}@{r.index}" for r in rs))
    if getattr(rd, "must_sync", False):
        lines.append("(must sync)")
    return "\n".join(lines)
