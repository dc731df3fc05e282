"""Log entries' semantics level (qcore.node.entries): an entry is applied by
its level's rules, not by the applying build's, so that old and new nodes in
one cluster (a rolling upgrade) reach the same bytes; an entry of a level
above this build's is not applied, and the node stops on it.

Level 1 (no "v": entries of builds before levels) keeps the old rules; level
2 records a user's entity as the writer of creates and deletes and refuses
UserAdd of an entity that does not exist; level 3 checks a path that follows a
Write in its batch where it leads once that Write has run."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from qcore.node import entries
from qcore.node.entries import (
    ENTRY_LEVEL,
    HELD_BY_LOG,
    Batch,
    LevelUnsupported,
    attributed,
    auth_command,
    decode_batch,
    encode_batch,
    encode_init,
    lowered,
    new_batch,
    proposal_level,
)
from qcore.node.state_machine import StateMachine
from qcore.protocol.values import encode_load_config
from qcore.store import Change, EntityId, LoadConfig
from qcore.store.auth import AuthDisable, RoleAdd, UserAdd, UserDelete
from qcore.store.permissions import Permission
from tests.store.helpers import FOLDER, OBJECT, USER

H = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
ORIGIN = "1:test"
E = EntityId("User", 2)  # bob's entity
FOLDER1 = {"typ": "Folder", "id": 1}


def entry(command: Any, level: int) -> bytes:
    """One command in an entry of `level`, as a build of that level writes it (level 1: no "v")."""
    b = new_batch([[ORIGIN, 1, command]])
    return encode_batch(Batch(b.secs, b.nanos, b.commands, level=level))


def create(parent: dict[str, Any] | None, name: str) -> dict[str, Any]:
    return {"CreateEntity": {"entity_type": "Folder", "parent_id": parent, "name": name}}


class Node:
    """A state machine fed entries one by one, as the driver feeds it, recording its changes."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, Change]] = []
        self.sm = StateMachine(on_changes=lambda index, cs: self.changes.extend((index, c) for c in cs))
        self.index = 0

    def apply(self, data: bytes) -> Any:
        self.index += 1
        return [r for _, r in self.sm.apply_entry(self.index, data, ORIGIN)]

    def cell(self, eid: EntityId, field: str) -> Any:
        return self.sm.store.read_path(eid, field)

    def snapshot(self) -> bytes:
        return self.sm.snapshot_builder()()


def log_for(level: int) -> list[bytes]:
    """Init; bob (linked to User$2, with create and delete on Folder) creates Folder$3 under
    Folder$1 and deletes it; UserAdd of a user linked to an entity that does not exist."""
    init = encode_init(encode_load_config(LoadConfig([OBJECT, FOLDER, USER], [])), (1, 0), {"admin": H}, level=level)
    if level == 1:  # as a build before levels wrote it
        init = orjson.dumps({k: v for k, v in orjson.loads(init).items() if k != "v"})
    folders = Permission("Folder", "*", frozenset({"read", "write", "create", "delete"}))
    return [init] + [entry(c, level) for c in (
        auth_command("admin", RoleAdd("folders", (folders,))),
        attributed("admin", create(None, "f")),
        attributed("admin", {"CreateEntity": {"entity_type": "User", "parent_id": None, "name": "bob"}}),
        auth_command("admin", UserAdd("bob", H, ("folders",), E)),
        attributed("bob", create(FOLDER1, "made by bob")),
        attributed("bob", {"DeleteEntity": {"entity_id": {"typ": "Folder", "id": 3}}}),
        auth_command("admin", UserAdd("ghost", H, (), EntityId("Sensor", 99))),
    )]


def replay(level: int) -> tuple[Node, list[Any]]:
    node = Node()
    return node, [node.apply(data) for data in log_for(level)]


def test_this_build_writes_its_level_and_an_entry_without_one_is_level_1() -> None:
    assert orjson.loads(entry({"GetEntityTypes": {"page_opts": None}}, ENTRY_LEVEL))["v"] == ENTRY_LEVEL == 3
    assert orjson.loads(encode_init({"schemas": [], "tree": []}))["v"] == ENTRY_LEVEL
    assert "v" not in orjson.loads(entry({"GetEntityTypes": {"page_opts": None}}, 1))


def test_level_1_entries_are_applied_by_the_old_rules() -> None:
    node, replies = replay(1)
    created = replies[5][0]["CreateEntity"]
    assert created == {"response": {"typ": "Folder", "id": 3}, "error": None}
    # created by bob, recorded as by no one (as every build before levels did)
    children = [(i, c) for i, c in node.changes if c.field_type == "Children"]
    assert [(i, c.writer_id) for i, c in children] == [(6, None), (7, None)]
    assert node.cell(EntityId("Folder", 1), "Children")[2] is None
    # a user linked to an entity that does not exist: accepted
    assert replies[7] == [{"AuthAdmin": {"response": {"Ok": {"revision": 4}}, "kind": None}}]
    assert node.sm.auth.users["ghost"].entity == EntityId("Sensor", 99)


def test_level_2_entries_record_the_users_entity_and_refuse_a_missing_one() -> None:
    node, replies = replay(2)
    assert replies[5][0]["CreateEntity"]["error"] is None
    children = [(i, c) for i, c in node.changes if c.field_type == "Children"]
    assert [(i, c.writer_id) for i, c in children] == [(6, E), (7, E)]  # the notifications' writer_id
    assert node.cell(EntityId("Folder", 1), "Children")[2] == E  # by the delete, last
    assert replies[7] == [{"AuthAdmin": {"response": {"Err": "entity Sensor$99 does not exist"},
                                         "kind": "not_found"}}]
    assert "ghost" not in node.sm.auth.users


def test_every_field_a_level_2_create_sets_is_by_the_user() -> None:
    node = Node()
    for data in log_for(2)[:6]:  # up to bob's create
        node.apply(data)
    made = EntityId("Folder", 3)
    fields = node.sm.store.entity_fields(made)
    assert fields is not None and set(fields) == {"Name", "Parent", "Children", "Description"}
    assert {f: w for f, (_, _, w) in fields.items()} == dict.fromkeys(fields, E)
    assert node.cell(made, "Name")[0].v == "made by bob"
    assert node.cell(EntityId("Folder", 1), "Children")[2] == E
    # by admin (no entity): no writer, as with users off
    node.apply(entry(attributed("admin", create(FOLDER1, "by admin")), 2))
    assert {w for _, _, w in node.sm.store.entity_fields(EntityId("Folder", 4)).values()} == {None}  # type: ignore[union-attr]
    assert node.cell(EntityId("Folder", 1), "Children")[2] is None


@pytest.mark.parametrize("users", [True, False])
def test_a_move_writes_both_childrens_writer_from_level_2_on(users: bool) -> None:
    """A write of Parent moves an entity: from level 2 on both parents' Children are written
    by the move's writer (bob's entity with users on; the Write's writer_id with users off)."""
    for level, writer in ((1, None), (2, E)):
        node = Node()
        for data in log_for(2)[:6]:  # bob has created Folder$3 under Folder$1
            node.apply(data)
        if not users:
            node.apply(entry(auth_command("admin", AuthDisable()), 2))
        node.apply(entry(attributed("admin", create(None, "elsewhere")), 2))  # Folder$4
        node.changes.clear()
        move = {"Write": {"entity_id": {"typ": "Folder", "id": 3}, "field_type": "Parent",
                          "value": {"EntityReference": {"typ": "Folder", "id": 4}}, "push_condition": "Always",
                          "adjust_behavior": "Set", "write_time": None,
                          "writer_id": None if users else {"typ": "User", "id": 2}}}
        reply = node.apply(entry(attributed("bob", {"UpdateEntity": {"request": [move]}}), level))
        assert reply[0]["UpdateEntity"]["error"] is None, reply
        assert [(c.entity_id.id, c.field_type, c.writer_id) for _, c in node.changes] == [
            (1, "Children", writer), (4, "Children", writer), (3, "Parent", E)]
        assert node.cell(EntityId("Folder", 1), "Children")[2] == writer
        assert node.cell(EntityId("Folder", 4), "Children")[2] == writer


def test_from_level_3_a_path_after_a_write_is_checked_where_the_write_made_it_lead() -> None:
    """bob may use Folders only. His batch moves Folder$3 under User$2 (a Write of Parent), then
    reads and writes through ``Parent->``: before level 3 the path was checked on the state before
    the batch (Parent = Folder$1, a Folder) and so reached User$2's fields; from level 3 it is
    checked where it leads at its turn, and the batch is refused whole."""
    to_user = {"Write": {"entity_id": {"typ": "Folder", "id": 3}, "field_type": "Parent",
                         "value": {"EntityReference": {"typ": "User", "id": 2}}, "push_condition": "Always",
                         "adjust_behavior": "Set", "write_time": None, "writer_id": None}}
    read_name = {"Read": {"entity_id": {"typ": "Folder", "id": 3}, "field_type": "Parent->Name", "value": None,
                          "write_time": None, "writer_id": None}}
    write_name = {"Write": {**to_user["Write"], "field_type": "Parent->Name", "value": {"String": "renamed"}}}
    for level in (2, 3):
        node = Node()
        for data in log_for(level)[:6]:  # bob has created Folder$3 under Folder$1
            node.apply(data)
        reply = node.apply(entry(attributed("bob", {"UpdateEntity": {"request": [to_user, read_name, write_name]}}),
                                 level))[0]["UpdateEntity"]
        if level == 2:  # as a build of level 2 applies it
            assert reply["error"] is None and reply["response"][1]["Read"]["value"] == {"String": "bob"}
            assert node.cell(E, "Name")[0].v == "renamed"
        else:
            assert reply == {"response": [], "error": "permission denied: bob may not read User.Name",
                             "kind": "permission_denied"}
            assert node.cell(E, "Name")[0].v == "bob"
            assert node.cell(EntityId("Folder", 3), "Parent")[0].v == EntityId("Folder", 1)


def test_from_level_2_the_entity_a_user_is_linked_to_cannot_be_deleted_before_the_user() -> None:
    """Deleting a user's entity, or an entity above it, would leave the user linked to nothing
    (every write of theirs naming a deleted writer): refused from level 2 on, as a foreign key
    restricts a delete; level 1 deletes it as before."""
    people, carol = {"typ": "Folder", "id": 1}, {"typ": "User", "id": 2}
    for level in (1, 2):
        node = Node()
        node.apply(log_for(2)[0])
        node.apply(entry(attributed("admin", create(None, "people")), level))
        node.apply(entry(attributed("admin", {"CreateEntity": {
            "entity_type": "User", "parent_id": people, "name": "carol"}}), level))
        node.apply(entry(auth_command("admin", UserAdd("carol", H, (), EntityId("User", 2))), level))
        replies = [node.apply(entry(attributed("admin", {"DeleteEntity": {"entity_id": target}}), level))[0]
                   for target in (people, carol)]
        if level == 1:
            assert replies[0]["DeleteEntity"]["error"] is None  # carol's entity goes with it
            assert replies[1]["DeleteEntity"]["error"] == "entity User$2 does not exist"
            continue
        assert [r["DeleteEntity"]["error"] for r in replies] == [
            f"cannot delete {what}: user carol is linked to it or to an entity under it; delete the user first"
            for what in ("Folder$1", "User$2")]
        assert node.cell(EntityId("User", 2), "Name")[0].v == "carol"
        node.apply(entry(auth_command("admin", UserDelete("carol")), level))
        reply = node.apply(entry(attributed("admin", {"DeleteEntity": {"entity_id": people}}), level))[0]
        assert reply["DeleteEntity"]["error"] is None


def test_the_delete_refusal_names_the_first_user_by_name_under_the_entity_and_only_those() -> None:
    """Users linked under one folder share the walk up the tree; the refusal names the first of
    those under the entity by name (the same on every node), and a user linked elsewhere, or to
    a leaf's sibling, does not stop a delete."""
    node = Node()
    node.apply(log_for(2)[0])

    def made(command: dict[str, Any]) -> dict[str, Any]:
        reply = node.apply(entry(attributed("admin", command), 2))[0]["CreateEntity"]
        assert reply["error"] is None, reply
        return reply["response"]  # type: ignore[no-any-return]

    top, other = made(create(None, "top")), made(create(None, "other"))
    inner = made(create(top, "inner"))
    leaf = made(create(inner, "leaf"))
    for user, parent in (("zoe", inner), ("dan", inner), ("amy", other), ("bob", inner)):
        e = made({"CreateEntity": {"entity_type": "User", "parent_id": parent, "name": user}})
        node.apply(entry(auth_command("admin", UserAdd(user, H, (), EntityId(e["typ"], e["id"]))), 2))

    def delete(target: dict[str, Any]) -> Any:
        return node.apply(entry(attributed("admin", {"DeleteEntity": {"entity_id": target}}), 2))[0][
            "DeleteEntity"]["error"]

    for target in (top, inner):
        assert delete(target) == (f"cannot delete {target['typ']}${target['id']}: user bob is linked to it or "
                                  "to an entity under it; delete the user first")
    assert delete(leaf) is None  # a leaf no user is linked to
    assert delete(other) == (f"cannot delete {other['typ']}${other['id']}: user amy is linked to it or to an "
                             "entity under it; delete the user first")
    node.apply(entry(auth_command("admin", UserDelete("amy")), 2))
    assert delete(other) is None


def test_a_delete_of_an_entity_that_does_not_exist_says_so_whatever_users_are_linked_to() -> None:
    """An entity is its type and its number: deleting Folder$2, User$1 or Nope$2 while carol is
    linked to User$2 under Folder$1 deletes nothing, so the answer is the store's, not carol's link."""
    node = Node()
    node.apply(log_for(2)[0])
    node.apply(entry(attributed("admin", create(None, "people")), 2))
    node.apply(entry(attributed("admin", {"CreateEntity": {
        "entity_type": "User", "parent_id": FOLDER1, "name": "carol"}}), 2))
    node.apply(entry(auth_command("admin", UserAdd("carol", H, (), EntityId("User", 2))), 2))
    for typ, num in (("Folder", 2), ("User", 1), ("Nope", 2)):  # carol's and people's numbers
        target = {"typ": typ, "id": num}
        reply = node.apply(entry(attributed("admin", {"DeleteEntity": {"entity_id": target}}), 2))[0]
        assert reply["DeleteEntity"]["error"] == f"entity {typ}${num} does not exist", reply
    assert node.cell(EntityId("User", 2), "Name")[0].v == "carol"
    # a user a level-1 entry linked to an entity that does not exist: nothing to delete either
    node.apply(entry(auth_command("admin", UserAdd("ghost", H, (), EntityId("Folder", 99))), 1))
    reply = node.apply(entry(attributed("admin", {"DeleteEntity": {"entity_id": {"typ": "Folder", "id": 99}}}), 2))
    assert reply[0]["DeleteEntity"]["error"] == "entity Folder$99 does not exist", reply


@pytest.mark.parametrize("level", [1, 2])
def test_two_nodes_fed_the_same_entries_reach_the_same_bytes(level: int) -> None:
    a, b = Node(), Node()
    for data in log_for(level):
        assert a.apply(data) == b.apply(data)
    assert a.snapshot() == b.snapshot()
    assert [(i, c) for i, c in a.changes] == [(i, c) for i, c in b.changes]


def test_a_mixed_log_is_applied_entry_by_entry_by_each_ones_rules() -> None:
    """Entries written by an old leader then by a new one (a rolling upgrade), replayed."""
    old, new = log_for(1), log_for(2)
    a, b = Node(), Node()
    for data in old[:5] + new[5:]:
        a.apply(data)
        b.apply(data)
    assert a.snapshot() == b.snapshot()
    assert [c.writer_id for _, c in a.changes if c.field_type == "Children"] == [E, E]
    assert "ghost" not in a.sm.auth.users


def test_an_entry_of_a_newer_level_is_not_applied_and_says_so() -> None:
    node = Node()
    for data in log_for(2)[:3]:
        node.apply(data)
    before, applied = node.snapshot(), node.sm.applied_index
    future = orjson.loads(entry(attributed("admin", create(None, "from the future")), 2))
    future["v"] = ENTRY_LEVEL + 1
    with pytest.raises(LevelUnsupported) as raised:
        node.apply(orjson.dumps(future))
    assert str(raised.value) == (f"log entry 4 needs qcore semantics level {ENTRY_LEVEL + 1}; "
                                 f"this node supports up to {ENTRY_LEVEL}: upgrade this node")
    assert node.sm.applied_index == applied == 3 and node.snapshot() == before
    assert not [c for i, c in node.changes if i == 4]
    future["v"] = "2"  # not a level at all: not guessed at either
    with pytest.raises(LevelUnsupported, match="log entry 5 needs qcore semantics level '2'"):
        node.apply(orjson.dumps(future))
    assert node.sm.applied_index == 3 and node.snapshot() == before
    init = orjson.loads(encode_init({"schemas": [], "tree": []}))
    init["v"] = 7  # an Init entry too
    with pytest.raises(LevelUnsupported, match="needs qcore semantics level 7"):
        node.apply(orjson.dumps(init))


def test_a_leader_can_tell_a_batch_it_could_not_apply_from_its_head() -> None:
    sm = StateMachine()
    assert sm.cannot_apply(entry(create(None, "x"), 1)) is None
    assert sm.cannot_apply(entry(create(None, "x"), ENTRY_LEVEL)) is None
    v = ENTRY_LEVEL + 1
    newer = entry(create(None, "x"), v)
    assert newer.startswith(b'{"t":[') and b'"v":%d,' % v in newer
    why = f"it needs qcore semantics level {v}; this node supports up to {ENTRY_LEVEL}: upgrade this node"
    assert sm.cannot_apply(newer) == why
    reordered = orjson.dumps({"c": [], "v": v, "t": [1, 0]})  # another layout: read whole
    assert sm.cannot_apply(reordered) == why
    assert sm.cannot_apply(b"not json") == "it does not decode"
    after = orjson.dumps({"t": [1, 0], "c": [], "v": v})  # no "v" at the head: not taken for level 1
    assert sm.cannot_apply(after) == why
    assert decode_batch(lowered(after, 2)).level == 2


def test_the_proposal_level_is_the_lowest_a_member_that_applies_the_entries_declared() -> None:
    members = (1, 2, 3, 4)  # 4: a learner
    at = {2: 2, 3: 2, 4: 2}
    assert proposal_level(2, 1, 1, members, at.get) == (2, None)  # the leader, every member at 2
    assert proposal_level(2, 1, 1, members, {**at, 3: 1}.get) == (1, 3)  # one at 1
    assert proposal_level(2, 1, 1, members, {2: 2, 3: 2}.get) == (1, 4)  # one never heard from: 1
    assert proposal_level(2, 1, 1, (1,), {}.get) == (2, None)  # alone
    assert proposal_level(2, 1, 1, members, {2: 3, 3: 3, 4: 3}.get) == (2, None)  # never above its own
    assert proposal_level(2, 2, 1, members, {1: 1, 3: 2, 4: 2}.get) == (1, 1)  # a follower: the leader's
    assert proposal_level(2, 2, 1, members, {1: 2, 3: 1}.get) == (2, None)  # ... only the leader's
    assert proposal_level(2, 2, 1, members, {}.get) == (1, 1)  # a leader that declared none: 1
    assert proposal_level(2, 2, 0, members, at.get) is None  # no leader: nothing to propose


def test_the_proposal_level_does_not_fall_below_the_highest_level_applied() -> None:
    """Once an entry of a level is applied, every member applies that level (a downgrade is
    not supported): a member not heard from since a restart does not take the level back."""
    members = (1, 2, 3)
    assert proposal_level(2, 1, 1, members, {2: 2}.get, applied=2) == (2, HELD_BY_LOG)  # 3 never heard from
    assert proposal_level(2, 1, 1, members, {2: 2}.get, applied=1) == (1, 3)
    assert proposal_level(2, 1, 1, members, {2: 2, 3: 2}.get, applied=2) == (2, None)
    assert proposal_level(2, 1, 1, members, {}.get, applied=3) == (2, HELD_BY_LOG)  # never above its own
    assert proposal_level(2, 2, 1, members, {}.get, applied=2) == (2, HELD_BY_LOG)  # a follower too
    assert proposal_level(2, 2, 0, members, {}.get, applied=2) is None


def test_the_highest_level_applied_is_kept_in_the_snapshot() -> None:
    node, _ = replay(2)
    assert node.sm.applied_level == 2
    back = StateMachine()
    back.restore(node.snapshot(), node.index)
    assert back.applied_level == 2 and back.snapshot_builder()() == node.snapshot()
    old, _ = replay(1)  # a log of a build before levels: the snapshot that build makes, level 1
    assert old.sm.applied_level == 1 and b"entry_level" not in old.snapshot()
    back.restore(old.snapshot(), old.index)
    assert back.applied_level == 1
    plain = StateMachine()  # no users: the header carries the level alone
    plain.apply_entry(1, encode_init(encode_load_config(LoadConfig([OBJECT, FOLDER, USER], [])), (1, 0)), ORIGIN)
    assert plain.applied_level == ENTRY_LEVEL
    back = StateMachine()
    back.restore(plain.snapshot_builder()(), 1)
    assert back.applied_level == ENTRY_LEVEL and not back.auth.enabled and back.auth.empty
    newer = node.snapshot().replace(b'"entry_level":2', b'"entry_level":%d' % (ENTRY_LEVEL + 1))
    with pytest.raises(LevelUnsupported, match=f"needs qcore semantics level {ENTRY_LEVEL + 1}"):
        StateMachine().restore(newer, 9)


def test_a_batch_lowered_to_level_1_is_what_a_build_before_levels_writes_and_is_applied_so() -> None:
    bob_creates = attributed("bob", create(FOLDER1, "made by bob"))
    b = new_batch([[ORIGIN, 1, bob_creates]])
    at_2 = encode_batch(Batch(b.secs, b.nanos, b.commands, level=2))
    at_1 = lowered(at_2, 1)
    assert at_1 == encode_batch(Batch(b.secs, b.nanos, b.commands, level=1))
    assert at_1 == orjson.dumps({"t": [b.secs, b.nanos], "c": b.commands})  # a build before levels' bytes
    assert lowered(at_2, 2) is at_2 and lowered(at_1, 2) is at_1 and lowered(at_1, 1) is at_1
    node = Node()
    for data in log_for(2)[:5]:  # bob is linked to User$2
        node.apply(data)
    assert node.apply(at_1)[0]["CreateEntity"]["error"] is None
    assert node.cell(EntityId("Folder", 1), "Children")[2] is None  # level 1: by no one
    assert node.cell(EntityId("Folder", 3), "Name")[2] is None


def test_a_level_1_batch_is_kept_as_it_is_without_being_decoded_again(monkeypatch) -> None:
    """A leader reads a follower's batch's level once (cannot_apply); lowering a level-1
    batch, which has no "v" anywhere, must not decode the whole payload a second time."""
    at_1 = encode_batch(Batch(1, 2, [[ORIGIN, 1, create(None, "x")]], level=1))

    def no_decoding(data: bytes) -> Batch:
        raise AssertionError("decoded again")

    monkeypatch.setattr(entries, "decode_batch", no_decoding)
    assert lowered(at_1, 1) is at_1 and lowered(at_1, 2) is at_1


def test_a_batch_is_lowered_by_its_head_or_else_whole() -> None:
    b = new_batch([[ORIGIN, 1, create(None, "x")]])
    at_3 = encode_batch(Batch(b.secs, b.nanos, b.commands, level=3))
    assert lowered(at_3, 2) == encode_batch(Batch(b.secs, b.nanos, b.commands, level=2))
    reordered = orjson.dumps({"c": b.commands, "v": 3, "t": [b.secs, b.nanos]})  # another layout
    assert decode_batch(lowered(reordered, 1)) == Batch(b.secs, b.nanos, b.commands, level=1)


def test_a_proposers_own_batch_carries_the_level_it_was_written_at() -> None:
    """The proposer applies its own entry from the batch it encoded: the same level as logged."""
    sm = StateMachine()
    for level in (1, 2):
        data, batch = sm.encode_batch([[ORIGIN, 1, create(None, "x")]], level)
        assert batch.level == decode_batch(data).level == level


def test_an_init_entry_at_level_1_is_what_a_build_before_levels_writes() -> None:
    cfg = {"schemas": [], "tree": []}
    assert encode_init(cfg, (0, 0), {"admin": H}, level=1) == orjson.dumps(
        {"t": [0, 0], "init": cfg, "auth": {"admin": H}})
    assert orjson.loads(encode_init(cfg, (0, 0), level=2))["v"] == 2
