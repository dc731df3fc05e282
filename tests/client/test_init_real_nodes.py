"""``Client.init`` of several real nodes: it returns once every member is in (any node
serves the next request at once), or says which member is not in yet; ``qcore-cli
init`` shares this wait (tests/node/test_cli_init.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qcore.client import Client, Formation
from qcore.client.errors import ServerError
from tests.node.harness import Conn, NodeProc, wait_serving


async def test_init_of_several_nodes_returns_once_every_member_is_in(nodes: Callable[..., NodeProc]) -> None:
    ns = [nodes(i).start() for i in (1, 2, 3)]
    for n in ns:
        await wait_serving(n)
    async with Client([ns[0].addr]) as c:
        formed = await c.init({n.id: n.addr for n in ns})
    for n in ns:  # right away: each member knows the cluster and its leader
        conn = await Conn.open(n.addr)
        try:
            mt = await conn.metrics()
        finally:
            await conn.close()
        assert mt["initialised"] and mt["current_leader"] == 1, (n.id, mt)
    assert formed == Formation(leader=1, not_in={}) and formed.complete
    async with Client([ns[2].addr]) as c3:  # a write on node 3 first thing
        group = await c3.create("Group", "made-on-3", parent="Root$1")
    async with Client([ns[1].addr]) as c2:
        assert await c2.read_value(group, "Name") == "made-on-3"


async def test_init_says_which_member_is_not_in_yet(nodes: Callable[..., NodeProc]) -> None:
    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns[:2]:  # node 3 is never started
        n.start()
        await wait_serving(n)
    async with Client([ns[0].addr]) as c:
        formed = await c.init([(n.id, n.addr) for n in ns], timeout=3)
        assert formed.leader == 1 and not formed.complete
        assert list(formed.not_in) == [3] and formed.not_in[3].startswith("unreachable"), formed
        assert (await c.metrics())["current_leader"] == 1  # initialised all the same: nodes 1 and 2 serve


async def test_init_with_an_admin_password_waits_for_every_member_too(nodes: Callable[..., NodeProc]) -> None:
    """Users are on once Init's first entry is applied, and the connection that sent Init has
    not logged in: init watches the members as the admin it made, and its own connection stays
    without a user."""
    pw = "init-admin-pw"
    ns = [nodes(i).start() for i in (1, 2, 3)]
    for n in ns:
        await wait_serving(n)
    async with Client([ns[0].addr]) as c:
        formed = await c.init({n.id: n.addr for n in ns}, admin_password=pw)
        assert c.user is None and c.identity is None  # not logged in by init
        with pytest.raises(ServerError) as refused:
            await c.metrics()
        assert refused.value.kind == "auth_required"
    assert formed == Formation(leader=1, not_in={}) and formed.complete
    for n in ns:  # right away: each member takes the admin's login and knows the cluster and its leader
        conn = await Conn.login(n.addr, "admin", pw)
        try:
            mt = await conn.metrics()
        finally:
            await conn.close()
        assert mt["initialised"] and mt["current_leader"] == 1, (n.id, mt)
    async with Client([ns[2].addr], user="admin", password=pw) as c3:  # a write on node 3 first thing
        group = await c3.create("Group", "made-on-3", parent="Root$1")
    async with Client([ns[1].addr], user="admin", password=pw) as c2:
        assert await c2.read_value(group, "Name") == "made-on-3"
