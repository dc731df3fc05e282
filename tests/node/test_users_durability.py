"""Users survive what the log survives (SPEC 8.3), with real processes: a
cluster formed by --initial-cluster with --admin-password-file, kill -9 of
every node, a snapshot installed on a new learner, a restart; no plaintext
password in any byte of any data dir or log; and the other ways to turn
users on (--init, AuthEnable on a running node), with the client library's
role and password calls (a client that changed its own password logs in with
the new one when it reconnects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.client import AuthenticationFailed, Client, CommandError, ServerError
from tests.node.harness import Conn, NodeProc, read, wait_ready, wait_serving, wait_until, write
from tests.node.http_get import http_get

ADMIN_PW = "adm-durable-4c7e21"
ALICE_PW = "alice-durable-93bd0a"
BOB_PW = "bob-durable-1f6e58"
ROOT_PW = "root-running-77c2d9"
ROOT_PW_2 = "root-running-2-0be4a1"
ANN_PW = "ann-running-5d31c8"
SENSOR = "Sensor$12"  # in schemas.yaml's tree
SMALL_SNAPSHOTS = ("--snapshot-threshold", "30", "--snapshot-keep", "5")
USERS_BYPASSABLE = "users are on (log index"


def schema(entity_type: str, fields: dict) -> dict:
    return {"SetSchema": {"entity_schema": {"entity_type": entity_type, "inherit": "Object", "fields": {
        name: {"field_type": name, "default_value": v, "rank": 10, "read_permission": None,
               "write_permission": None, "choices": None} for name, v in fields.items()}}}}


async def ok(c: Conn, tag: str, **fields: object) -> object:
    reply = await c.call(tag, timeout=60, **fields)
    ((_, body),) = reply.items()
    resp = body.get("response")
    assert resp == "Ok" or (isinstance(resp, dict) and "Ok" in resp), reply
    return resp["Ok"] if isinstance(resp, dict) else resp


async def alice_may_read_not_write(addr: str, meter: dict) -> None:
    c = await Conn.login(addr, "alice", ALICE_PW)
    try:
        r = await c.perform({"UpdateEntity": {"request": [read(meter, "Value")]}})
        assert r["UpdateEntity"]["error"] is None, r
        r = await c.perform({"UpdateEntity": {"request": [write(meter, "Value", {"Float": -1.0})]}})
        assert r["UpdateEntity"]["error"] == "permission denied: alice may not write Meter.Value", r
    finally:
        await c.close()


async def _leader_known(addr: str) -> bool:
    """Ready (a leader known, its commits applied: a restarted learner hears from the leader only
    when the leader reaches it again), and the admin can log in there."""
    status, _, _ = await http_get(addr, "/ready")
    if status != 200:
        return False
    c = await Conn.login(addr, "admin", ADMIN_PW)
    try:
        m = await c.metrics()
        return m["current_leader"] is not None
    finally:
        await c.close()


async def test_users_survive_kill9_snapshot_install_and_restart_and_no_password_is_stored(nodes, tmp_path: Path,
                                                                                        tmp_path_factory) -> None:
    secrets = tmp_path_factory.mktemp("secrets")  # the password file lives outside the data dirs
    pw_file = secrets / "admin-password"
    pw_file.write_text(ADMIN_PW + "\n")
    ns = [nodes(i, *SMALL_SNAPSHOTS) for i in (1, 2, 3)]
    flag = ",".join(f"{n.id}={n.addr}" for n in ns)
    for n in ns:
        n.extra += ["--initial-cluster", flag, "--admin-password-file", str(pw_file)]
        n.start()
    for n in ns:
        await wait_serving(n)
    for n in ns:  # every member wrote the same admin hash
        await wait_until(lambda n=n: _leader_known(n.addr), timeout=30, what=f"admin logs in at node {n.id}")

    admin = await Conn.login(ns[0].addr, "admin", ADMIN_PW)
    assert (await admin.perform(schema("Meter", {"Value": {"Float": 0.0}})))["SetSchema"]["error"] is None
    r = await admin.perform({"CreateEntity": {"entity_type": "Meter", "parent_id": None, "name": "m"}})
    meter = r["CreateEntity"]["response"]
    await ok(admin, "AuthAdmin", request={"RoleAdd": {"role": "viewer", "permissions": [
        {"entity_type": "Meter", "field": "*", "access": ["read"]}]}})
    await ok(admin, "AuthAdmin", request={"UserAdd": {"user": "alice", "password": ALICE_PW, "roles": ["viewer"],
                                                      "entity": meter}})
    await ok(admin, "AuthAdmin", request={"UserAdd": {"user": "bob", "password": "temporary-1", "roles": []}})
    await ok(admin, "AuthAdmin", request={"UserSetPassword": {"user": "bob", "password": BOB_PW}})
    for i in range(80):  # past the snapshot threshold: the log behind a snapshot is compacted
        r = await admin.perform({"UpdateEntity": {"request": [write(meter, "Value", {"Float": float(i)})]}})
        assert r["UpdateEntity"]["error"] is None, r
    await admin.close()
    client = Client([n.addr for n in ns], user="alice", password=ALICE_PW, request_timeout=30)
    await client.open()
    assert (await client.read(meter, "Value"))[0].v == 79.0

    for n in ns:
        n.kill9()
    for n in ns:
        n.start()
    for n in ns:
        await wait_serving(n)
        await wait_until(lambda n=n: _leader_known(n.addr), timeout=30, what=f"node {n.id} back with its users")
        await alice_may_read_not_write(n.addr, meter)
    # the library's client reconnected by itself, and authenticated again
    assert (await client.read(meter, "Value"))[0].v == 79.0
    with pytest.raises(CommandError) as refused:
        await client.write(meter, "Value", 1.0)
    assert refused.value.kind == "permission_denied"
    await client.close()
    with pytest.raises(AuthenticationFailed):
        await Client.connect([ns[0].addr], user="alice", password="not-" + ALICE_PW)

    learner = nodes(4).start()
    await wait_serving(learner)
    admin = await Conn.login(ns[1].addr, "admin", ADMIN_PW)
    await ok(admin, "AddLearner", node_id=4, node_addr=learner.addr)
    await admin.close()
    await wait_until(lambda: _installed_snapshot(learner), timeout=30, what="node 4 installs a snapshot")
    await alice_may_read_not_write(learner.addr, meter)
    assert learner.terminate() == 0
    learner.start()
    await wait_serving(learner)
    await wait_until(lambda: _leader_known(learner.addr), timeout=30, what="node 4 back, hearing from the leader")
    await alice_may_read_not_write(learner.addr, meter)
    bob = await Conn.login(learner.addr, "bob", BOB_PW)
    await bob.close()

    for n in [*ns, learner]:
        n.kill9()
        # Without peer authentication, each run warned once that users can be bypassed: as the
        # admin was created, at recovery, as a snapshot was installed (qcore.node.exposure).
        assert n.log_path.read_text().count(USERS_BYPASSABLE) == 2, n.id
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in stored) and any("node-4" in str(p) for p in stored)
    for p in stored:
        data = p.read_bytes()
        for pw in (ADMIN_PW, ALICE_PW, BOB_PW, "temporary-1"):
            assert pw.encode() not in data, f"{pw} in {p}"


async def _installed_snapshot(n: NodeProc) -> bool:
    return "installed snapshot" in n.log_path.read_text(errors="replace")


async def test_init_admin_password_file_starts_a_node_with_users_on(nodes, tmp_path_factory) -> None:
    pw_file = tmp_path_factory.mktemp("secret") / "pw"
    # As Windows Notepad saves it: a UTF-8 byte order mark and CRLF, neither of them part of the password.
    pw_file.write_bytes(b"\xef\xbb\xbf" + ADMIN_PW.encode() + b"\r\n")
    n = nodes(1, "--init", "--admin-password-file", str(pw_file)).start()
    await wait_serving(n)
    await wait_ready(n)  # Authenticate waits for a read barrier: a leader first
    c = await Conn.open(n.addr)
    try:
        assert (await c.call("GetMetrics"))["Error"]["kind"] == "auth_required"
        reply = await c.call("Authenticate", user="admin", password=ADMIN_PW)
        assert reply["AuthenticateResponse"]["response"] == {"Ok": {"user": "admin", "roles": ["admin"],
                                                                    "entity": None}}
        st = await ok(c, "AuthAdmin", request={"AuthStatus": {}})
        assert st == {"enabled": True, "revision": 1, "user": "admin", "roles": ["admin"]}
    finally:
        await c.close()


async def test_init_refuses_an_admin_password_useradd_would_refuse(nodes) -> None:
    """An empty admin_password would start users on with an admin anyone logs in as."""
    n = nodes(1, "--in-memory").start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    try:
        for bad in ("", "x" * 4097):
            reply = await c.call("Init", nodes=[], admin_password=bad)
            assert reply["InitResponse"]["response"] == {"Err": "admin_password: expected a string of 1..4096 characters"}
        reply = await c.call("Perform", request={"GetEntityTypes": {"page_opts": None}})
        assert reply["Error"]["kind"] == "not_initialised", reply  # nothing was started
        assert (await ok(c, "Init", nodes=[], admin_password=ADMIN_PW)) == "Ok"
        await wait_ready(n)  # Authenticate waits for a read barrier: a leader first
        reply = await c.call("Authenticate", user="admin", password="")
        assert reply["AuthenticateResponse"]["response"] == {"Err": "invalid user or password"}
    finally:
        await c.close()


async def test_users_turned_on_and_off_on_a_running_node(nodes) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    anyone = await Client.connect([n.addr])
    try:
        with pytest.raises(ServerError) as refused:
            await anyone.auth_enable()
        assert "without a user with role admin" in refused.value.message
        await anyone.user_add("root", ROOT_PW, roles=["admin"])  # users off: anyone may
        assert USERS_BYPASSABLE not in n.log_path.read_text()
        await anyone.auth_enable()
        # Applied (it was answered): a loopback node says it too, once, that users can be bypassed.
        assert n.log_path.read_text().count(USERS_BYPASSABLE) == 1
        with pytest.raises(ServerError) as refused:
            await anyone.metrics()
        assert refused.value.kind == "auth_required"
        async with Client([n.addr], user="root", password=ROOT_PW) as root:
            assert (await root.auth_status())["enabled"] is True
            assert [u["user"] for u in await root.users()] == ["root"]
            await root.role_add("viewer", ["Sensor.Unit=read"])
            await root.user_add("ann", ANN_PW)
            async with Client([n.addr], user="ann", password=ANN_PW) as ann:
                with pytest.raises(CommandError, match="ann may not read Sensor.Unit"):
                    await ann.read(SENSOR, "Unit")
                await root.user_grant_role("ann", "viewer")
                assert (await ann.read(SENSOR, "Unit"))[0].v == "C"
                await root.role_set_permissions("viewer", ["Sensor.Reading=read"])  # replaces the role's permissions
                assert (await ann.read(SENSOR, "Reading"))[0].v == 21.5
                with pytest.raises(CommandError, match="ann may not read Sensor.Unit"):
                    await ann.read(SENSOR, "Unit")
            await root.user_set_password("root", ROOT_PW_2)  # its own: what the client logs in with from now on
            assert n.terminate() == 0
            n.start()
            await wait_serving(n)
            assert (await root.auth_status())["user"] == "root"  # reconnected, and authenticated again
            with pytest.raises(AuthenticationFailed):
                await Client.connect([n.addr], user="root", password=ROOT_PW)
            await root.auth_disable()
        assert (await anyone.metrics())["id"] == 1  # open again
    finally:
        await anyone.close()
