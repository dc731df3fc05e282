"""The example, the library and the CLI against one real node process (in memory, on loopback).

The multi-node behaviour (failover, kill -9, resume on another node) is
tested with the node's own tests; this checks that the client side speaks
the node's actual protocol.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qcore.cli import client as cli
from qcore.client import (
    Client,
    CommandError,
    InvalidValue,
    ServerError,
    notify_on_entity,
    read_request,
    write_request,
)
from qcore.protocol import messages as m
from qcore.store.types import Bool, EntityId, Int, String

REPO = Path(__file__).resolve().parents[2]


async def test_example_library_and_cli_against_a_real_node(
    node_addr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1. the seed's example client: Init a single-node cluster, then GetMetrics
    spec = importlib.util.spec_from_file_location("websocket_client_example", REPO / "examples" / "websocket_client.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    await example.main(node_addr)
    out = capsys.readouterr().out
    assert '"response": "Ok"' in out and '"GetMetricsResponse"' in out

    async with Client(node_addr, request_timeout=20) as c:
        # 2. management
        with pytest.raises(ServerError, match="already initialised"):
            await c.init()
        metrics = await c.metrics()
        assert metrics["id"] == 1 and metrics["current_leader"] == 1

        # 3. application helpers, with the store's types back
        assert "User" in await c.entity_types()
        folder = (await c.find("Folder", limit=1))[0]
        assert isinstance(folder, EntityId)
        user = await c.create("User", "zed", parent=folder)
        assert await c.entity_exists(user) is True
        watch = await c.watch(notify_on_entity(user, "LoginCount", context=["Name"]))
        await c.write(user, "LoginCount", 5)
        await c.write(user, "LoginCount", 2, adjust="Add")
        value, write_time, writer = await c.read(user, "LoginCount")
        assert value == Int(7) and write_time is not None and writer is None
        assert (await c.read(user, "Parent->Name"))[0] == String("Users")
        echoed = await c.update([write_request(user, "Active", False), read_request(user, "Active")])
        assert echoed[1].value == Bool(False)
        with pytest.raises(InvalidValue, match="LoginCount is an Int field: cannot use 'seven'"):
            await c.write(user, "LoginCount", "seven")
        # The node's own check, for a raw request: type mismatch.
        raw = await c.perform({"UpdateEntity": {"request": [write_request(user, "LoginCount", "seven")]}})
        assert "mismatch" in raw["UpdateEntity"]["error"]
        # command(): the same request's body, its error raised with its kind
        with pytest.raises(CommandError, match="mismatch") as bad:
            await c.command({"UpdateEntity": {"request": [write_request(user, "LoginCount", "seven")]}})
        assert bad.value.kind == "rejected"
        assert await c.command({"EntityExists": {"entity_id": {"typ": "User", "id": user.id}}}) == {"response": True}
        schema = await c.get_complete_schema("User")
        assert "LoginCount" in schema.fields and "Name" in schema.fields

        # 4. notifications: both writes, in order, with context
        first, second = await watch.get(10), await watch.get(10)
        assert (first.previous_value, first.current_value) == (Int(0), Int(5))
        assert second.current_value == Int(7) and second.log_index > first.log_index
        assert first.context == {"Name": String("zed")}
        await watch.close()

        # 5. raw: a malformed request gets an Error frame with its id, the connection stays usable
        with pytest.raises(ServerError, match="unknown message type|not a request"):
            await c.request(m.InitResponse("raw-1", "Ok"))
        await c.delete(user)
        assert await c.entity_exists(user) is False

    # 6. the CLI: the value is read by the field's schema type
    base = ["--addr", node_addr, "--timeout", "20"]
    assert await cli.run(cli.build_parser().parse_args([*base, "create", "User", "amy", "--parent", str(folder)])) == 0
    amy = capsys.readouterr().out.strip()
    assert await cli.run(cli.build_parser().parse_args([*base, "write", amy, "LoginCount", "42"])) == 0
    assert await cli.run(cli.build_parser().parse_args([*base, "read", amy, "LoginCount"])) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "Int 42"

    # 7. children, paged: the library walks every page, the CLI says how many there are in all
    async with Client(node_addr, request_timeout=20) as c:
        kids = list((await c.read(folder, "Children"))[0].v)
        assert len(kids) >= 2 and EntityId.parse(amy) in kids
        assert await c.children(folder, page_size=1) == kids
        assert await c.children(folder, limit=1) == kids[:1]
    assert await cli.run(cli.build_parser().parse_args([*base, "children", str(folder), "--limit", "1"])) == 0
    shown = capsys.readouterr()
    assert shown.out.splitlines() == [str(kids[0])]
    assert f"and {len(kids) - 1} more ({len(kids)} in all)" in shown.err
    assert await cli.run(cli.build_parser().parse_args([*base, "children", str(folder), "--page-size", "1"])) == 0
    assert capsys.readouterr().out.splitlines() == [str(k) for k in kids]

    # 8. exists, the schema as the node merges it, delete: each command's body, or its error and exit code 1
    assert await cli.run(cli.build_parser().parse_args([*base, "exists", amy])) == 0
    assert capsys.readouterr().out.strip() == "yes"
    assert await cli.run(cli.build_parser().parse_args([*base, "schema", "User", "--complete", "--json"])) == 0
    assert "LoginCount" in capsys.readouterr().out
    assert await cli.run(cli.build_parser().parse_args([*base, "delete", amy])) == 0
    assert await cli.run(cli.build_parser().parse_args([*base, "exists", amy])) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no"
    assert await cli.run(cli.build_parser().parse_args([*base, "create", "User", "x", "--parent", amy])) == 1
    assert "does not exist" in capsys.readouterr().err
