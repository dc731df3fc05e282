"""Users, roles and permissions on a 3-node cluster of real processes (SPEC 8.3).

One cluster for the whole module (started with Init's admin_password); every
test opens its own connections. The matrix sends every request type as every
role, to every node in turn, and checks it is allowed or refused as SPEC 8.3's
table says; the other tests follow a change of rights through the log:
a mixed batch, revoke-then-write on every node, writer_id, notifications and
their context, a deleted user, a changed password, guessed passwords. Last,
qcore-cli's user, role and auth commands, its password prompts at a real
terminal (a pty), and users turned off and on again."""

from __future__ import annotations

import asyncio
import fcntl
import io
import itertools
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from qcore.cli.client import build_parser, run as cli_run

from qcore.node.entries import ENTRY_LEVEL
from qcore.node.login_throttle import BASE, backoff
from tests.node.harness import REPO, Conn, NodeProc, read, start_and_init, wait_ready, wait_until, write
from tests.node.http_get import http_get

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_PW = "admin-pw-7f3a9c"
PASSWORDS = {"admin": ADMIN_PW, "dash": "dash-pw-11d2", "svc": "svc-pw-5e8b", "bld": "bld-pw-a4c0",
             "nobody": "nobody-pw-90f1"}
ROLES = {
    "reader": ["*.*=read"],
    "meter_writer": ["Meter.*=read", "Meter.Value=write"],
    "builder": ["Meter=create,delete"],
}
USER_ROLES = {"dash": ["reader"], "svc": ["meter_writer"], "bld": ["builder"], "nobody": []}
STR = {"String": ""}


def perm(text: str) -> dict[str, Any]:
    target, _, access = text.partition("=")
    typ, _, fld = target.partition(".")
    return {"entity_type": typ, "field": fld or "*", "access": access.split(",")}


def schema(entity_type: str, inherit: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"SetSchema": {"entity_schema": {"entity_type": entity_type, "inherit": inherit, "fields": {
        name: {"field_type": name, "default_value": v, "rank": 10 + i, "read_permission": None,
               "write_permission": None, "choices": None} for i, (name, v) in enumerate(fields.items())}}}}


@dataclass
class Cluster:
    nodes: list[NodeProc]
    plant: dict[str, Any]
    meter: dict[str, Any]
    smart: dict[str, Any]
    admin: Conn  # an admin connection to node 1
    opened: list[Conn] = field(default_factory=list)
    sessions: dict[tuple[str, int], Conn] = field(default_factory=dict)

    async def login(self, user: str, node: int, password: str | None = None) -> Conn:
        c = await Conn.login(self.nodes[node].addr, user, password or PASSWORDS[user])
        self.opened.append(c)
        return c

    async def session(self, user: str, node: int) -> Conn:
        """One connection per (user, node) for the matrix: logging in costs a password hash."""
        if (user, node) not in self.sessions:
            self.sessions[user, node] = await self.login(user, node)
        return self.sessions[user, node]

    async def admin_call(self, request: dict[str, Any]) -> Any:
        reply = await self.admin.call("AuthAdmin", request=request)
        resp = reply["AuthAdminResponse"]["response"]
        assert "Ok" in resp, reply
        return resp["Ok"]

    async def create(self, typ: str, name: str, parent: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await self.admin.perform({"CreateEntity": {"entity_type": typ, "parent_id": parent, "name": name}})
        assert r["CreateEntity"]["error"] is None, r
        return r["CreateEntity"]["response"]  # type: ignore[no-any-return]


async def _leader_known(c: Conn) -> bool:
    m = await c.metrics()
    return m["current_leader"] is not None and m["last_applied"] is not None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    work: Path = tmp_path_factory.mktemp("users")
    nodes = [NodeProc(i, work) for i in (1, 2, 3)]
    try:
        await start_and_init(nodes, admin_password=ADMIN_PW)
        await wait_ready(nodes[0])  # a leader elected: Authenticate waits for a read barrier
        admin = await Conn.login(nodes[0].addr, "admin", ADMIN_PW)
        await wait_until(lambda: _leader_known(admin), what="a leader")
        c = Cluster(nodes, {}, {}, {}, admin)
        for s in (schema("Plant", "Object", {"Title": STR}),
                  schema("Meter", "Object", {"Value": {"Float": 0.0}, "Unit": STR}),
                  schema("SmartMeter", "Meter", {"Firmware": STR})):
            assert (await admin.perform(s))["SetSchema"]["error"] is None
        c.plant = await c.create("Plant", "plant")
        c.meter = await c.create("Meter", "m1", c.plant)
        c.smart = await c.create("SmartMeter", "s1", c.plant)
        for role, perms in ROLES.items():
            await c.admin_call({"RoleAdd": {"role": role, "permissions": [perm(p) for p in perms]}})
        for user, roles in USER_ROLES.items():
            entity = c.meter if user == "svc" else None
            await c.admin_call({"UserAdd": {"user": user, "password": PASSWORDS[user], "roles": roles, "entity": entity}})
        yield c
        for conn in c.opened:
            await conn.close()
        await admin.close()
    finally:
        for n in nodes:
            n.kill9()


# ------------------------------------------------------------------ the matrix

Request = tuple[str, dict[str, Any]]
Make = Callable[[Cluster, str], Awaitable[Request]]  # (cluster, user) -> (tag, fields), after any set-up


def perform(build: Callable[[Cluster], dict[str, Any]]) -> Make:
    async def make(c: Cluster, user: str) -> Request:
        return "Perform", {"request": build(c)}
    return make


def msg(tag: str, **fields: Any) -> Make:
    async def make(c: Cluster, user: str) -> Request:
        return tag, {k: (v(c) if callable(v) else v) for k, v in fields.items()}
    return make


async def _delete_fresh(c: Cluster, user: str) -> Request:
    victim = await c.create("Meter", "doomed", c.plant)
    return "Perform", {"request": {"DeleteEntity": {"entity_id": victim}}}


async def _role_add(c: Cluster, user: str) -> Request:
    return "AuthAdmin", {"request": {"RoleAdd": {"role": f"r{next(_role_names)}", "permissions": []}}}


async def _own_password(c: Cluster, user: str) -> Request:  # set to the same one: later tests log in with it
    return "AuthAdmin", {"request": {"UserSetPassword": {"user": user, "password": PASSWORDS[user]}}}


async def _others_password(c: Cluster, user: str) -> Request:
    other = "svc" if user == "dash" else "dash"
    return "AuthAdmin", {"request": {"UserSetPassword": {"user": other, "password": PASSWORDS[other]}}}


def notify(c: Cluster, context: list[str]) -> dict[str, Any]:
    return {"EntityId": {"entity_id": c.meter, "field_type": "Value", "trigger_on_change": False, "context": context}}


def update(*reqs: dict[str, Any]) -> dict[str, Any]:
    return {"UpdateEntity": {"request": list(reqs)}}


_role_names = itertools.count()
Y, N, O = "ok", "denied", "other"  # allowed; refused for permission; refused for another reason (Init: initialised)
USERS = ("admin", "dash", "svc", "bld", "nobody")
#      request                                                                      admin dash svc bld nobody
MATRIX: dict[str, tuple[Make, tuple[str, str, str, str, str]]] = {
    "read": (perform(lambda c: update(read(c.meter, "Value"))), (Y, Y, Y, N, N)),
    "read-path": (perform(lambda c: update(read(c.meter, "Parent->Title"))), (Y, Y, N, N, N)),
    "write": (perform(lambda c: update(write(c.smart, "Value", {"Float": 1.5}))), (Y, N, Y, N, N)),
    "write-other-field": (perform(lambda c: update(write(c.meter, "Unit", {"String": "kWh"}))), (Y, N, N, N, N)),
    "write-path": (perform(lambda c: update(write(c.meter, "Parent->Title", {"String": "P"}))), (Y, N, N, N, N)),
    "create": (perform(lambda c: {"CreateEntity": {"entity_type": "Meter", "parent_id": c.plant, "name": "new"}}),
               (Y, N, N, Y, N)),
    "delete": (_delete_fresh, (Y, N, N, Y, N)),
    "set-schema": (perform(lambda c: schema("Spare", "Object", {"X": STR})), (Y, N, N, N, N)),
    "get-schema": (perform(lambda c: {"GetSchema": {"entity_type": "Meter"}}), (Y, Y, Y, N, N)),
    "get-complete-schema": (perform(lambda c: {"GetCompleteSchema": {"entity_type": "SmartMeter"}}), (Y, Y, Y, N, N)),
    "find": (perform(lambda c: {"FindEntities": {"entity_type": "Meter", "page_opts": None}}), (Y, Y, Y, N, N)),
    "find-plants": (perform(lambda c: {"FindEntities": {"entity_type": "Plant", "page_opts": None}}), (Y, Y, N, N, N)),
    "get-children": (perform(lambda c: {"GetChildren": {"entity_id": c.plant, "page_opts": None}}), (Y, Y, N, N, N)),
    "entity-exists": (perform(lambda c: {"EntityExists": {"entity_id": c.smart}}), (Y, Y, Y, N, N)),
    "field-exists": (perform(lambda c: {"FieldExists": {"entity_type": "Meter", "field_type": "Unit"}}), (Y, Y, Y, N, N)),
    "get-entity-types": (perform(lambda c: {"GetEntityTypes": {"page_opts": None}}), (Y, Y, Y, Y, Y)),  # filtered
    "register": (msg("RegisterNotification", config=lambda c: notify(c, ["Unit"])), (Y, Y, Y, N, N)),
    "register-context": (msg("RegisterNotification", config=lambda c: notify(c, ["Parent->Title"])), (Y, Y, N, N, N)),
    "get-metrics": (msg("GetMetrics"), (Y, Y, Y, Y, Y)),
    "init": (msg("Init", nodes=[]), (O, N, N, N, N)),
    "add-learner": (msg("AddLearner", node_id=2, node_addr=lambda c: c.nodes[1].addr), (Y, N, N, N, N)),
    "change-membership": (msg("ChangeMembership", members=[1, 2, 3]), (Y, N, N, N, N)),
    "remove-node": (msg("RemoveNode", node_id=9), (Y, N, N, N, N)),  # not a member: a no-op for admin
    "cluster-metrics": (msg("GetClusterMetrics"), (Y, N, N, N, N)),
    "snapshot-save": (msg("SnapshotSave"), (Y, N, N, N, N)),
    "user-list": (msg("AuthAdmin", request={"UserList": {}}), (Y, N, N, N, N)),
    "role-list": (msg("AuthAdmin", request={"RoleList": {}}), (Y, N, N, N, N)),
    "role-add": (_role_add, (Y, N, N, N, N)),
    "own-password": (_own_password, (Y, Y, Y, Y, Y)),
    "others-password": (_others_password, (Y, N, N, N, N)),
    "auth-status": (msg("AuthAdmin", request={"AuthStatus": {}}), (Y, Y, Y, Y, Y)),
}


def outcome(reply: dict[str, Any], user: str) -> str:
    """ok / denied / other, failing on anything that is none of them."""
    ((tag, body),) = reply.items()
    if tag == "Error":
        if body.get("kind") == "permission_denied":
            assert body["error"].startswith(f"permission denied: {user} may not "), body
            return N
        return O
    if tag == "GetMetricsResponse":
        return Y
    if tag == "PerformResponse":
        ((_, inner),) = body["response"].items()
        if inner.get("error") is None:
            return Y
        if inner.get("kind") == "permission_denied":
            assert inner["error"].startswith(f"permission denied: {user} may not "), inner
            return N
        raise AssertionError(f"unexpected command error: {inner}")
    resp = body.get("response")
    if resp == "Ok" or (isinstance(resp, dict) and "Ok" in resp):
        return Y
    if body.get("kind") == "permission_denied":
        assert resp["Err"].startswith(f"permission denied: {user} may not "), body
        return N
    return O


CASES = [(name, u) for name in MATRIX for u in USERS]


@pytest.mark.parametrize("name,user", CASES, ids=[f"{n}-{u}" for n, u in CASES])
async def test_every_request_as_every_role(cluster: Cluster, name: str, user: str) -> None:
    make, expected = MATRIX[name]
    conn = await cluster.session(user, CASES.index((name, user)) % 3)  # leader and followers alike
    tag, fields = await make(cluster, user)
    reply = await conn.call(tag, timeout=60, **fields)
    assert outcome(reply, user) == expected[USERS.index(user)], reply


@pytest.mark.parametrize("tag,fields", [
    ("GetMetrics", {}), ("Perform", {"request": {"GetEntityTypes": {"page_opts": None}}}),
    ("RegisterNotification", {"config": {"EntityType": {"entity_type": "Meter", "field_type": "Value",
                                                        "trigger_on_change": False, "context": []}}}),
    ("AuthAdmin", {"request": {"AuthStatus": {}}}), ("ChangeMembership", {"members": [1, 2, 3]}),
    ("SnapshotSave", {}),
])
async def test_a_connection_that_has_not_authenticated_may_send_only_authenticate(
        cluster: Cluster, tag: str, fields: dict[str, Any]) -> None:
    c = await Conn.open(cluster.nodes[2].addr)
    try:
        reply = await c.call(tag, **fields)
        assert reply == {"Error": {"id": reply["Error"]["id"], "error": "authentication required",
                                   "kind": "auth_required"}}
    finally:
        await c.close()


async def test_health_ready_and_metrics_need_no_user(cluster: Cluster) -> None:
    """SPEC 9: probes and scrapers have no user; over the WebSocket, the same node asks for a login
    first (the test above)."""
    addr = cluster.nodes[2].addr
    status, _, body = await http_get(addr, "/health")
    assert status == 200 and orjson.loads(body)["status"] == "ok"

    async def ready() -> bool:
        status, _, body = await http_get(addr, "/ready")
        return status == 200 and orjson.loads(body)["status"] == "ready"

    await wait_until(ready, what="/ready 200 without a login")
    status, headers, body = await http_get(addr, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain") and b"\nqcore_raft_term " in body


async def test_types_are_listed_as_far_as_they_can_be_read(cluster: Cluster) -> None:
    async def types(user: str) -> list[str]:
        c = await cluster.login(user, 1)
        r = await c.perform({"GetEntityTypes": {"page_opts": None}})
        return r["GetEntityTypes"]["response"]["items"]  # type: ignore[no-any-return]

    assert await types("svc") == ["Meter", "SmartMeter"]  # a permission on Meter covers SmartMeter
    assert await types("nobody") == []
    assert {"Meter", "Plant", "Object"} <= set(await types("dash"))


# ------------------------------------------------------------------ changes through the log


async def value_everywhere(c: Cluster, entity: dict[str, Any], field: str) -> list[Any]:
    out = []
    for n in c.nodes:
        conn = await c.login("admin", c.nodes.index(n))
        r = await conn.perform({"UpdateEntity": {"request": [read(entity, field)]}})
        out.append(r["UpdateEntity"]["response"][0]["Read"])
    return out


async def test_a_batch_with_one_refused_request_changes_nothing(cluster: Cluster) -> None:
    svc = await cluster.login("svc", 2)
    before = await value_everywhere(cluster, cluster.meter, "Value")
    r = await svc.perform({"UpdateEntity": {"request": [write(cluster.meter, "Value", {"Float": 99.0}),
                                                         write(cluster.meter, "Unit", {"String": "no"})]}})
    assert r["UpdateEntity"] == {"response": [], "error": "permission denied: svc may not write Meter.Unit",
                                 "kind": "permission_denied"}
    assert await value_everywhere(cluster, cluster.meter, "Value") == before


async def test_a_path_after_a_write_of_its_batch_is_checked_where_that_write_made_it_lead(cluster: Cluster) -> None:
    """A batch applies in order, so a Write of a reference can re-aim a path later in the same
    batch: ``[Write Ref = <a Plant>, Read Ref->Title]`` from a user who may use only Dials. The
    path is checked where it leads once the requests before it have run, not on the state before
    the batch (where Ref was null, or a Dial): refused whole, and nothing changed on any node;
    re-aimed at a Dial, the same batch is allowed. Sent to a follower and to the leader."""
    assert (await cluster.admin.perform(schema("Dial", "Object", {"Ref": {"EntityReference": None},
                                                                  "Title": STR})))["SetSchema"]["error"] is None
    d1 = await cluster.create("Dial", "d1", cluster.plant)
    d2 = await cluster.create("Dial", "d2", cluster.plant)
    await cluster.admin.perform(update(write(cluster.plant, "Title", {"String": "the plant's title"})))
    await cluster.admin_call({"RoleAdd": {"role": "dial-users", "permissions": [perm("Dial.*=read,write")]}})
    await cluster.admin_call({"UserAdd": {"user": "dw", "password": "dw-pw-81c4", "roles": ["dial-users"],
                                          "entity": None}})
    aim_at_plant = write(d1, "Ref", {"EntityReference": cluster.plant})
    for node in (2, 0):
        dw = await cluster.login("dw", node, "dw-pw-81c4")
        for batch, refused in (
                ([aim_at_plant, read(d1, "Ref->Title")], "read Plant.Title"),
                ([aim_at_plant, write(d1, "Ref->Title", {"String": "owned"})], "write Plant.Title"),
                ([aim_at_plant, read(d1, "Ref->Parent"), write(d1, "Ref", {"EntityReference": None})],
                 "read Plant.Parent")):
            r = await dw.perform(update(*batch))
            assert r["UpdateEntity"] == {"response": [], "error": f"permission denied: dw may not {refused}",
                                         "kind": "permission_denied"}, r
        for seen in await value_everywhere(cluster, cluster.plant, "Title"):
            assert seen["value"] == {"String": "the plant's title"}
        for seen in await value_everywhere(cluster, d1, "Ref"):
            assert seen["value"] == {"EntityReference": None}
        r = await dw.perform(update(write(d1, "Ref", {"EntityReference": d2}),
                                    write(d1, "Ref->Title", {"String": f"via node {node + 1}"}), read(d1, "Ref->Title")))
        assert r["UpdateEntity"]["error"] is None, r
        assert r["UpdateEntity"]["response"][2]["Read"]["value"] == {"String": f"via node {node + 1}"}
        await cluster.admin.perform(update(write(d1, "Ref", {"EntityReference": None})))


async def test_writer_id_is_the_writing_users_entity(cluster: Cluster) -> None:
    svc = await cluster.login("svc", 1)
    claimed = write(cluster.meter, "Value", {"Float": 7.0})
    claimed["Write"]["writer_id"] = cluster.plant  # a client cannot write in another's name
    r = await svc.perform({"UpdateEntity": {"request": [claimed]}})
    assert r["UpdateEntity"]["error"] is None, r
    assert r["UpdateEntity"]["response"][0]["Write"]["writer_id"] == cluster.meter
    for seen in await value_everywhere(cluster, cluster.meter, "Value"):
        assert seen["value"] == {"Float": 7.0} and seen["writer_id"] == cluster.meter
    r = await cluster.admin.perform({"UpdateEntity": {"request": [claimed]}})
    assert r["UpdateEntity"]["response"][0]["Write"]["writer_id"] is None  # admin has no entity


async def test_creates_and_deletes_are_by_the_users_entity_which_must_exist(cluster: Cluster) -> None:
    """SPEC 8.3's writer_id for what a CreateEntity and a DeleteEntity write: the new entity's
    fields and the parent's Children record the user's entity, on every node and in the
    notification; a user cannot be linked to an entity that does not exist."""
    workshop = await cluster.create("Plant", "workshop")
    badge = await cluster.create("Plant", "maker's badge")  # the user's entity: any entity will do
    await cluster.admin_call({"RoleAdd": {"role": "maker", "permissions": [
        perm("Plant.*=read"), perm("Meter.*=read"), perm("Meter=create,delete"), perm("Meter.Parent=write")]}})
    reply = await cluster.admin.call("AuthAdmin", request={"UserAdd": {
        "user": "maker", "password": "maker-pw-5b1e", "roles": ["maker"], "entity": {"typ": "Meter", "id": 999999}}})
    assert {k: v for k, v in reply["AuthAdminResponse"].items() if k != "id"} == {
        "response": {"Err": "entity Meter$999999 does not exist"}, "kind": "not_found"}
    await cluster.admin_call({"UserAdd": {"user": "maker", "password": "maker-pw-5b1e", "roles": ["maker"],
                                          "entity": badge}})
    maker = await cluster.login("maker", 2, "maker-pw-5b1e")
    reg = await maker.call("RegisterNotification", config={"EntityId": {
        "entity_id": workshop, "field_type": "Children", "trigger_on_change": False, "context": []}})
    token = reg["RegisterNotificationResponse"]["response"]["Ok"]

    async def next_change() -> dict[str, Any]:
        while True:
            n = (await asyncio.wait_for(maker.unmatched.get(), 20))["Notification"]
            if n["token"] == token:
                return n["notification"]  # type: ignore[no-any-return]

    r = await maker.perform({"CreateEntity": {"entity_type": "Meter", "parent_id": workshop, "name": "made"}})
    assert r["CreateEntity"]["error"] is None, r
    made = r["CreateEntity"]["response"]
    n = await next_change()
    assert n["current_value"] == {"EntityList": [made]} and n["writer_id"] == badge
    for seen in await value_everywhere(cluster, made, "Name"):
        assert seen["value"] == {"String": "made"} and seen["writer_id"] == badge
    for seen in await value_everywhere(cluster, workshop, "Children"):
        assert seen["value"] == {"EntityList": [made]} and seen["writer_id"] == badge
    r = await cluster.admin.perform({"CreateEntity": {"entity_type": "Meter", "parent_id": workshop, "name": "adm"}})
    assert (await next_change())["writer_id"] is None  # admin has no entity

    r = await maker.perform({"DeleteEntity": {"entity_id": made}})
    assert r["DeleteEntity"]["error"] is None, r
    n = await next_change()
    assert made not in n["current_value"]["EntityList"] and n["writer_id"] == badge
    for seen in await value_everywhere(cluster, workshop, "Children"):
        assert seen["writer_id"] == badge

    # a move (a write of Parent) writes both parents' Children, by the user's entity too
    r = await cluster.admin.perform({"CreateEntity": {"entity_type": "Meter", "parent_id": workshop, "name": "mv"}})
    moved = r["CreateEntity"]["response"]
    assert (await next_change())["writer_id"] is None
    r = await maker.perform({"UpdateEntity": {"request": [write(moved, "Parent", {"EntityReference": badge})]}})
    assert r["UpdateEntity"]["error"] is None, r
    n = await next_change()
    assert moved not in n["current_value"]["EntityList"] and n["writer_id"] == badge
    for parent in (workshop, badge):
        for seen in await value_everywhere(cluster, parent, "Children"):
            assert seen["writer_id"] == badge


async def test_every_member_runs_this_build_so_every_node_proposes_at_its_level(cluster: Cluster) -> None:
    """Each member declares its semantics level on its Raft links (qcore.node.entries): with every
    member on this build, the leader and the followers propose at ENTRY_LEVEL (so a user's create
    records its writer on every node: the test above), shown as qcore_entry_level and logged."""
    for n in cluster.nodes:
        async def at_this_level(n: NodeProc = n) -> bool:
            status, _, body = await http_get(n.addr, "/metrics")
            return status == 200 and f"\nqcore_entry_level {float(ENTRY_LEVEL)}\n".encode() in body

        await wait_until(at_this_level, what=f"qcore_entry_level {ENTRY_LEVEL} on node {n.id}")
        assert (f"proposing log entries at semantics level {ENTRY_LEVEL} (this build's level)"
                in n.log_path.read_text())


async def test_a_revoke_holds_for_every_write_after_it_on_every_node(cluster: Cluster) -> None:
    await cluster.admin_call({"UserAdd": {"user": "temp", "password": "temp-pw-3c1d", "roles": ["meter_writer"],
                                          "entity": None}})
    conns = [await cluster.login("temp", i, "temp-pw-3c1d") for i in range(3)]
    for i, c in enumerate(conns):
        r = await c.perform({"UpdateEntity": {"request": [write(cluster.meter, "Value", {"Float": float(i)})]}})
        assert r["UpdateEntity"]["error"] is None, r
    await cluster.admin_call({"UserRevokeRole": {"user": "temp", "role": "meter_writer"}})
    for c in conns:  # the revoke is in the log before each of these writes, whichever node took it
        r = await c.perform({"UpdateEntity": {"request": [write(cluster.meter, "Value", {"Float": 42.0})]}})
        assert r["UpdateEntity"]["error"] == "permission denied: temp may not write Meter.Value", r
        r = await c.perform({"UpdateEntity": {"request": [read(cluster.meter, "Value")]}})
        assert r["UpdateEntity"]["kind"] == "permission_denied"
    assert all(v["value"] == {"Float": 2.0} for v in await value_everywhere(cluster, cluster.meter, "Value"))


async def test_a_deleted_users_connections_lose_their_rights_and_a_new_password_holds_at_once(cluster: Cluster) -> None:
    await cluster.admin_call({"UserAdd": {"user": "gone", "password": "gone-pw-77aa", "roles": ["reader"],
                                          "entity": None}})
    conns = [await cluster.login("gone", i, "gone-pw-77aa") for i in range(3)]
    await cluster.admin_call({"UserSetPassword": {"user": "gone", "password": "gone-pw-new"}})
    for i in range(3):
        stale = await Conn.open(cluster.nodes[i].addr)
        r = await stale.call("Authenticate", user="gone", password="gone-pw-77aa")
        assert r["AuthenticateResponse"] == {"id": r["AuthenticateResponse"]["id"],
                                             "response": {"Err": "invalid user or password"},
                                             "kind": "invalid_credentials"}
        r = await stale.call("Authenticate", user="gone", password="gone-pw-new")
        assert "Ok" in r["AuthenticateResponse"]["response"]
        await stale.close()
    await cluster.admin_call({"UserDelete": {"user": "gone"}})
    for c in conns:
        reply = await c.call("Perform", request={"GetEntityTypes": {"page_opts": None}})
        assert reply["Error"]["kind"] == "auth_required", reply
    # a user added again under the same name does not bring the old connections back
    await cluster.admin_call({"UserAdd": {"user": "gone", "password": "gone-pw-77aa", "roles": ["reader"],
                                          "entity": None}})
    reply = await conns[0].call("GetMetrics")
    assert reply["Error"]["kind"] == "auth_required"


async def test_notifications_and_their_context_follow_the_roles(cluster: Cluster) -> None:
    await cluster.admin_call({"RoleAdd": {"role": "watching", "permissions": [perm("Meter.*=read"),
                                                                               perm("Plant.Title=read")]}})
    await cluster.admin_call({"UserAdd": {"user": "watcher", "password": "watch-pw-1", "roles": ["watching"],
                                          "entity": None}})
    w = await cluster.login("watcher", 2, "watch-pw-1")
    reg = await w.call("RegisterNotification", config=notify(cluster, ["Unit", "Parent->Title"]))
    token = reg["RegisterNotificationResponse"]["response"]["Ok"]
    typed = await w.call("RegisterNotification", config={"EntityType": {
        "entity_type": "Meter", "field_type": "Unit", "trigger_on_change": False, "context": []}})
    assert "Ok" in typed["RegisterNotificationResponse"]["response"]

    async def set_value(v: float) -> None:
        r = await cluster.admin.perform({"UpdateEntity": {"request": [
            write(cluster.meter, "Parent->Title", {"String": f"plant {v}"}),
            write(cluster.meter, "Value", {"Float": v})]}})
        assert r["UpdateEntity"]["error"] is None, r

    async def next_value() -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(w.unmatched.get(), 20)
            n = frame["Notification"]
            if n["token"] == token:
                return n["notification"]  # type: ignore[no-any-return]

    await set_value(1.0)
    n = await next_value()
    assert n["current_value"] == {"Float": 1.0} and n["context"]["Parent->Title"] == {"String": "plant 1.0"}
    await cluster.admin_call({"RoleSetPermissions": {"role": "watching", "permissions": [perm("Meter.*=read")]}})
    await set_value(2.0)
    n = await next_value()
    assert n["current_value"] == {"Float": 2.0}
    assert n["context"]["Parent->Title"] is None and "String" in n["context"]["Unit"]  # no longer readable: null
    await cluster.admin_call({"RoleSetPermissions": {"role": "watching", "permissions": [perm("Meter.Unit=read")]}})
    await set_value(3.0)  # Value unreadable now: not sent
    await cluster.admin_call({"RoleSetPermissions": {"role": "watching", "permissions": [perm("Meter.*=read")]}})
    await set_value(4.0)
    assert (await next_value())["current_value"] == {"Float": 4.0}  # in log order: 3.0 never came


async def test_a_refused_registration_does_not_tell_what_exists_or_where_a_path_leads(cluster: Cluster) -> None:
    """RegisterNotification is checked for permission before the store is asked about it: a user
    who may not read something learns from its refusal neither whether an entity, a type or a
    field exists nor where a reference it may not read points (the store's "broke at ..." text
    names the entity reached). svc may read Meters only; the meter's Parent is the plant."""
    svc = await cluster.login("svc", 1)

    async def register(config: dict[str, Any]) -> dict[str, Any]:
        reply = await svc.call("RegisterNotification", config=config)
        return {k: v for k, v in reply["RegisterNotificationResponse"].items() if k != "id"}

    def on(entity: dict[str, Any], field: str) -> dict[str, Any]:
        return {"EntityId": {"entity_id": entity, "field_type": field, "trigger_on_change": False, "context": []}}

    def on_type(typ: str, field: str) -> dict[str, Any]:
        return {"EntityType": {"entity_type": typ, "field_type": field, "trigger_on_change": False, "context": []}}

    missing = {"typ": "Plant", "id": 987654}
    for config, refused in ((on(cluster.plant, "Title"), "Plant.Title"), (on(missing, "Title"), "Plant.Title"),
                            (on(cluster.plant, "NoSuchField"), "Plant.NoSuchField"),
                            (on_type("Plant", "NoSuchField"), "Plant.NoSuchField"),
                            (on_type("NoSuchType", "Name"), "NoSuchType.Name"),
                            (on(cluster.meter, "Parent->NoSuchField"), "Plant.NoSuchField")):
        assert await register(config) == {"response": {"Err": f"permission denied: svc may not read {refused}"},
                                          "kind": "permission_denied"}, config
    # what svc may read, it is told about as before
    assert await register(on({"typ": "Meter", "id": 987654}, "Value")) == {
        "response": {"Err": "entity Meter$987654 does not exist"}, "kind": "invalid"}
    assert await register(on_type("Meter", "NoSuchField")) == {
        "response": {"Err": "entity type 'Meter' has no field 'NoSuchField'"}, "kind": "invalid"}


async def test_guessing_is_slowed_and_does_not_lock_the_user_out(cluster: Cluster) -> None:
    await cluster.admin_call({"UserAdd": {"user": "victim", "password": "victim-pw-8e2f", "roles": ["reader"],
                                          "entity": None}})
    addr = cluster.nodes[0].addr
    # one connection guessing: each failure doubles the wait before the next attempt is checked
    guesser = await Conn.open(addr, local_host="127.0.0.2")
    started = time.monotonic()
    for i in range(4):
        r = await guesser.call("Authenticate", user="victim", password=f"guess{i}", timeout=60)
        assert r["AuthenticateResponse"]["response"] == {"Err": "invalid user or password"}
    assert time.monotonic() - started >= sum(backoff(n) for n in range(1, 4)) - BASE / 10
    await guesser.close()
    # a burst from many addresses puts the user under attack; the real user still gets in from elsewhere
    burst = [await Conn.open(addr, local_host=f"127.0.0.{10 + i}") for i in range(22)]
    replies = await asyncio.gather(*(c.call("Authenticate", user="victim", password="nope", timeout=60)
                                     for c in burst))
    assert all(r["AuthenticateResponse"]["response"] == {"Err": "invalid user or password"} for r in replies)
    real = await Conn.login(addr, "victim", "victim-pw-8e2f")
    assert "Ok" in (await real.call("AuthAdmin", request={"AuthStatus": {}}))["AuthAdminResponse"]["response"]
    for c in [*burst, real]:
        await c.close()
    # an unknown user gets the same answer as a wrong password
    c = await Conn.open(addr, local_host="127.0.0.3")
    r = await c.call("Authenticate", user="no-such-user", password="x")
    assert r["AuthenticateResponse"]["response"] == {"Err": "invalid user or password"}
    await c.close()


async def test_a_relayed_request_keeps_its_user_and_a_client_cannot_claim_one(cluster: Cluster) -> None:
    # What a follower sends its leader on /forward when the Raft link cannot take a write:
    # the command in the envelope naming its user, checked where it is applied.
    ws = await connect(f"ws://{cluster.nodes[0].addr}/forward", proxy=None, open_timeout=5)
    peer = Conn(ws)
    try:
        def relayed(user: str, value: float) -> dict[str, Any]:
            return {"Attributed": {"user": user, "request": update(write(cluster.meter, "Value", {"Float": value}))}}

        r = await peer.perform(relayed("dash", 5.0))
        assert r["UpdateEntity"]["error"] == "permission denied: dash may not write Meter.Value"
        r = await peer.perform(relayed("svc", 6.0))
        assert r["UpdateEntity"]["error"] is None and r["UpdateEntity"]["response"][0]["Write"]["writer_id"] == cluster.meter
    finally:
        await peer.close()
    dash = await cluster.session("dash", 1)
    reply = await dash.call("Perform", request={"Attributed": {"user": "admin", "request": update(
        write(cluster.meter, "Value", {"Float": 7.0}))}})
    assert reply["Error"]["kind"] == "invalid" and "unknown CommandRequest variant 'Attributed'" in reply["Error"]["error"]


async def run_cli(monkeypatch: pytest.MonkeyPatch, addr: str, user: str | None, password: str | None, *argv: str,
                  stdin: str | None = None) -> int:
    """`qcore-cli --addr ADDR [--user USER] ARGV...` in this process: the password from QCORE_PASSWORD,
    `stdin` (if given) as standard input that is not a terminal (a pipe's)."""
    monkeypatch.delenv("QCORE_PASSWORD", raising=False)
    if password is not None:
        monkeypatch.setenv("QCORE_PASSWORD", password)
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return await cli_run(build_parser().parse_args(["--addr", addr, *(["--user", user] if user else []), *argv]))


async def test_qcore_cli_manages_users_and_roles(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    addr = cluster.nodes[2].addr

    async def cli(user: str, password: str, *argv: str) -> int:
        return await run_cli(monkeypatch, addr, user, password, *argv)

    pw_file = tmp_path / "pw"
    pw_file.write_text("cli-user-pw-42\n")
    assert await cli("admin", ADMIN_PW, "role", "add", "units", "Meter.Unit=read,write", "Meter.Name=read") == 0
    assert await cli("admin", ADMIN_PW, "user", "add", "cliuser", "--role", "units", "--password-file", str(pw_file)) == 0
    capsys.readouterr()
    assert await cli("admin", ADMIN_PW, "role", "list") == 0
    assert "units                Meter.Unit=read,write Meter.Name=read" in capsys.readouterr().out
    meter = f"Meter${cluster.meter['id']}"
    assert await cli("cliuser", "cli-user-pw-42", "write", meter, "Unit", "W") == 0
    assert await cli("cliuser", "cli-user-pw-42", "write", meter, "Value", "1.0") == 1
    assert "permission denied: cliuser may not write Meter.Value" in capsys.readouterr().err
    assert await cli("cliuser", "wrong", "auth", "status") == 1
    assert "AuthenticationFailed: cliuser: invalid user or password" in capsys.readouterr().err
    assert await cli("cliuser", "cli-user-pw-42", "--json", "auth", "status") == 0
    status = orjson.loads(capsys.readouterr().out)
    assert status["enabled"] is True and status["user"] == "cliuser" and status["roles"] == ["units"]
    assert await cli("cliuser", "cli-user-pw-42", "user", "list") == 1  # admin only
    assert "may not UserList (admin only)" in capsys.readouterr().err
    assert await cli("admin", ADMIN_PW, "user", "revoke", "cliuser", "units") == 0
    assert await cli("cliuser", "cli-user-pw-42", "write", meter, "Unit", "V") == 1
    assert await cli("admin", ADMIN_PW, "user", "delete", "cliuser") == 0
    assert await cli("admin", ADMIN_PW, "role", "delete", "units") == 0


async def test_qcore_cli_grants_sets_permissions_and_passwords(cluster: Cluster, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    addr = cluster.nodes[1].addr
    meter = f"Meter${cluster.meter['id']}"

    async def cli(user: str, password: str, *argv: str, stdin: str | None = None) -> int:
        return await run_cli(monkeypatch, addr, user, password, *argv, stdin=stdin)

    pw_file = tmp_path / "pw"
    pw_file.write_text("gauge-pw-1\n")
    assert await cli("admin", ADMIN_PW, "role", "add", "gauges", "Meter.Value=read") == 0
    assert await cli("admin", ADMIN_PW, "user", "add", "gauge", "--password-file", str(pw_file)) == 0
    capsys.readouterr()
    assert await cli("gauge", "gauge-pw-1", "read", meter, "Value") == 1
    assert "permission denied: gauge may not read Meter.Value" in capsys.readouterr().err
    assert await cli("admin", ADMIN_PW, "user", "grant", "gauge", "gauges") == 0
    assert "granted gauges to gauge" in capsys.readouterr().out
    assert await cli("gauge", "gauge-pw-1", "read", meter, "Value") == 0
    assert await cli("gauge", "gauge-pw-1", "write", meter, "Value", "2.5") == 1
    assert "permission denied: gauge may not write Meter.Value" in capsys.readouterr().err
    assert await cli("admin", ADMIN_PW, "role", "set", "gauges", "Meter.Value=read,write") == 0
    assert "set the permissions of gauges" in capsys.readouterr().out
    assert await cli("gauge", "gauge-pw-1", "write", meter, "Value", "2.5") == 0
    capsys.readouterr()
    assert await cli("gauge", "gauge-pw-1", "read", meter, "Value") == 0
    assert "2.5" in capsys.readouterr().out
    assert await cli("admin", ADMIN_PW, "role", "set", "gauges", "Meter.Value=fly") == 2  # a usage error
    assert "permission 'Meter.Value=fly'.access[0]: expected one of" in capsys.readouterr().err
    assert await cli("admin", ADMIN_PW, "role", "list") == 0
    assert "gauges               Meter.Value=read,write\n" in capsys.readouterr().out  # the bad set changed nothing

    # Their own password, from a pipe (`echo NEW | qcore-cli --user gauge user passwd gauge`).
    assert await cli("gauge", "gauge-pw-1", "user", "passwd", "gauge", stdin="gauge-pw-2\n") == 0
    assert "set the password of gauge" in capsys.readouterr().out
    assert await cli("gauge", "gauge-pw-1", "auth", "status") == 1
    assert "invalid user or password" in capsys.readouterr().err
    assert await cli("gauge", "gauge-pw-2", "user", "passwd", "dash", stdin="dash-pw-mine\n") == 1
    assert "permission denied: gauge may not UserSetPassword (admin only)" in capsys.readouterr().err
    pw_file.write_text("gauge-pw-3\n")  # an admin sets anyone's
    assert await cli("admin", ADMIN_PW, "user", "passwd", "gauge", "--password-file", str(pw_file)) == 0
    capsys.readouterr()
    assert await cli("gauge", "gauge-pw-3", "--json", "auth", "status") == 0
    assert orjson.loads(capsys.readouterr().out)["roles"] == ["gauges"]
    await cluster.login("dash", 1)  # dash's password is as it was


class Terminal:
    """The controlling terminal of a child process, typed at as a person would (a pty)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = b""
        self._done = 0  # self.seen up to here has been matched

    def _read_until(self, text: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (at := self.seen.find(text, self._done)) < 0:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {text!r} on the terminal after {timeout}s: {self.seen!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {text!r}: {self.seen!r}")
            self.seen += chunk
        self._done = at + len(text)

    async def expect(self, text: str, timeout: float = 30) -> None:
        await asyncio.to_thread(self._read_until, text.encode(), timeout)

    async def answer(self, prompt: str, line: str) -> None:
        await self.expect(prompt)
        os.write(self.master, line.encode() + b"\n")


def _take_terminal() -> None:
    """In the child, a session leader after setsid: make its standard input its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def test_qcore_cli_asks_for_passwords_at_a_terminal(cluster: Cluster) -> None:
    await cluster.admin_call({"UserAdd": {"user": "typist", "password": "typist-pw-old", "roles": ["reader"],
                                          "entity": None}})
    env = {k: v for k, v in os.environ.items() if k not in ("QCORE_PASSWORD", "QCORE_USER")}

    async def passwd(typed: list[tuple[str, str]], last: str) -> tuple[int, Terminal]:
        """Run `qcore-cli --user admin user passwd typist` at a terminal: answer each prompt, then read up to `last`."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "qcore.cli.client", "--addr", cluster.nodes[2].addr, "--user", "admin",
             "user", "passwd", "typist"],
            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True,
            preexec_fn=_take_terminal)
        os.close(slave)
        term = Terminal(master)
        try:
            for prompt, line in typed:
                await term.answer(prompt, line)
            await term.expect(last)
            return await asyncio.to_thread(proc.wait, 30), term
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)

    login = ("password for admin: ", ADMIN_PW)
    code, term = await passwd([login, ("new password for typist: ", "typist-pw-new"), ("again: ", "typist-pw-typo")],
                              "the passwords do not match")
    assert code == 1, term.seen
    code, term = await passwd([login, ("new password for typist: ", "typist-pw-new"), ("again: ", "typist-pw-new")],
                              "set the password of typist")
    assert code == 0, term.seen
    for typed in (ADMIN_PW, "typist-pw-new"):
        assert typed.encode() not in term.seen  # not echoed
    await cluster.login("typist", 0, "typist-pw-new")
    for typed in ([("password for admin: ", "\x04")], [login, ("new password for typist: ", "\x04")]):  # Ctrl-D
        code, term = await passwd(typed, "qcore-cli: nothing typed")
        assert code == 1 and b"Traceback" not in term.seen, term.seen


async def test_ctrl_c_at_a_password_prompt_stops_qcore_cli_at_once(cluster: Cluster) -> None:
    """Ctrl-C at the prompt did nothing: asyncio.run's SIGINT handler only cancels the main task,
    which the blocking read never gave up for, so the prompt stayed until Enter, then said
    'no password for admin' (and a watch, stopped before it began, exited 0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QCORE_PASSWORD", "QCORE_USER")}
    for argv in (["auth", "status"], ["watch", "User$1", "Name"]):
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "qcore.cli.client", "--addr", cluster.nodes[0].addr, "--user", "admin", *argv],
            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True,
            preexec_fn=_take_terminal)
        os.close(slave)
        term = Terminal(master)
        try:
            await term.expect("password for admin: ")
            os.write(master, b"\x03")  # Ctrl-C, and nothing else
            # (a bound on a hang: without the fix it waits for Enter forever)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 130 and b"no password" not in term.seen, (argv, code, term.seen)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)


async def test_qcore_cli_without_a_terminal_takes_the_password_from_standard_input(cluster: Cluster) -> None:
    """No controlling terminal (a script, cron): the login password is standard input's first line,
    and with none there, one line saying how to give it, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("QCORE_PASSWORD", "QCORE_USER")}

    async def cli(stdin: bytes) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qcore.cli.client", "--addr", cluster.nodes[1].addr, "--user", "admin",
            "auth", "status", cwd=REPO, env=env, start_new_session=True,  # no controlling terminal
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await cli(ADMIN_PW.encode() + b"\n")
    assert (code, err) == (0, "") and "this connection: admin" in out, (code, out, err)
    code, out, err = await cli(b"")
    assert code == 1 and out == "", (out, err)
    assert err.startswith("qcore-cli: no password for admin: set QCORE_PASSWORD") and err.count("\n") == 1, err


async def test_qcore_cli_turns_users_off_and_on(cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Last in the module: users are off for a moment."""
    addr = cluster.nodes[0].addr
    meter = f"Meter${cluster.meter['id']}"
    monkeypatch.delenv("QCORE_USER", raising=False)

    async def cli(user: str | None, *argv: str) -> int:
        return await run_cli(monkeypatch, addr, user, ADMIN_PW if user else None, *argv)

    capsys.readouterr()
    assert await cli(None, "auth", "disable") == 1
    err = capsys.readouterr().err
    assert "authentication required" in err
    # without --user, it says how to give one (it said only "authentication required")
    assert err.endswith("qcore-cli: the cluster has users on: give --user NAME (or set QCORE_USER); the password"
                        " comes from QCORE_PASSWORD or is asked for\n"), err
    assert await cli("admin", "auth", "disable") == 0
    try:
        assert "users are off" in capsys.readouterr().out
        assert await cli(None, "--json", "auth", "status") == 0
        status = orjson.loads(capsys.readouterr().out)
        assert (status["enabled"], status["user"]) == (False, None), status
        assert await cli(None, "write", meter, "Unit", "open") == 0  # anyone may do anything
    finally:
        assert await cli("admin", "auth", "enable") == 0
    assert "users are on" in capsys.readouterr().out
    assert await cli(None, "read", meter, "Unit") == 1
    err = capsys.readouterr().err
    assert "authentication required" in err and "give --user NAME" in err, err
