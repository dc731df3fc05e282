"""Which config file a node bootstraps with, and that only bootstrapping reads it (issue 17,
point 3): outside a checkout a node starts with the schema shipped in the package; a node
that joins, or restarts initialised, needs no file at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.node.bootstrap_config import load_bootstrap_config, packaged_config_text
from qcore.store.config import ConfigError, load_config
from tests.node.harness import Conn, read, wait_serving, wait_until
from tests.node.test_cluster import leader_of

REPO = Path(__file__).resolve().parents[2]


def test_the_packaged_schema_is_package_data_and_is_what_the_repository_ships() -> None:
    text = packaged_config_text()  # importlib.resources: works from a wheel as from a checkout
    assert text == (REPO / "schemas.yaml").read_text()
    cfg, source = load_bootstrap_config(None, cwd=Path("/"))
    assert "shipped with qcore" in source
    assert cfg == load_config(REPO / "schemas.yaml")


def test_the_working_directory_file_comes_before_the_packaged_one(tmp_path: Path) -> None:
    (tmp_path / "schemas.yaml").write_text("schemas: []\ntree: []\n")
    cfg, source = load_bootstrap_config(None, cwd=tmp_path)
    assert (cfg.schemas, cfg.tree) == ([], []) and "working directory" in source
    with pytest.raises(ConfigError, match="not found"):
        load_bootstrap_config(tmp_path / "nope.yaml", cwd=tmp_path)


async def test_nodes_outside_the_repository_need_no_config_file_except_to_initialise(nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    config = dirs[0] / "plant.yaml"
    config.write_text((REPO / "schemas.yaml").read_text())
    # Node 1 initialises with the package's schema (no file anywhere), node 2 joins with none either.
    one = nodes(1, "--init", config_file=None, cwd=dirs[0]).start()
    two = nodes(2, config_file=None, cwd=dirs[1]).start()
    for n in (one, two):
        await wait_serving(n)
    assert "shipped with qcore" in one.log_tail()
    conns = [await Conn.open(n.addr) for n in (one, two)]
    reply = await conns[0].call("AddLearner", node_id=2, node_addr=two.addr, timeout=60)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    # The joined node has the schemas and tree from the log: Folder$2 is "Users".
    r = await conns[1].perform({"UpdateEntity": {"request": [read({"typ": "Folder", "id": 2}, "Name")]}})
    assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"String": "Users"}, r

    # An initialised node restarted with a --config-file that is gone does not read it.
    await conns[0].close()
    assert one.terminate() == 0
    config.unlink()
    one.config_file = config
    one.start()
    await wait_serving(one)
    conns[0] = await Conn.open(one.addr)
    assert await wait_until(lambda: leader_of(conns[:1]), what="node 1 to lead again") == 1
    for c in conns:
        await c.close()
