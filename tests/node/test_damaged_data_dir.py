"""A real node refuses a damaged data dir at start-up with one line that
names the file and says how to bring the node back (docs/operations.md,
"A damaged data dir"): exit code 1, no traceback, nothing skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.node.harness import Conn, NodeProc, eid, wait_ready, wait_serving


def _flip_in_the_middle_of_the_log(data_dir: Path) -> None:
    """Damage the frame of the entity named marker: later frames stay intact, so no crash explains it."""
    (wal,) = data_dir.glob("wal-*.log")
    data = bytearray(wal.read_bytes())
    at = data.index(b"marker")
    data[at] ^= 0x01
    wal.write_bytes(bytes(data))


def _garble_cluster_json(data_dir: Path) -> None:
    (data_dir / "cluster.json").write_text('{"cluster_id": ')


@pytest.mark.parametrize("damage, names", [
    (_flip_in_the_middle_of_the_log, "is damaged: wal-0000000000000001.log: damaged or incomplete frame at offset"),
    (_garble_cluster_json, "is damaged: cluster.json is not the cluster identity qcore writes"),
])
async def test_a_damaged_data_dir_is_one_line_naming_the_file_and_how_to_bring_the_node_back(
        nodes, damage, names: str) -> None:
    n: NodeProc = nodes(1, "--init")
    n.start()
    await wait_serving(n)
    await wait_ready(n)
    c = await Conn.open(n.addr)
    for name in ("before", "marker", "after-1", "after-2"):  # one frame each
        r = await c.perform({"CreateEntity": {"entity_type": "Folder", "parent_id": eid("Root", 1), "name": name}})
        assert r["CreateEntity"]["error"] is None, r
    await c.close()
    assert n.terminate() == 0
    damage(n.data_dir)

    log_before = n.log_path.stat().st_size
    n.extra = []
    n.start()
    assert n.proc is not None
    assert n.proc.wait(20) == 1, n.log_tail()
    out = n.log_path.read_bytes()[log_before:].decode()
    assert "Traceback" not in out, out
    fatal = [line for line in out.splitlines() if line.startswith("qcore:")]
    assert len(fatal) == 1, out
    assert fatal[0].startswith(f"qcore: data dir {n.data_dir.resolve()} {names}"), fatal[0]
    assert "qcore-cli remove-node 1" in fatal[0] and "qcore snapshot restore" in fatal[0], fatal[0]
