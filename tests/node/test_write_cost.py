"""qcore.node.write_cost: a batch's Add/Subtract writes are reckoned by what
they make every node copy, each seeing the lengths the earlier ones leave.
(A real node refusing one: tests/node/test_hostile_clients.py.)"""

from __future__ import annotations

from qcore.node.write_cost import WriteCost
from qcore.store.commands import AdjustBehavior, LoadConfig, Read, UpdateEntity, Write
from qcore.store.schema import EntitySchema
from qcore.store.types import EntityId, EntityList, Int, String
from tests.notify.fakes import SCHEMAS, Harness, _fs

ADD, SUBTRACT = AdjustBehavior.Add, AdjustBehavior.Subtract


def _setup() -> tuple[Harness, EntityId]:
    h = Harness()
    u = h.create("User", "u")
    h.write(u, "Email", String("x" * 1000))
    return h, u


def test_adds_to_a_long_value_count_its_length_each_time_as_it_grows() -> None:
    h, u = _setup()
    cost = WriteCost(lambda: h.store, limit=10_000)
    adds = [Write(u, "Email", String("y" * 10), adjust_behavior=ADD) for _ in range(9)]
    assert cost.refusal(UpdateEntity(adds)) is None  # 1010 + 1020 + ... + 1090 = 9,450
    why = cost.refusal(UpdateEntity(adds + [Write(u, "Email", String("y" * 10), adjust_behavior=ADD)]))
    assert why is not None and "copy 10550 bytes" in why and "limit of 10000" in why
    # The same appends to a short value (a Set first) are cheap.
    short = [Write(u, "Email", String(""))] + adds * 3
    assert cost.refusal(UpdateEntity(short)) is None  # 10 + 20 + ... + 270 = 3,780
    # Reads and Int arithmetic copy nothing.
    cheap = [Read(u, "Email")] * 100 + [Write(u, "Logins", Int(1), adjust_behavior=ADD)] * 1000
    assert cost.refusal(UpdateEntity(cheap)) is None


def test_entity_lists_count_elements_and_a_broken_path_counts_from_empty() -> None:
    h = Harness()
    resp, _ = h.apply(LoadConfig(schemas=list(SCHEMAS) + [
        EntitySchema("Group", "Object", {"Members": _fs("Members", EntityList(()), 3)})]))
    assert resp.error is None, resp
    g = h.create("Group", "g")
    members = tuple(h.create("User", f"m{i}") for i in range(50))
    h.write(g, "Members", EntityList(members))
    cost = WriteCost(lambda: h.store, limit=200)
    one = EntityList((members[0],))
    assert cost.refusal(UpdateEntity([Write(g, "Members", one, adjust_behavior=SUBTRACT)] * 3)) is None
    assert cost.refusal(UpdateEntity([Write(g, "Members", one, adjust_behavior=SUBTRACT)] * 4)) is not None
    # A path that does not resolve (yet) counts from empty: 1 + 2 + ... + 19 = 190, then 210.
    missing = EntityId("User", 999)
    assert cost.refusal(UpdateEntity([Write(missing, "Email", String("z"), adjust_behavior=ADD)] * 19)) is None
    assert cost.refusal(UpdateEntity([Write(missing, "Email", String("z"), adjust_behavior=ADD)] * 20)) is not None
