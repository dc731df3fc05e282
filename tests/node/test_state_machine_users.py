"""Users in the state machine (SPEC 8.3): changes checked as the log is
applied, against the users and roles at that position; the snapshot holds
them. Entries are built as the node builds them (qcore.node.entries)."""

from __future__ import annotations

import orjson

from qcore.node.entries import ENTRY_LEVEL, attributed, auth_command, encode_batch, encode_init, new_batch
from qcore.node.state_machine import StateMachine
from qcore.protocol.values import encode_load_config
from qcore.store import EntityId, LoadConfig
from qcore.store.auth import AuthDisable, RoleAdd, RoleSetPermissions, UserAdd, UserDelete, UserRevokeRole, UserSetPassword
from qcore.store.permissions import Permission
from tests.store.helpers import FOLDER, OBJECT, USER

H = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
ORIGIN = "1:test"


def write(eid: dict, field: str, value: dict) -> dict:
    return {"Write": {"entity_id": eid, "field_type": field, "value": value, "push_condition": "Always",
                      "adjust_behavior": "Set", "write_time": None, "writer_id": {"typ": "Folder", "id": 1}}}


def update(*reqs: dict) -> dict:
    return {"UpdateEntity": {"request": list(reqs)}}


class Log:
    """Feeds entries to a state machine as the driver does, one command per entry."""

    def __init__(self, sm: StateMachine, users: bool = True, level: int = ENTRY_LEVEL) -> None:
        self.sm = sm
        self.index = 0
        self.level = level
        config = LoadConfig([OBJECT, FOLDER, USER], [])
        self._entry(encode_init(encode_load_config(config), (1, 0), {"admin": H} if users else None, level=level))

    def _entry(self, data: bytes) -> list:
        self.index += 1
        return self.sm.apply_entry(self.index, data, ORIGIN)

    def run(self, command: dict) -> dict:
        [(_, response)] = self._entry(encode_batch(new_batch([[ORIGIN, 1, command]], self.level)))
        return response  # type: ignore[no-any-return]

    def ok(self, command: dict) -> dict:
        r = self.run(command)
        ((_, body),) = r.items()
        assert body.get("error") is None and "Err" not in (body.get("response") or {}), r
        return body  # type: ignore[no-any-return]


def started() -> Log:
    log = Log(StateMachine())
    log.ok(auth_command("admin", RoleAdd("folders", (Permission("Folder", "*", frozenset({"read", "write"})),))))
    log.ok(attributed("admin", {"CreateEntity": {"entity_type": "Folder", "parent_id": None, "name": "f"}}))
    log.ok(attributed("admin", {"CreateEntity": {"entity_type": "User", "parent_id": None, "name": "u"}}))
    log.ok(auth_command("admin", UserAdd("alice", H, ("folders",), None)))
    return log


FOLDER1 = {"typ": "Folder", "id": 1}
USER2 = {"typ": "User", "id": 2}


def test_a_command_by_no_user_is_refused_while_users_are_on() -> None:
    log = started()
    r = log.run(update(write(FOLDER1, "Name", {"String": "x"})))
    assert r["UpdateEntity"]["error"] == "authentication required" and r["UpdateEntity"]["kind"] == "auth_required"


def test_a_mixed_batch_is_refused_whole_and_changes_nothing() -> None:
    log = started()
    before = log.sm.snapshot_builder()()
    r = log.run(attributed("alice", update(write(FOLDER1, "Name", {"String": "ok"}),
                                            write(USER2, "Name", {"String": "no"}))))
    assert r["UpdateEntity"] == {"response": [], "error": "permission denied: alice may not write User.Name",
                                 "kind": "permission_denied"}
    assert log.sm.snapshot_builder()() == before


def test_writer_id_is_the_users_entity_and_a_revoke_holds_from_its_position_on() -> None:
    log = started()
    body = log.ok(attributed("alice", update(write(FOLDER1, "Name", {"String": "mine"}))))
    assert body["response"][0]["Write"]["writer_id"] is None  # alice has no entity: not the Folder she claimed
    log.ok(auth_command("admin", UserAdd("bob", H, ("folders",), EntityId("User", 2))))
    body = log.ok(attributed("bob", update(write(FOLDER1, "Name", {"String": "his"}))))
    assert body["response"][0]["Write"]["writer_id"] == USER2
    log.ok(auth_command("admin", UserRevokeRole("bob", "folders")))
    r = log.run(attributed("bob", update(write(FOLDER1, "Name", {"String": "late"}))))
    assert r["UpdateEntity"]["error"] == "permission denied: bob may not write Folder.Name"
    log.ok(auth_command("admin", RoleSetPermissions("folders", ())))  # decisions are worked out again
    assert log.run(attributed("alice", update(write(FOLDER1, "Name", {"String": "x"}))))["UpdateEntity"]["error"]
    # with users off, commands apply as before and keep the writer they name
    log.ok(auth_command("admin", AuthDisable()))
    body = log.ok(update(write(FOLDER1, "Name", {"String": "open"})))
    assert body["response"][0]["Write"]["writer_id"] == FOLDER1


def test_changes_to_users_are_refused_to_non_admins_at_their_position() -> None:
    log = started()
    r = log.run(auth_command("alice", UserAdd("eve", H)))
    assert r == {"AuthAdmin": {"response": {"Err": "permission denied: alice may not UserAdd (admin only)"},
                               "kind": "permission_denied"}}
    assert "eve" not in log.sm.auth.users


def test_the_snapshot_holds_users_and_roles_and_is_the_store_alone_without_them() -> None:
    plain = Log(StateMachine(), users=False, level=1)
    plain.ok({"CreateEntity": {"entity_type": "Folder", "parent_id": None, "name": "f"}})
    assert plain.sm.snapshot_builder()() == plain.sm.store.snapshot()  # as before users and levels existed

    log = started()
    data = log.sm.snapshot_builder()()
    assert H.encode() in data  # the hash, never a password, travels with the state
    back = StateMachine()
    back.restore(data, log.index)
    assert back.auth.to_json() == log.sm.auth.to_json()
    assert back.store.snapshot() == log.sm.store.snapshot()
    assert orjson.dumps(back.auth.to_json()) == orjson.dumps(log.sm.auth.to_json())
    r = Log.__new__(Log)
    r.sm, r.index, r.level = back, log.index, log.level
    assert r.run(attributed("alice", update(write(USER2, "Name", {"String": "no"}))))["UpdateEntity"]["error"]


async def test_a_backup_or_membership_change_is_checked_again_after_the_barrier() -> None:
    """A node that has not yet applied an admin's deletion lets the request past its first check;
    the ReadIndex barrier brings the deletion in, and the check made after it refuses the request
    (SPEC 8.3: a deleted user's connections lose their rights with the deletion)."""
    from qcore.node.api import ConnContext
    from qcore.node.users import Session, Users
    from qcore.protocol import messages as m
    from qcore.store.auth import UserDelete

    log = started()

    async def barrier() -> None:  # this node catches up: the deletion was committed before the request came
        log.ok(auth_command("admin", UserDelete("bob")))

    async def served(msg: object, conn: object) -> str:
        return "served"

    users = Users(lambda: log.sm, barrier, propose=None, initialised=lambda: True)  # type: ignore[arg-type]
    handlers = {tag: served for tag in ("AddLearner", "ChangeMembership", "RemoveNode", "SnapshotSave", "GetMetrics")}
    users.guard(handlers)
    try:
        for tag in ("AddLearner", "ChangeMembership", "RemoveNode", "SnapshotSave"):
            log.ok(auth_command("admin", UserAdd("bob", H, ("admin",), None)))
            bob = log.sm.auth.users["bob"]
            conn = ConnContext(ws=None, user=Session(bob.name, bob.uid))  # type: ignore[arg-type]
            assert users.gate(conn, m.GetMetrics(1)) is None  # still an admin here, before the barrier
            reply = await handlers[tag](m.GetMetrics(1), conn)
            assert isinstance(reply, m.Error) and reply.kind == "auth_required", (tag, reply)
    finally:
        users.close()


def test_a_user_deleted_and_added_again_is_another_user_to_the_old_ones_requests() -> None:
    """Entries carry the uid the connection authenticated as: a request from the deleted bob's
    connection, ordered after a new bob was added, is refused, not applied with the new bob's rights."""
    log = started()
    log.ok(auth_command("admin", UserAdd("bob", H, ("admin",), None)))
    old = log.sm.auth.users["bob"].uid
    log.ok(auth_command("admin", UserDelete("bob")))
    log.ok(auth_command("admin", UserAdd("bob", H, ("folders",), None)))
    new = log.sm.auth.users["bob"].uid
    assert new != old
    r = log.run(attributed("bob", update(write(FOLDER1, "Name", {"String": "stale"})), old))
    assert r["UpdateEntity"]["kind"] == "auth_required" and "bob no longer exists" in r["UpdateEntity"]["error"]
    r = log.run(auth_command("bob", UserSetPassword("bob", H), old))
    assert r["AuthAdmin"]["kind"] == "auth_required", r
    log.ok(attributed("bob", update(write(FOLDER1, "Name", {"String": "fresh"})), new))
    log.ok(auth_command("bob", UserSetPassword("bob", H), new))
    log.ok(attributed("bob", update(write(FOLDER1, "Name", {"String": "by name"}))))  # an entry without a uid
