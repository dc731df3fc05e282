"""The scale bench's pieces against a real 1-node qcore and in-process: the
shapes fill the same data both ways, the flat-folder comparison runs, and
the in-process memory figures come out."""

from __future__ import annotations

from pathlib import Path

from qcore.bench.cluster import QcoreCluster
from qcore.bench.flat import run_flat
from qcore.bench.memory import measure
from qcore.bench.shapes import SHAPES, fill, fill_store
from qcore.bench.admin_conn import AdminConn


async def test_shapes_fill_a_node_as_they_fill_a_store_and_flat_folders_run(tmp_path: Path) -> None:
    cluster = QcoreCluster(1, tmp_path)
    await cluster.start()
    try:
        for name in ("tree4", "wide10"):
            ids = await fill(cluster.leader, SHAPES[name], 30)
            conn = await AdminConn.open(cluster.leader)
            try:
                typ, num = ids[0]
                reply = await conn.perform("UpdateEntity", request=[
                    {"Read": {"entity_id": {"typ": typ, "id": num}, "field_type": f, "value": None,
                              "write_time": None, "writer_id": None}}
                    for f in (["Name", "Parent", "Payload", "Counter"] if name == "tree4" else ["I0", "S1", "B0"])])
            finally:
                await conn.close()
            values = [r["Read"]["value"] for r in reply["response"]]
            assert all(v not in ({"String": ""}, {"EntityReference": None}) for v in values), values
        flat = await run_flat(cluster.leader, per_side=200, parents=10, block=50)
        assert flat["one_parent_per_s"] > 0 and flat["spread_per_s"] > 0 and flat["edge_entities"] == 100
    finally:
        cluster.stop()
    store = fill_store(SHAPES["tree4"], 30)
    assert store.entity_count() == 30 + SHAPES["tree4"].parents
    m = measure("wide10", 200)
    assert m["traced_bytes_per_entity"] > 0 and m["snapshot_bytes_per_entity"] > 0 and m["restore_s"] >= 0
