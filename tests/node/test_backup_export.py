"""Backups and exports with real processes (SPEC 9): a snapshot saved from a
follower during writes restores into a new 3-node cluster with every entity
and value; `snapshot status` prints what the file holds; users and roles come
back through `qcore snapshot restore` run as a command; a damaged snapshot is
refused; export -> import round-trips a tree with every value type."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from qcore.cli.client import build_parser, run as cli_run
from qcore.cli import restore as restore_module
from qcore.cli.restore import restore_data_dir
from qcore.node.bootstrap import parse_members
from qcore.node.state_machine import StateMachine
from qcore.protocol.values import encode_value
from qcore.storage.backup_file import BackupError, BackupHeader, read_backup, write_backup
from qcore.store import EntityId, FindEntities, GetEntityTypes, GetSchema
from tests.node.harness import REPO, Conn, NodeProc, eid, read, wait_ready, wait_serving, wait_until, write
from tests.node.test_http_endpoints import scrape


async def cli(*argv: str) -> int:
    return await cli_run(build_parser().parse_args(list(argv)))


_STATUS = re.compile(r"index +(\d+) \(term \d+\)\nsize +(\d+) bytes\nentities +(\d+)\n"
                     r"sha256 +([0-9a-f]{64}) \(checked\)\n")


async def snapshot_status(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """What `qcore-cli snapshot status FILE` prints, as {index, size, entities, sha256}."""
    capsys.readouterr()
    assert await cli("snapshot", "status", str(path)) == 0
    out = capsys.readouterr().out
    found = _STATUS.search(out)
    assert found is not None, out
    index, size, entities, sha256 = found.groups()
    return {"index": int(index), "size": int(size), "entities": int(entities), "sha256": sha256}


def payload_of(path: Path) -> bytes:
    """The snapshot data in a backup file: everything after its two header lines."""
    return path.read_bytes().split(b"\n", 2)[2]


async def start_cluster(nodes_: list[NodeProc], *extra: str) -> None:
    flag = ",".join(f"{n.id}={n.addr}" for n in nodes_)
    for n in nodes_:
        n.extra += ["--initial-cluster", flag, *extra]
        n.start()
    for n in nodes_:
        await wait_serving(n)

    async def led() -> bool:
        c = await Conn.open(nodes_[0].addr)
        try:
            m = await c.metrics()
            return m["current_leader"] is not None and m["last_applied"]["index"] >= 3
        finally:
            await c.close()
    await wait_until(led, what="a leader")


async def follower_of(nodes_: list[NodeProc]) -> NodeProc:
    for n in nodes_:
        c = await Conn.open(n.addr)
        try:
            if (await c.metrics())["state"] == "Follower":
                return n
        finally:
            await c.close()
    raise AssertionError("no follower")


def all_entities(store: Any) -> list[EntityId]:
    out = []
    for t in store.query(GetEntityTypes(None)).response.items:
        if store.query(GetSchema(t)).response.inherit is None:
            out += store.query(FindEntities(t, None)).response.items
    return out


async def read_fields(c: Conn, e: EntityId, fields: list[str]) -> dict[str, Any]:
    ent = {"typ": e.typ, "id": e.id}
    r = await c.perform({"UpdateEntity": {"request": [read(ent, f) for f in fields]}})
    assert r["UpdateEntity"]["error"] is None, (e, r)
    return {f: x["Read"]["value"] for f, x in zip(fields, r["UpdateEntity"]["response"])}


async def test_snapshot_from_a_follower_during_writes_restores_into_a_new_cluster(
        nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = [nodes(i) for i in (1, 2, 3)]
    await start_cluster(old, "--snapshot-threshold", "200")
    source = await follower_of(old)
    writer = await Conn.open(old[0].addr)
    acked: list[dict] = []
    stop = asyncio.Event()

    async def perform(request: dict) -> dict:
        """A write, sent again while it is refused as not applied (an election under load)."""
        while True:
            reply = await writer.call("Perform", request=request)
            if "PerformResponse" in reply:
                return reply["PerformResponse"]["response"]
            assert reply["Error"]["kind"] in ("no_leader", "not_leader", "unavailable"), reply
            await asyncio.sleep(0.05)  # a client's back-off

    async def write_load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            r = await perform({"CreateEntity": {"entity_type": "Sensor", "parent_id": eid("Folder", 10),
                                                "name": f"s{i}"}})
            e = r["CreateEntity"]["response"]
            r = await perform({"UpdateEntity": {"request": [
                write(e, "Reading", {"Float": i / 7}), write(e, "Firmware", {"Blob": [i % 256, 0, 255]}),
                write(e, "LastSeen", {"Timestamp": {"secs_since_epoch": 1_700_000_000 + i, "nanos_since_epoch": i}}),
                write(e, "Owner", {"EntityReference": eid("User", 3)}), write(e, "Kind", {"Choice": i % 3}),
            ]}})
            assert r["UpdateEntity"]["error"] is None
            acked.append(e)

    load = asyncio.create_task(write_load())
    await wait_until(lambda: _at_least(acked, 150), what="writes under way")
    before = list(acked)  # acknowledged before the save began: must all be in it
    backup = tmp_path / "backup.snap"
    assert await cli("--addr", source.addr, "snapshot", "save", str(backup)) == 0
    await wait_until(lambda: _at_least(acked, len(before) + 20), what="writes after the save")
    stop.set()
    await load
    await writer.close()

    header, data = read_backup(backup)
    saved = StateMachine()
    saved.restore(data, header.index)
    store = saved.store
    assert header.entities == store.entity_count() > 12 + len(before)
    for e in before:
        assert store.entity_fields(EntityId(e["typ"], e["id"])) is not None, e
    payload = payload_of(backup)
    assert await snapshot_status(backup, capsys) == {"index": header.index, "size": len(payload),
                                                      "entities": store.entity_count(),
                                                      "sha256": hashlib.sha256(payload).hexdigest()}

    for n in old:
        n.kill9()
    new = [nodes(i) for i in (4, 5, 6)]
    members = parse_members(",".join(f"{n.id}={n.addr}" for n in new))
    for n in new:
        restore_data_dir(backup, n.data_dir, n.id, members)
    for n in new:
        n.start()
    for n in new:
        await wait_serving(n)
    for n in new:  # every one reads below: each must know the leader (else no_leader once the read waited 2 timeouts)
        await wait_ready(n)
    conns = [await Conn.open(n.addr) for n in new]
    try:
        entities = all_entities(store)
        assert len(entities) == store.entity_count()
        for k, e in enumerate(entities):
            cells = store.entity_fields(e)
            assert cells is not None
            got = await read_fields(conns[k % 3], e, sorted(cells))
            assert got == {f: encode_value(cells[f][0]) for f in sorted(cells)}, e
        # The new cluster goes on: ids continue after the backup's.
        r = await conns[1].perform({"CreateEntity": {"entity_type": "Folder", "parent_id": None, "name": "after"}})
        assert r["CreateEntity"]["response"]["id"] == store.next_id
    finally:
        for c in conns:
            await c.close()


async def _at_least(items: list, n: int) -> bool:
    return len(items) >= n


ADMIN_PW = "backup-admin-pw-51c3"
ALICE_PW = "backup-alice-pw-0d9e"


async def restore_command(backup: Path, node: NodeProc, initial_cluster: str) -> tuple[int, str, str]:
    """`qcore snapshot restore FILE --data-dir DIR --id N --initial-cluster ...`, run as an operator would."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qcore", "snapshot", "restore", str(backup), "--data-dir", str(node.data_dir),
        "--id", str(node.id), "--initial-cluster", initial_cluster,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_users_and_roles_come_back_through_the_restore_command(
        nodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pw_file = tmp_path / "admin-password"
    pw_file.write_text(ADMIN_PW + "\n")
    old = nodes(1, "--init", "--admin-password-file", str(pw_file)).start()
    await wait_serving(old)
    await wait_ready(old)  # Authenticate waits for a read barrier: a leader first
    admin = await Conn.login(old.addr, "admin", ADMIN_PW)
    try:
        for request in (
            {"RoleAdd": {"role": "feed", "permissions": [{"entity_type": "Sensor", "field": "*", "access": ["read"]},
                                                         {"entity_type": "Sensor", "field": "Reading",
                                                          "access": ["write"]}]}},
            {"UserAdd": {"user": "alice", "password": ALICE_PW, "roles": ["feed"], "entity": None}},
        ):
            reply = await admin.call("AuthAdmin", request=request)
            assert "Ok" in reply["AuthAdminResponse"]["response"], reply
        r = await admin.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Float": 4.5})]}})
        assert r["UpdateEntity"]["error"] is None, r
    finally:
        await admin.close()

    backup = tmp_path / "users.snap"
    monkeypatch.setenv("QCORE_PASSWORD", ADMIN_PW)
    assert await cli("--addr", old.addr, "--user", "admin", "snapshot", "save", str(backup)) == 0
    at_save = await scrape(old)  # nothing was written since: the node is where the backup is
    payload = payload_of(backup)
    status = await snapshot_status(backup, capsys)
    assert status == {"index": int(at_save[("qcore_raft_applied_index", ())]), "size": len(payload),
                      "entities": int(at_save[("qcore_store_entities", ())]),
                      "sha256": hashlib.sha256(payload).hexdigest()}
    old.kill9()

    new = nodes(7)  # a member of a new one-node cluster, on its own port and data dir
    members = f"7={new.addr}"
    code, out, err = await restore_command(backup, new, members)
    assert code == 0, err
    assert (f"(index {status['index']}, {status['entities']} entities, {status['size']} bytes) "
            f"into {new.data_dir} as node 7 of {members}") in out, out
    code, out, err = await restore_command(backup, new, members)
    assert code == 1 and f"{new.data_dir} is not empty" in err, (out, err)
    new.start()
    await wait_serving(new)
    await wait_ready(new)

    anonymous = await Conn.open(new.addr)
    alice = await Conn.login(new.addr, "alice", ALICE_PW)
    try:
        assert (await anonymous.call("GetMetrics"))["Error"]["kind"] == "auth_required"  # users are still on

        async def led() -> bool:
            return (await alice.metrics())["current_leader"] == 7
        await wait_until(led, what="the restored member leads")
        sensor = eid("Sensor", 12)
        r = await alice.perform({"UpdateEntity": {"request": [read(sensor, "Reading")]}})
        assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"Float": 4.5}, r
        r = await alice.perform({"UpdateEntity": {"request": [write(sensor, "Reading", {"Float": 5.5})]}})
        assert r["UpdateEntity"]["error"] is None, r
        r = await alice.perform({"UpdateEntity": {"request": [write(sensor, "Unit", {"String": "K"})]}})
        assert r["UpdateEntity"]["error"] == "permission denied: alice may not write Sensor.Unit", r
    finally:
        await alice.close()
        await anonymous.close()


async def test_a_damaged_snapshot_is_refused(nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    good = tmp_path / "good.snap"
    assert await cli("--addr", n.addr, "snapshot", "save", str(good)) == 0
    raw = good.read_bytes()
    flipped = tmp_path / "flipped.snap"
    flipped.write_bytes(raw[:-10] + bytes([raw[-10] ^ 1]) + raw[-9:])
    truncated = tmp_path / "truncated.snap"
    truncated.write_bytes(raw[: len(raw) - 100])
    capsys.readouterr()
    for bad, why in ((flipped, "corrupt: the snapshot data's sha256"), (truncated, "truncated")):
        assert await cli("snapshot", "status", str(bad)) == 1
        assert why in capsys.readouterr().err
        with pytest.raises(BackupError, match=why):
            restore_data_dir(bad, tmp_path / f"restore-{bad.stem}", 1, {1: "127.0.0.1:1"})
        assert not (tmp_path / f"restore-{bad.stem}").exists()


def test_a_restore_that_fails_part_way_leaves_nothing_at_the_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The data dir is built aside and renamed into place last: a failure before that (here the disk
    filling up as the storage is written) leaves the target absent, or empty as it was, and no staging dir;
    the same with a target that is a mount point (built inside it, moved in file by file)."""
    data = StateMachine().snapshot_builder()()
    backup = tmp_path / "fresh.snap"
    write_backup(backup, BackupHeader(index=5, term=2, size=len(data), sha256=hashlib.sha256(data).hexdigest()), data)

    class DiskFullAfterWriting(restore_module.FileStorage):
        def save(self, *args: Any, **kwargs: Any) -> None:
            super().save(*args, **kwargs)
            raise OSError(28, "No space left on device")

    cases = [(tmp_path / "n1", False, False), (tmp_path / "empty", True, False),
             (tmp_path / "volume", True, True)]
    for target, exists, mount_point in cases:
        if exists:
            target.mkdir()
        before = sorted(target.parent.iterdir())
        monkeypatch.setattr(os.path, "ismount", lambda p, t=target, m=mount_point: m and p == t)
        monkeypatch.setattr(restore_module, "FileStorage", DiskFullAfterWriting)
        argv = [str(backup), "--data-dir", str(target), "--id", "1", "--initial-cluster", "1=127.0.0.1:1"]
        assert restore_module.main(argv) == 1
        assert "No space left on device" in capsys.readouterr().err
        assert sorted(target.parent.iterdir()) == before, target
        assert not target.exists() or list(target.iterdir()) == [], list(target.iterdir())

        monkeypatch.undo()  # the disk has room again: the same command now writes a complete data dir
        assert restore_module.main(argv) == 0, capsys.readouterr().err
        assert sorted(p.name for p in target.iterdir())[0] == "LOCK" and (target / "cluster.json").exists()
        with restore_module.FileStorage(target) as storage:
            snap = storage.recover().snapshot
        assert snap is not None and snap.meta.index == 5 and snap.meta.conf_state.voters == (1,)
        assert sorted(target.parent.iterdir()) == sorted({*before, target})


def test_a_restore_into_a_mount_point_cut_short_while_moving_in_is_undone_or_marked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A mount point's files are moved in one by one: a failure between two moves puts the moved
    ones back (the target stays empty); a restore killed there leaves its staging dir, which
    marks it: restore refuses to overwrite it and a node refuses to start on it, both saying why."""
    import subprocess

    data = StateMachine().snapshot_builder()()
    backup = tmp_path / "fresh.snap"
    write_backup(backup, BackupHeader(index=5, term=2, size=len(data), sha256=hashlib.sha256(data).hexdigest()), data)
    target = tmp_path / "volume"
    target.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: p == target)
    real_rename, renames = os.rename, []

    def rename_fails_second_time(src: Any, dst: Any) -> None:  # of the moves in (storage renames too)
        if Path(src).parent == target / ".restoring" and Path(dst).parent == target:
            renames.append(src)
            if len(renames) == 2:
                raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_fails_second_time)
    argv = [str(backup), "--data-dir", str(target), "--id", "1", "--initial-cluster", "1=127.0.0.1:1"]
    assert restore_module.main(argv) == 1
    assert "Input/output error" in capsys.readouterr().err
    assert list(target.iterdir()) == []  # the file moved in first went back, and the staging dir is gone

    monkeypatch.setattr(os, "rename", real_rename)
    (target / ".restoring").mkdir()  # as a restore killed between two moves leaves it
    (target / "cluster.json").write_text('{"cluster_id": "x", "node_id": 1}')  # moved in last
    assert restore_module.main(argv) == 1
    assert "holds a restore that did not finish" in capsys.readouterr().err
    p = subprocess.run([sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", "--data-dir",
                        str(target)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "holds a `qcore snapshot restore` that did not finish" in p.stderr, p.stderr


async def test_export_then_import_round_trips_every_value_type(nodes, tmp_path: Path) -> None:
    a = nodes(1, "--init").start()
    await wait_serving(a)
    c = await Conn.open(a.addr)
    try:
        r = await c.perform({"CreateEntity": {"entity_type": "Folder", "parent_id": eid("Root", 1), "name": "late"}})
        late = r["CreateEntity"]["response"]
        r = await c.perform({"CreateEntity": {"entity_type": "User", "parent_id": eid("Folder", 2), "name": "bob"}})
        bob = r["CreateEntity"]["response"]  # id 14, but before Folder$13 in the tree
        r = await c.perform({"UpdateEntity": {"request": [
            write(eid("Device", 11), "Firmware", {"Blob": list(range(256))}),
            write(eid("Device", 11), "LastSeen", {"Timestamp": {"secs_since_epoch": 1_700_000_001, "nanos_since_epoch": 123_456_789}}),
            write(eid("Device", 11), "Temperature", {"Float": 5e-324}),
            write(eid("Device", 11), "Uptime", {"Int": -(2**63)}),
            write(eid("Device", 11), "Kind", {"Choice": 1}),
            write(eid("Device", 11), "Owner", {"EntityReference": bob}),
            write(eid("Sensor", 12), "Reading", {"Float": -0.0}),
            write(eid("Sensor", 12), "Unit", {"String": "yes"}),
            write(bob, "Email", {"String": "line one\nline: two é 😀 \x00 'q' \"dq\""}),
            write(bob, "Active", {"Bool": False}),
            write(eid("Group", 6), "Members", {"EntityList": [bob, eid("User", 3), late, eid("Device", 11)]}),
        ]}})
        assert r["UpdateEntity"]["error"] is None, r
    finally:
        await c.close()
    exported = tmp_path / "export.yaml"
    assert await cli("--addr", a.addr, "export", str(exported)) == 0

    b = nodes(2, "--init", "--config-file", str(exported)).start()
    await wait_serving(b)
    again = tmp_path / "again.yaml"
    assert await cli("--addr", b.addr, "export", str(again)) == 0

    def body(p: Path) -> list[str]:
        return [line for line in p.read_text().splitlines() if not line.startswith("#")]
    assert body(again) == body(exported)

    c = await Conn.open(b.addr)
    try:
        new_bob = {"typ": "User", "id": 5}  # renumbered in tree order: Root 1, Users 2, admin 3, alice 4, bob 5
        got = await read_fields(c, EntityId("User", 5), ["Name", "Email", "Active"])
        assert got == {"Name": {"String": "bob"}, "Email": {"String": "line one\nline: two é 😀 \x00 'q' \"dq\""},
                       "Active": {"Bool": False}}
        dev = await read_fields(c, EntityId("Device", 12), ["Firmware", "LastSeen", "Temperature", "Uptime", "Kind", "Owner"])
        assert dev == {
            "Firmware": {"Blob": list(range(256))},
            "LastSeen": {"Timestamp": {"secs_since_epoch": 1_700_000_001, "nanos_since_epoch": 123_456_789}},
            "Temperature": {"Float": 5e-324}, "Uptime": {"Int": -(2**63)}, "Kind": {"Choice": 1},
            "Owner": {"EntityReference": new_bob},
        }
        members = await read_fields(c, EntityId("Group", 7), ["Members"])
        assert members == {"Members": {"EntityList": [new_bob, eid("User", 3), eid("Folder", 14), eid("Device", 12)]}}
        reading = await read_fields(c, EntityId("Sensor", 13), ["Reading", "Unit"])
        assert reading == {"Reading": {"Float": -0.0}, "Unit": {"String": "yes"}}
        assert math.copysign(1.0, reading["Reading"]["Float"]) == -1.0  # == alone takes 0.0 for -0.0
    finally:
        await c.close()


async def test_a_failed_save_or_export_leaves_no_part_file(nodes, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    out = tmp_path / "sub.yaml"
    assert await cli("--addr", n.addr, "export", "--root", "Folder$99", str(out)) == 1  # no such entity
    target = tmp_path / "a-directory"
    target.mkdir()
    capsys.readouterr()
    assert await cli("--addr", n.addr, "snapshot", "save", str(target)) == 1  # cannot rename over a directory
    assert f"cannot write {target}: it is a directory" in capsys.readouterr().err
    for argv in (["snapshot", "save"], ["export"]):  # the file named as given, not as FILE.part
        missing = tmp_path / "no-such-dir" / "f"
        assert await cli("--addr", n.addr, *argv, str(missing)) == 1
        assert f"cannot write {missing}: directory {missing.parent} does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("node-")) == ["a-directory"]


async def test_export_root_and_tree_take_a_path_as_well_as_an_id(
        nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    by_id, by_path = tmp_path / "by-id.yaml", tmp_path / "by-path.yaml"
    assert await cli("--addr", n.addr, "export", "--root", "Folder$10", str(by_id)) == 0
    assert await cli("--addr", n.addr, "export", "--root", "/Root/Devices", str(by_path)) == 0

    def body(p: Path) -> list[str]:
        return [line for line in p.read_text().splitlines() if not line.startswith("#")]
    assert body(by_path) == body(by_id) and "  name: Devices" in by_id.read_text()
    capsys.readouterr()
    # FILE "-" is standard output, as with no FILE (it wrote a file named "-" in the working directory)
    monkeypatch.chdir(tmp_path)
    assert await cli("--addr", n.addr, "export", "--root", "/Root/Devices", "-") == 0
    assert [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")] == body(by_id)
    assert not (tmp_path / "-").exists()
    assert await cli("--addr", n.addr, "tree", "/Root/Devices") == 0
    assert capsys.readouterr().out.splitlines()[0] == "Folder$10  'Devices'"


def test_qcore_snapshot_other_than_restore_names_the_tool_that_has_it() -> None:
    import subprocess

    for argv in (["snapshot"], ["snapshot", "save", "x.snap"], ["snapshot", "status", "x.snap"]):
        p = subprocess.run([sys.executable, "-m", "qcore", *argv], capture_output=True, text=True, timeout=30, cwd=REPO)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, (argv, p.stderr)  # one line, not node usage
        assert "`qcore snapshot restore FILE" in p.stderr and "are qcore-cli's" in p.stderr, (argv, p.stderr)


def test_a_restore_with_a_bad_member_list_is_a_usage_error(tmp_path: Path) -> None:
    # A bad --initial-cluster, or one without --id, exited 1 as a damaged backup does; argparse's
    # own errors (a missing --id) exit 2. Now all of them are usage errors: 2, and nothing written.
    import subprocess

    data = StateMachine().snapshot_builder()()
    backup = tmp_path / "fresh.snap"
    write_backup(backup, BackupHeader(index=5, term=2, size=len(data), sha256=hashlib.sha256(data).hexdigest()), data)
    target = tmp_path / "n3"
    for cluster, message in (("1=127.0.0.1:1,2=127.0.0.1:2", "--initial-cluster does not list --id 3"),
                             ("3=127.0.0.1", "argument --initial-cluster: expected ID=HOST:PORT")):
        p = subprocess.run([sys.executable, "-m", "qcore", "snapshot", "restore", str(backup), "--data-dir", str(target),
                            "--id", "3", "--initial-cluster", cluster], capture_output=True, text=True, timeout=30, cwd=REPO)
        assert p.returncode == 2 and message in p.stderr.splitlines()[-1], p.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.snap"]
