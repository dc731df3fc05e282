"""A full disk stops a real node with exit code 74 (docs/operations.md: "A
node stops itself"), whichever write meets it, and a restart once there is
space again has every acknowledged write.

The node is `python -m qcore` itself, with its file system answering ENOSPC
(as a full disk does) while a flag file next to its data dir names the kind
of file: `wal` (writing the log), `snap` (writing a snapshot) or `identity`
(writing cluster.json). No tmpfs
of a fixed size is needed, so the test runs without root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qcore.node.driver import EXIT_STORAGE_FAILED
from tests.node.harness import Conn, NodeProc, eid, read, wait_ready, wait_serving

DISK_FULL = """
import errno, os, sys
from qcore.storage import fs

flag = sys.argv.pop(1)

def full(kind):
    try:
        return open(flag).read().strip() == kind
    except FileNotFoundError:
        return False

def no_space():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

real_create, real_write_at = fs.FileSystem.create, fs.FileSystem.write_at

def create(self, path):
    if path.endswith(".snap.tmp") and full("snap"):
        raise no_space()
    return real_create(self, path)

def write_at(self, fd, offset, parts):
    if full("wal"):
        raise no_space()
    return real_write_at(self, fd, offset, parts)

fs.FileSystem.create, fs.FileSystem.write_at = create, write_at

from qcore.node import cluster_identity

def open_identity(path, mode="r", *args, **kwargs):
    if "w" in mode and full("identity"):
        raise no_space()
    return open(path, mode, *args, **kwargs)

cluster_identity.open = open_identity  # cluster.json is written with open(), not through fs
from qcore.cli.node import main
sys.exit(main())
"""


async def _create(c: Conn, name: str) -> dict:
    r = await c.perform({"CreateEntity": {"entity_type": "Folder", "parent_id": eid("Root", 1), "name": name}})
    assert r["CreateEntity"]["error"] is None, r
    return r["CreateEntity"]["response"]


@pytest.mark.parametrize("kind", ["wal", "snap"])
async def test_a_full_disk_stops_the_node_with_exit_74_and_a_restart_has_every_acknowledged_write(
        nodes, tmp_path: Path, kind: str) -> None:
    flag = tmp_path / "disk-full"
    n: NodeProc = nodes(1, "--init", "--snapshot-threshold", "10",
                        program=[sys.executable, "-c", DISK_FULL, str(flag)])
    n.start()
    await wait_serving(n)
    await wait_ready(n)
    c = await Conn.open(n.addr)
    acked = [await _create(c, f"before-{i}") for i in range(3)]
    flag.write_text(kind)
    # Writes go on until one meets the full disk: the next one for the log,
    # the one that makes a snapshot due (10 entries on) for a snapshot.
    for i in range(30):
        try:
            acked.append(await _create(c, f"during-{i}"))
        except (ConnectionError, AssertionError):
            break
    await c.close()
    assert n.proc is not None
    assert n.proc.wait(20) == EXIT_STORAGE_FAILED == 74, n.log_tail()
    log = n.log_path.read_text()
    assert "No space left on device" in log
    assert "broken invariant" not in log  # a full disk is no bug of the node's
    critical = [line for line in log.splitlines() if " CRITICAL " in line]
    assert len(critical) == 1 and "stopping the node (exit 74)" in critical[0], critical

    flag.unlink()  # space freed
    n.extra = []
    n.start()
    await wait_serving(n)
    await wait_ready(n)
    c = await Conn.open(n.addr)
    for e in acked:
        r = await c.perform({"UpdateEntity": {"request": [read(e, "Name")]}})
        assert r["UpdateEntity"]["error"] is None, (e, r)
    await _create(c, "after")
    await c.close()
    assert n.terminate() == 0


async def test_an_init_that_met_a_full_disk_writes_the_clusters_identity_when_tried_again(
        nodes, tmp_path: Path) -> None:
    """The identity is adopted only once cluster.json is on disk: adopted first, a retried Init
    formed the cluster without it, and the data dir then started as any --id, with node 1's vote."""
    flag = tmp_path / "disk-full"
    flag.write_text("identity")
    n: NodeProc = nodes(1, program=[sys.executable, "-c", DISK_FULL, str(flag)])
    n.start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    reply = await c.call("Init", nodes=[])
    assert reply.get("InitResponse", {}).get("response") != "Ok", reply
    assert f"cannot write {n.data_dir.resolve() / 'cluster.json'}: No space left on device" in str(reply), reply
    flag.unlink()  # space freed
    reply = await c.call("Init", nodes=[])
    assert reply["InitResponse"]["response"] == "Ok", reply
    await c.close()
    assert n.terminate() == 0
    assert json.loads((n.data_dir / "cluster.json").read_bytes())["node_id"] == 1
