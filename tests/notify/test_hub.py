"""NotificationHub against a real Store: matching, triggering, context,
unregister, limits, slow consumers, resume from an index, compaction.

"Nothing was delivered" is checked with a sentinel: one connection's frames
go out in the order they were queued, so once a later notification has
arrived, an earlier one that was queued would have arrived first.
"""

from __future__ import annotations

from qcore.node.entries import encode_batch, new_batch
from qcore.node.notify import OVERFLOW_CLOSE_CODE, NotificationHub
from qcore.node.state_machine import StateMachine
from qcore.protocol import messages as m
from qcore.store import (
    CreateEntity,
    DeleteEntity,
    EntityId,
    EntityReference,
    EntitySchema,
    FieldSchema,
    Int,
    PushCondition,
    SetSchema,
    Store,
    String,
    UpdateEntity,
    Write,
)

from tests.notify.fakes import SCHEMAS, Harness, eid_json, on_entity, on_type


def enc_str(s: str) -> dict:
    return {"String": s}


async def test_entity_registration_pushes_each_write_in_log_order() -> None:
    h = Harness()
    folder = h.create("Folder", "f")
    u = h.create("User", "alice", folder)
    c = h.connect()
    tok = await h.token(c, on_entity(u, "Email"))
    writer = EntityId("User", 99)
    i1 = h.write(u, "Email", String("a@x"), writer=writer)
    i2 = h.write(u, "Email", String("b@x"))
    frames = await c.ws.wait_frames(2)
    assert [f["Notification"]["token"] for f in frames] == [tok, tok]
    n1, n2 = c.ws.notifications()
    assert n1 == {
        "entity_id": eid_json(u), "field_type": "Email", "current_value": enc_str("a@x"),
        "previous_value": enc_str(""), "write_time": {"secs_since_epoch": 1_700_000_000, "nanos_since_epoch": 0},
        "writer_id": eid_json(writer), "context": {}, "log_index": i1,
    }
    assert (n2["previous_value"], n2["current_value"], n2["log_index"], n2["writer_id"]) == (
        enc_str("a@x"), enc_str("b@x"), i2, None)


async def test_other_fields_and_entities_are_not_delivered() -> None:
    h = Harness()
    u, v = h.create("User", "u"), h.create("User", "v")
    c = h.connect()
    await h.token(c, on_entity(u, "Email"))
    h.write(v, "Email", String("other entity"))
    h.write(u, "Logins", Int(3))
    last = h.write(u, "Email", String("sentinel"))
    await c.ws.wait_frames(1)
    assert [n["log_index"] for n in c.ws.notifications()] == [last]


async def test_type_registration_matches_derived_types_and_new_entities() -> None:
    h = Harness()
    c = h.connect()
    t_user = await h.token(c, on_type("User", "Email"))
    t_obj = await h.token(c, on_type("Object", "Name"))
    # Entities created after the registrations are matched too.
    u, a, f = h.create("User", "u"), h.create("Admin", "a"), h.create("Folder", "f")
    h.write(u, "Email", String("u@x"))
    h.write(a, "Email", String("a@x"))  # Admin inherits User
    h.write(f, "Name", String("f2"))    # Folder inherits Object
    h.write(a, "Name", String("a2"))    # Admin -> User -> Object
    h.write(a, "Level", Int(2))         # nobody watches Level
    await c.ws.wait_frames(4)
    got = [(f["Notification"]["token"], f["Notification"]["notification"]["entity_id"]["typ"],
            f["Notification"]["notification"]["field_type"]) for f in c.ws.frames]
    assert got == [(t_user, "User", "Email"), (t_user, "Admin", "Email"), (t_obj, "Folder", "Name"),
                   (t_obj, "Admin", "Name")]


async def test_type_registration_on_a_derived_type_does_not_match_its_parent() -> None:
    h = Harness()
    u, a = h.create("User", "u"), h.create("Admin", "a")
    c = h.connect()
    await h.token(c, on_type("Admin", "Email"))
    h.write(u, "Email", String("user is not an admin"))
    last = h.write(a, "Email", String("a@x"))
    await c.ws.wait_frames(1)
    assert [n["log_index"] for n in c.ws.notifications()] == [last]


async def test_trigger_on_change_skips_writes_of_the_same_value() -> None:
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    every = await h.token(c, on_entity(u, "Email", on_change=False))
    changed = await h.token(c, on_entity(u, "Email", on_change=True))
    i1 = h.write(u, "Email", String("x"))
    i2 = h.write(u, "Email", String("x"))  # a write (Always) that does not change the value
    h.write(u, "Email", String("x"), push=PushCondition.Changes)  # skipped by the store: not a write
    i4 = h.write(u, "Email", String("y"))
    await c.ws.wait_frames(5)
    assert [n["log_index"] for n in c.ws.notifications(every)] == [i1, i2, i4]
    assert [n["log_index"] for n in c.ws.notifications(changed)] == [i1, i4]


async def test_context_is_read_after_the_change_and_a_broken_path_is_null() -> None:
    h = Harness()
    folder = h.create("Folder", "users")
    u = h.create("User", "alice", folder)
    c = h.connect()
    ctx = ["Name", "Parent->Name", "Parent->Parent->Name", "NoSuchField", "Children->0->Name"]
    await h.token(c, on_entity(u, "Email", context=ctx))
    h.write(u, "Email", String("a@x"))
    await c.ws.wait_frames(1)
    (n,) = c.ws.notifications()
    assert n["context"] == {"Name": enc_str("alice"), "Parent->Name": enc_str("users"),
                            "Parent->Parent->Name": None, "NoSuchField": None, "Children->0->Name": None}


async def test_context_reflects_the_whole_entry() -> None:
    """Context is read once the entry is applied: a later write in the same batch is visible."""
    h = Harness()
    u = h.create("User", "old")
    c = h.connect()
    await h.token(c, on_entity(u, "Email", context=["Name"]))
    h.apply(UpdateEntity([Write(u, "Email", String("e")), Write(u, "Name", String("new"))]))
    await c.ws.wait_frames(1)
    assert c.ws.notifications()[0]["context"] == {"Name": enc_str("new")}


async def test_context_is_read_as_the_command_left_it_not_as_later_commands_of_its_entry_did() -> None:
    """Group commit puts independent requests in one entry: the first request's
    notification does not see the second's write, nor its deletion of the entity."""
    h = Harness()
    folder = h.create("Folder", "users")
    u = h.create("User", "alice", folder)
    sm = StateMachine(store=h.store, on_changes=h.hub.publish)  # as the node applies entries
    c = h.connect()
    await h.token(c, on_entity(u, "Email", context=["Name", "Parent->Name"]))
    await h.token(c, on_entity(folder, "Children", context=["Name"]))

    def write_json(field: str, value: str) -> dict:
        return {"Write": {"entity_id": eid_json(u), "field_type": field, "value": enc_str(value),
                          "push_condition": "Always", "adjust_behavior": "Set", "write_time": None, "writer_id": None}}

    entry = new_batch([["1:a", 1, {"UpdateEntity": {"request": [write_json("Email", "a@x")]}}],
                       ["2:b", 1, {"UpdateEntity": {"request": [write_json("Name", "alicia")]}}],
                       ["2:b", 2, {"UpdateEntity": {"request": [write_json("Email", "b@x")]}}],
                       ["1:a", 2, {"DeleteEntity": {"entity_id": eid_json(u)}}]])
    sm.apply_entry(h.index + 1, encode_batch(entry), "3:c")
    await c.ws.wait_frames(3)
    first, second, deleted = c.ws.notifications()
    assert first["context"] == {"Name": enc_str("alice"), "Parent->Name": enc_str("users")}
    assert second["context"] == {"Name": enc_str("alicia"), "Parent->Name": enc_str("users")}
    assert deleted["field_type"] == "Children" and deleted["current_value"] == {"EntityList": []}
    assert first["log_index"] == second["log_index"] == deleted["log_index"] == h.index + 1


async def test_path_registration_watches_the_field_it_reaches_at_registration() -> None:
    h = Harness()
    f1, f2 = h.create("Folder", "one"), h.create("Folder", "two")
    u = h.create("User", "u", f1)
    c = h.connect()
    await h.token(c, on_entity(u, "Parent->Name"))
    i1 = h.write(f1, "Name", String("uno"))
    h.write(u, "Parent", EntityReference(f2))  # moving u does not move the registration
    h.write(f2, "Name", String("dos"))
    i4 = h.write(f1, "Name", String("eins"))
    await c.ws.wait_frames(2)
    ns = c.ws.notifications()
    assert [(n["entity_id"], n["field_type"], n["log_index"]) for n in ns] == [
        (eid_json(f1), "Name", i1), (eid_json(f1), "Name", i4)]


async def test_registration_errors_are_clear() -> None:
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    assert "config" in (await h.register(c, {"Nope": {}}))["Err"]
    assert "does not exist" in (await h.register(c, on_entity(EntityId("User", 999), "Email")))["Err"]
    assert "Bogus" in (await h.register(c, on_entity(u, "Bogus")))["Err"]
    assert "broke at" in (await h.register(c, on_entity(u, "Parent->Name")))["Err"]  # null Parent
    assert "unknown entity type" in (await h.register(c, on_type("Martian", "Name")))["Err"]
    assert "no field" in (await h.register(c, on_type("Folder", "Email")))["Err"]
    assert "path" in (await h.register(c, on_type("User", "Parent->Name")))["Err"]
    assert h.hub.stats()["registrations"] == 0


async def test_unregister_stops_pushes_and_tokens_belong_to_their_connection() -> None:
    h = Harness()
    u = h.create("User", "u")
    c, other = h.connect(), h.connect()
    tok = await h.token(c, on_entity(u, "Email"))
    keep = await h.token(c, on_entity(u, "Logins"))
    assert "Err" in await h.unregister(other, tok)
    assert await h.unregister(c, tok) == {"Ok": None}
    assert "Err" in await h.unregister(c, tok)
    h.write(u, "Email", String("not delivered"))
    last = h.write(u, "Logins", Int(1))
    await c.ws.wait_frames(1)
    assert [(f["Notification"]["token"], f["Notification"]["notification"]["log_index"]) for f in c.ws.frames] == [
        (keep, last)]


async def test_unregister_drops_what_was_queued_for_the_token() -> None:
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    tok = await h.token(c, on_entity(u, "Email"))
    sentinel = await h.token(c, on_entity(u, "Logins"))
    c.ws.stall()
    h.write(u, "Email", String("queued"))
    h.write(u, "Email", String("queued too"))
    await h.unregister(c, tok)
    last = h.write(u, "Logins", Int(1))
    c.ws.resume()
    frames = await c.ws.wait_frames(1)
    # At most the frame the sender was already writing when unregister came.
    assert frames[-1]["Notification"]["token"] == sentinel
    assert frames[-1]["Notification"]["notification"]["log_index"] == last
    assert len(frames) <= 2


async def test_registrations_per_connection_are_limited() -> None:
    h = Harness(max_per_conn=2)
    u = h.create("User", "u")
    c, other = h.connect(), h.connect()
    t1 = await h.token(c, on_entity(u, "Email"))
    await h.token(c, on_entity(u, "Name"))
    assert "limit 2" in (await h.register(c, on_entity(u, "Logins")))["Err"]
    await h.token(other, on_entity(u, "Logins"))  # the limit is per connection
    await h.unregister(c, t1)
    await h.token(c, on_entity(u, "Logins"))


async def test_detach_removes_every_registration() -> None:
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    await h.token(c, on_entity(u, "Email"))
    await h.token(c, on_type("User", "Email"))
    assert h.hub.stats()["registrations"] == 2
    h.hub.detach(c)
    assert h.hub.stats()["registrations"] == 0
    h.write(u, "Email", String("nobody listens"))
    assert c.ws.frames == []


async def test_slow_consumer_catches_up_then_is_cut_off_when_it_falls_out_of_the_window() -> None:
    h = Harness(retain=8, queue_limit=5)
    u = h.create("User", "u")
    slow, fast = h.connect(), h.connect()
    await h.token(slow, on_entity(u, "Logins"))
    await h.token(fast, on_entity(u, "Logins"))
    slow.ws.stall()
    for i in range(1, 21):
        h.write(u, "Logins", Int(i))  # publish returns although `slow` reads nothing
        await fast.ws.wait_frames(i)
    assert [n["current_value"]["Int"] for n in fast.ws.notifications()] == list(range(1, 21))
    st = h.hub.stats()
    assert st["cut_off"] == 1 and st["registrations"] == 1  # only `fast` is left
    slow.ws.resume()
    await slow.ws.closed.wait()
    assert slow.ws.close_code == OVERFLOW_CLOSE_CODE
    *notes, last = slow.ws.frames
    assert "fell behind" in last["Error"]["error"] and "from_index" in last["Error"]["error"]
    assert [n["Notification"]["notification"]["current_value"]["Int"] for n in notes] == list(range(1, len(notes) + 1))
    assert len(notes) <= 6
    assert "Err" in await h.register(slow, on_entity(u, "Logins"))


async def test_a_burst_larger_than_the_queue_is_caught_up_from_the_window_exactly() -> None:
    """A follower applying a long run of entries at once: nobody reads in between, nothing is lost."""
    h = Harness(retain=1000, queue_limit=5)
    u = h.create("User", "u")
    a, b = h.connect(), h.connect()
    ta = await h.token(a, on_entity(u, "Logins"))
    tb = await h.token(b, on_type("User", "Logins", context=["Name"]))
    await h.token(a, on_entity(u, "Email"))  # a second registration on the same connection
    expected = []
    for i in range(1, 51):
        expected.append(h.write(u, "Logins", Int(i)))
        h.write(u, "Email", String(f"e{i}"))
    assert h.hub.stats()["caught_up"] >= 2 and h.hub.stats()["cut_off"] == 0
    await a.ws.wait_frames(100)
    await b.ws.wait_frames(50)
    for i in range(51, 61):  # live again afterwards
        expected.append(h.write(u, "Logins", Int(i)))
    await a.ws.wait_frames(110)
    await b.ws.wait_frames(60)
    assert [n["log_index"] for n in a.ws.notifications(ta)] == expected
    assert [n["log_index"] for n in b.ws.notifications(tb)] == expected
    assert [n["current_value"]["String"] for n in a.ws.notifications() if n["field_type"] == "Email"] == [
        f"e{i}" for i in range(1, 51)]
    assert all(n["context"] == {"Name": {"String": "u"}} for n in b.ws.notifications(tb))
    assert h.hub.stats()["catching_up"] == 0


async def test_a_queue_full_in_bytes_catches_up_from_the_window_and_holds_at_most_about_its_limit() -> None:
    """Large values: the queue is bounded in bytes too, not only in frames."""
    limit = 64 << 10
    h = Harness(retain=1000, queue_limit=10_000, queue_bytes=limit)
    u = h.create("User", "u")
    c = h.connect()
    t = await h.token(c, on_entity(u, "Email"))
    c.ws.stall()
    expected, peak = [], 0
    for i in range(40):
        expected.append(h.write(u, "Email", String(f"{i}:" + "x" * 10_000)))
        box = h.hub._outboxes[c]
        peak = max(peak, box.backlog_bytes)
    # Without the byte bound all 40 (~400 KB) would wait in the queue.
    assert h.hub.stats()["caught_up"] >= 1 and h.hub.stats()["cut_off"] == 0
    assert limit <= peak < limit + 11_000
    c.ws.resume()
    await c.ws.wait_frames(40)
    assert [n["log_index"] for n in c.ws.notifications(t)] == expected
    assert [n["current_value"]["String"].split(":")[0] for n in c.ws.notifications(t)] == [str(i) for i in range(40)]
    assert h.hub._outboxes[c].backlog_bytes == 0


async def test_without_a_window_a_full_queue_cuts_the_connection_off() -> None:
    h = Harness(retain=0, queue_limit=3)
    u = h.create("User", "u")
    c = h.connect()
    await h.token(c, on_entity(u, "Logins"))
    for i in range(1, 6):
        h.write(u, "Logins", Int(i))
    await c.ws.closed.wait()
    assert c.ws.close_code == OVERFLOW_CLOSE_CODE
    # What was queued is dropped with the connection: the client resumes from its last log_index.
    (frame,) = c.ws.frames
    assert "no history is retained" in frame["Error"]["error"]


async def test_from_index_replays_exactly_then_continues_live() -> None:
    h = Harness()
    u, v = h.create("User", "u"), h.create("User", "v")
    written: list[tuple[int, str]] = []  # (log_index, value) of every Email write to u, the reference
    for i in range(10):
        h.write(v, "Email", String(f"v{i}"))
        idx = h.write(u, "Email", String(f"u{i}"))
        written.append((idx, f"u{i}"))
        # An entry with two changes to the watched field.
        h.apply(UpdateEntity([Write(u, "Email", String(f"a{i}")), Write(u, "Email", String(f"b{i}"))]))
        written += [(h.index, f"a{i}"), (h.index, f"b{i}")]
    start = written[7][0]
    c = h.connect()
    await h.token(c, on_entity(u, "Email"), from_index=start)
    for i in range(3):
        idx = h.write(u, "Email", String(f"live{i}"))
        written.append((idx, f"live{i}"))
    expected = [(i, s) for i, s in written if i >= start]
    await c.ws.wait_frames(len(expected))
    got = [(n["log_index"], n["current_value"]["String"]) for n in c.ws.notifications()]
    assert got == expected


async def test_from_index_in_the_future_drops_older_live_changes() -> None:
    """A lagging node applies entries older than from_index after the registration: not sent (the
    client already has them from another node)."""
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    start = h.index + 3
    await h.token(c, on_entity(u, "Email"), from_index=start)
    idx = [h.write(u, "Email", String(f"e{i}")) for i in range(5)]
    await c.ws.wait_frames(3)
    assert [n["log_index"] for n in c.ws.notifications()] == [i for i in idx if i >= start] == idx[2:]


async def test_from_index_older_than_the_window_is_compacted() -> None:
    h = Harness(retain=4)
    u = h.create("User", "u")
    idx = [h.write(u, "Email", String(f"e{i}")) for i in range(10)]
    c = h.connect()
    assert "compacted" in (await h.register(c, on_entity(u, "Email"), from_index=idx[5]))["Err"]
    tok = await h.token(c, on_entity(u, "Email"), from_index=idx[6])
    await c.ws.wait_frames(4)
    assert [n["log_index"] for n in c.ws.notifications(tok)] == idx[6:]


async def test_window_is_counted_in_changes_not_entries() -> None:
    """An entry partly evicted from the window is no longer resumable."""
    h = Harness(retain=3)
    u = h.create("User", "u")
    h.apply(UpdateEntity([Write(u, "Email", String(f"x{i}")) for i in range(3)]))
    first = h.index
    h.write(u, "Email", String("y"))  # evicts one change of `first`
    c = h.connect()
    assert "compacted" in (await h.register(c, on_entity(u, "Email"), from_index=first))["Err"]
    assert "Ok" in await h.register(c, on_entity(u, "Email"), from_index=first + 1)


async def test_snapshot_restore_compacts_history_and_cuts_live_streams() -> None:
    h = Harness()
    u = h.create("User", "u")
    before = h.write(u, "Email", String("before"))
    live, idle = h.connect(), h.connect()
    await h.token(live, on_entity(u, "Email"))
    # The node installs a snapshot taken at a later index (it skipped entries).
    h.store = Store.restore(h.store.snapshot())
    h.index += 10
    h.hub.on_restore(h.index)
    await live.ws.closed.wait()
    assert "snapshot" in live.ws.frames[-1]["Error"]["error"]
    assert idle.ws.close_code is None  # no registrations: left alone
    assert "compacted" in (await h.register(idle, on_entity(u, "Email"), from_index=before))["Err"]
    tok = await h.token(idle, on_entity(u, "Email"), from_index=h.index + 1)
    after = h.write(u, "Email", String("after"))
    await idle.ws.wait_frames(1)
    assert [n["log_index"] for n in idle.ws.notifications(tok)] == [after]


async def test_deleting_an_entity_ends_its_notifications_and_the_parent_sees_it() -> None:
    h = Harness()
    folder = h.create("Folder", "f")
    u = h.create("User", "u", folder)
    c = h.connect()
    await h.token(c, on_entity(u, "Email"))
    kids = await h.token(c, on_entity(folder, "Children"))
    h.apply(DeleteEntity(u))
    deleted_at = h.index
    await c.ws.wait_frames(1)
    (n,) = c.ws.notifications()
    assert c.ws.frames[0]["Notification"]["token"] == kids
    assert n["log_index"] == deleted_at
    assert n["previous_value"] == {"EntityList": [eid_json(u)]} and n["current_value"] == {"EntityList": []}


async def test_nothing_is_encoded_when_nobody_listens() -> None:
    h = Harness()
    u = h.create("User", "u")
    c = h.connect()
    await h.token(c, on_entity(u, "Logins"))
    await h.unregister(c, (await h.register(c, on_type("User", "Email")))["Ok"])
    assert h.hub.stats()["registrations"] == 1
    h.write(u, "Email", String("x"))
    h.write(u, "Logins", Int(1))
    await c.ws.wait_frames(1)
    assert len(c.ws.frames) == 1
    assert h.hub.stats()["retained"] >= 2  # still retained for resumption


async def test_registration_waits_for_the_barrier_and_fails_on_a_closed_connection() -> None:
    """With the node's read barrier, a lagging node first applies what the client already saw."""
    h = Harness()
    pending = [CreateEntity("User", None, "late")]

    async def barrier() -> None:
        while pending:
            h.apply(pending.pop())

    hub = NotificationHub(100, 10, 10, lambda: h.store, barrier=barrier)
    h.hub = hub
    c = h.connect()
    late = EntityId("User", h.store.next_id)  # the id the pending create will get
    assert "Ok" in await h.register(c, on_entity(late, "Email"))
    hub.detach(c)
    reply = await hub.register(m.RegisterNotification("x", on_entity(late, "Email")), c)
    assert "closed" in reply.response["Err"]


async def test_the_window_is_also_bounded_by_bytes() -> None:
    """Large values rewritten often must not pin `retain` copies of themselves."""
    h = Harness(retain=1000, retain_bytes=60_000)
    u = h.create("User", "u")
    idx = [h.write(u, "Email", String(f"{i:04d}" + "x" * 10_000)) for i in range(20)]
    st = h.hub.stats()
    assert st["retained_bytes"] <= 60_000 and st["retained"] < 10
    c = h.connect()
    assert "compacted" in (await h.register(c, on_entity(u, "Email"), from_index=idx[10]))["Err"]
    first_kept = st["retained_from_index"]
    tok = await h.token(c, on_entity(u, "Email"), from_index=first_kept)
    want = [i for i in idx if i >= first_kept]
    await c.ws.wait_frames(len(want))
    assert [n["log_index"] for n in c.ws.notifications(tok)] == want


async def test_a_replay_matches_types_by_the_inheritance_in_force_when_each_change_was_applied() -> None:
    """A SetSchema that moves a type under another parent, or from under one, changes which
    later changes a type registration matches, not which earlier ones did: a registration
    resumed from before it gets what a live one got (docs/notifications.md)."""
    h = Harness()
    schemas = {s.entity_type: s for s in SCHEMAS}
    h.apply(SetSchema(EntitySchema("Guest", "Object", {"Email": FieldSchema("Email", String(""), 3)})))
    a, g, u = h.create("Admin", "a"), h.create("Guest", "g"), h.create("User", "u")
    live = h.connect()
    await h.token(live, on_type("User", "Email"))
    start = h.write(a, "Email", String("admin, under User"))
    h.write(g, "Email", String("guest, not under User"))
    admin = schemas["Admin"]
    moved, _ = h.apply(SetSchema(EntitySchema("Admin", "Object", {**admin.fields, "Email": FieldSchema("Email", String(""), 3)})))
    joined, _ = h.apply(SetSchema(EntitySchema("Guest", "User", {})))
    assert moved.error is None and joined.error is None, (moved, joined)
    h.write(a, "Email", String("admin, no longer under User"))
    h.write(g, "Email", String("guest, now under User"))
    last = h.write(u, "Email", String("sentinel"))
    await live.ws.wait_until(lambda: any(n["log_index"] == last for n in live.ws.notifications()))
    expected = [(n["log_index"], n["current_value"]["String"]) for n in live.ws.notifications()]
    assert [v for _, v in expected] == ["admin, under User", "guest, now under User", "sentinel"]
    resumed = h.connect()
    await h.token(resumed, on_type("User", "Email"), from_index=start)
    await resumed.ws.wait_until(lambda: any(n["log_index"] == last for n in resumed.ws.notifications()))
    assert [(n["log_index"], n["current_value"]["String"]) for n in resumed.ws.notifications()] == expected
