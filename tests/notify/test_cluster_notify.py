"""Notifications on a 3-node cluster of real processes (SPEC 6, issue 7):
register on a follower and write through the leader; every-write vs
on-change triggering, context and unregister over the wire; then kill -9 the
follower the client is on and resume on the other follower with from_index —
nothing missed, nothing duplicated."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.node.harness import Conn, NodeProc, wait_until, write
from tests.node.test_cluster import form_cluster, leader_of


def on_entity(e: dict, field: str, on_change: bool = False, context: list[str] | None = None) -> dict:
    return {"EntityId": {"entity_id": e, "field_type": field, "trigger_on_change": on_change,
                         "context": context or []}}


def on_type(t: str, field: str, on_change: bool = False, context: list[str] | None = None) -> dict:
    return {"EntityType": {"entity_type": t, "field_type": field, "trigger_on_change": on_change,
                           "context": context or []}}


async def register(c: Conn, config: dict, from_index: int | None = None) -> Any:
    fields: dict[str, Any] = {"config": config}
    if from_index is not None:
        fields["from_index"] = from_index
    reply = await c.call("RegisterNotification", **fields)
    resp = reply["RegisterNotificationResponse"]["response"]
    assert "Ok" in resp, resp
    return resp["Ok"]


async def next_note(c: Conn, timeout: float = 20) -> tuple[Any, dict]:
    frame = await asyncio.wait_for(c.unmatched.get(), timeout)
    assert "Notification" in frame, frame
    return frame["Notification"]["token"], frame["Notification"]["notification"]


async def ok(c: Conn, request: dict) -> dict:
    r = await c.perform(request)
    ((tag, body),) = r.items()
    assert body.get("error") is None, r
    return body


async def test_notifications_on_a_follower_survive_its_kill9(nodes) -> None:  # type: ignore[no-untyped-def]
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    leader = conns[lid - 1]
    f1, f2 = [i for i in range(3) if i != lid - 1]
    user = (await ok(leader, {"CreateEntity": {"entity_type": "User", "parent_id": None, "name": "ann"}}))["response"]
    # The follower applies the create a moment after the leader answered it.
    await wait_until(lambda: _exists(conns[f1], user), what="the follower to apply the create")

    watcher = await Conn.open(ns[f1].addr)
    t_count = await register(watcher, on_entity(user, "LoginCount", context=["Name", "Parent->Name"]))
    t_name = await register(watcher, on_type("Object", "Name", on_change=True))

    # --- every write vs on change; context; type-wide on the base type ---------------
    for v in ("a", "a", "b"):
        await ok(leader, {"UpdateEntity": {"request": [write(user, "Name", {"String": v})]}})
    # An entity created after the type-wide registration, of a type derived from Object.
    dev = (await ok(leader, {"CreateEntity": {"entity_type": "Device", "parent_id": None, "name": "d"}}))["response"]
    await ok(leader, {"UpdateEntity": {"request": [write(dev, "Name", {"String": "d2"})]}})
    await ok(leader, {"UpdateEntity": {"request": [write(user, "LoginCount", {"Int": 1}, adjust="Add")]}})
    got = [await next_note(watcher) for _ in range(4)]
    assert [(t, n["entity_id"]["typ"], n["current_value"]) for t, n in got] == [
        (t_name, "User", {"String": "a"}), (t_name, "User", {"String": "b"}), (t_name, "Device", {"String": "d2"}),
        (t_count, "User", {"Int": 1})]
    assert got[3][1]["context"] == {"Name": {"String": "b"}, "Parent->Name": None}
    assert [n["log_index"] for _, n in got] == sorted({n["log_index"] for _, n in got})

    # --- unregister: nothing more for that token -------------------------------------
    reply = await watcher.call("UnregisterNotification", token=t_name)
    assert reply["UnregisterNotificationResponse"]["response"] == {"Ok": None}
    await ok(leader, {"UpdateEntity": {"request": [write(user, "Name", {"String": "c"}),
                                                   write(user, "LoginCount", {"Int": 1}, adjust="Add")]}})
    token, n = await next_note(watcher)
    assert (token, n["current_value"]) == (t_count, {"Int": 2})

    # --- kill -9 the follower mid-stream, resume on the other one ---------------------
    received: list[dict] = [got[3][1], n]
    stop = asyncio.Event()
    acked = 2

    async def writer() -> None:
        nonlocal acked
        while not stop.is_set():
            await ok(leader, {"UpdateEntity": {"request": [write(user, "LoginCount", {"Int": 1}, adjust="Add")]}})
            acked += 1

    load = asyncio.create_task(writer())
    try:
        while len(received) < 20:
            received.append((await next_note(watcher))[1])
        ns[f1].kill9()
        await wait_until(_after(lambda: acked, acked + 15), what="writes while the client is away")
        last = received[-1]["log_index"]
        # Resume from the last index seen (inclusive) and drop what was already seen of that
        # entry — the exact rule of docs/notifications.md (one change per entry here).
        other = await Conn.open(ns[f2].addr)
        t2 = await register(other, on_entity(user, "LoginCount"), from_index=last)
        skip = sum(1 for r in received if r["log_index"] == last)
        await wait_until(_after(lambda: acked, acked + 10), what="more writes after the resume")
    finally:
        stop.set()
        await load
    final = acked
    while received[-1]["current_value"]["Int"] < final:
        token, n = await next_note(other)
        assert token == t2
        if n["log_index"] == last and skip:
            skip -= 1
            continue
        received.append(n)
    counts = [r["current_value"]["Int"] for r in received]
    assert counts == list(range(1, final + 1)), "a change was missed or duplicated across the failover"
    indexes = [r["log_index"] for r in received]
    assert indexes == sorted(set(indexes))
    assert other.unmatched.empty()
    await watcher.close()
    await other.close()


async def _exists(c: Conn, e: dict) -> bool:
    r = await c.perform({"EntityExists": {"entity_id": e}})
    return bool(r["EntityExists"]["response"])


def _after(get, n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return get() >= n
    return check
