"""Random interleavings of writes, registrations (live and from_index), stalled
readers and small queues, checked against a reference: for every registration,
the notifications received are exactly the matching committed changes from its
start, in log order — or, for a connection cut off for falling behind, a prefix
of them. Seeded; a failure prints the seed.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from qcore.store import EntityId, Int, PushCondition, String, UpdateEntity, Write

from tests.notify.fakes import FakeConn, Harness, on_entity, on_type

TYPES = {"User": ("User", "Object"), "Admin": ("Admin", "User", "Object"), "Folder": ("Folder", "Object")}


@dataclass
class Reg:
    conn: FakeConn
    rid: str  # the registration's request id: its token comes in the response on the connection
    entity: EntityId | None
    typ: str | None
    field: str
    on_change: bool
    start: int  # first log index it must see
    expected: list[tuple[int, Any]] = field(default_factory=list)


def matches(r: Reg, eid: EntityId, fld: str, old: Any, new: Any) -> bool:
    if fld != r.field or (r.on_change and old == new):
        return False
    if r.entity is not None:
        return eid == r.entity
    return r.typ in TYPES[eid.typ]


@pytest.mark.parametrize("seed", range(int(os.environ.get("QCORE_NOTIFY_SEEDS", "12"))))
async def test_random_interleavings_are_exact(seed: int) -> None:
    rnd = random.Random(seed)
    retain = rnd.choice([40, 200, 5000])
    h = Harness(retain=retain, queue_limit=rnd.choice([2, 4, 50]), max_per_conn=50,
                retain_bytes=rnd.choice([128 << 20, 30_000]))
    ents = [h.create("User", "u1"), h.create("User", "u2"), h.create("Admin", "a"), h.create("Folder", "f")]
    fields = {"User": ["Email", "Logins", "Name"], "Admin": ["Email", "Logins", "Name"], "Folder": ["Name"]}
    conns = [h.connect() for _ in range(3)]
    regs: list[Reg] = []
    log: list[tuple[int, EntityId, str, Any, Any]] = []  # every change, the reference history

    for _ in range(400):
        op = rnd.random()
        if op < 0.55:
            writes = []
            for _ in range(rnd.randint(1, 3)):
                e = rnd.choice(ents)
                f = rnd.choice(fields[e.typ])
                v = Int(rnd.randint(0, 2)) if f == "Logins" else String(rnd.choice("xyz"))
                writes.append(Write(e, f, v, rnd.choice([PushCondition.Always, PushCondition.Changes])))
            _, changes = h.apply(UpdateEntity(writes))
            for ch in changes:
                log.append((h.index, ch.entity_id, ch.field_type, ch.old_value, ch.new_value))
                for r in regs:
                    if h.index >= r.start and matches(r, ch.entity_id, ch.field_type, ch.old_value, ch.new_value):
                        r.expected.append((h.index, ch.new_value))
        elif op < 0.65:
            c = rnd.choice(conns)
            e = rnd.choice(ents)
            f = rnd.choice(fields[e.typ])
            on_change = rnd.random() < 0.5
            typed = rnd.random() < 0.4
            typ = rnd.choice(["User", "Admin", "Object"]) if typed else None
            if typed and typ == "Object":
                f = "Name"
            cfg = on_type(typ, f, on_change) if typed else on_entity(e, f, on_change)
            from_index = None
            if rnd.random() < 0.6 and h.index > 1:
                from_index = rnd.randint(max(1, h.index - 60), h.index + 2)
            # On a stalled connection the response waits behind the frames queued before it.
            rid, refusal = await h.register_nowait(c, cfg, from_index)
            if refusal is not None:
                assert "compacted" in refusal["Err"] or "being closed" in refusal["Err"], refusal
                continue
            start = from_index if from_index is not None else h.index + 1
            r = Reg(c, rid, None if typed else e, typ, f, on_change, start)
            r.expected = [(i, new) for i, eid, fld, old, new in log
                          if i >= start and matches(r, eid, fld, old, new)]
            regs.append(r)
        elif op < 0.75:
            c = rnd.choice(conns)
            c.ws.stall() if rnd.random() < 0.5 else c.ws.resume()
        else:
            for _ in range(rnd.randint(1, 5)):
                await asyncio.sleep(0)  # let senders interleave with publishing (not a synchronisation)

    for c in conns:
        c.ws.resume()
    for c in conns:
        # Either everything arrives, or the connection was cut off for falling behind.
        n = sum(len(r.expected) for r in regs if r.conn is c)
        rids = [r.rid for r in regs if r.conn is c]

        def all_sent(ws: Any = c.ws, n: int = n, rids: list[str] = rids) -> bool:
            return len(ws.frames) >= n and all(rid in ws.replies for rid in rids)

        done, pending = await asyncio.wait(
            [asyncio.ensure_future(c.ws.wait_until(all_sent, 10)), asyncio.ensure_future(c.ws.closed.wait())],
            timeout=10, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        assert done, f"seed {seed}: neither all {n} notifications nor a close"
    for r in regs:
        sent = r.conn.ws.sent
        reply = r.conn.ws.replies.get(r.rid)
        if reply is None:  # cut off before the response went out: nothing of it may have been sent
            assert r.conn.ws.closed.is_set(), f"seed {seed}: no response to {r.rid}"
            continue
        token = reply["RegisterNotificationResponse"]["response"]["Ok"]
        first = next(i for i, f in enumerate(sent) if f is reply)
        assert not any(f.get("Notification", {}).get("token") == token for f in sent[:first]), (
            f"seed {seed}: a notification of token {token} came before its registration's response")
        got = [(n["log_index"], n["current_value"]) for n in r.conn.ws.notifications(token)]
        want = [(i, {v.tag: v.v}) for i, v in r.expected]
        if r.conn.ws.closed.is_set():
            assert got == want[: len(got)], f"seed {seed}: token {token} got a non-prefix"
        else:
            assert got == want, f"seed {seed}: token {token}"
