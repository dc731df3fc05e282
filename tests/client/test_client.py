"""The client against scripted fake nodes over real WebSockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qcore.client import (
    Client,
    CommandError,
    ConnectionFailed,
    Formation,
    NotLeader,
    RequestTimeout,
    ServerError,
    UnknownOutcome,
    read_request,
    write_request,
)
from qcore.protocol import messages as m
from qcore.protocol import ops
from qcore.protocol.errors import Kind, error, refusal
from qcore.store.types import Bool, EntityId, Int, String, Timestamp
from tests.client.fake_node import FakeNode

FAST = {"request_timeout": 2.0, "attempt_timeout": 0.5, "connect_timeout": 1.0}


@pytest.fixture
async def nodes() -> AsyncIterator[list[FakeNode]]:
    started = [FakeNode(1), FakeNode(2)]
    for n in started:
        await n.start()
    yield started
    for n in started:
        await n.stop()


def free_address() -> str:
    """An address nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def is_write(msg: Any) -> bool:
    return type(msg) is m.Perform and "Write" in str(msg.request)


def is_schema_lookup(msg: Any) -> bool:
    """The client reads a type's schema before its first write of the type, to fit values to fields."""
    return type(msg) is m.Perform and "GetCompleteSchema" in msg.request


# ------------------------------------------------------------------ basics


async def test_raw_request_and_seed_shapes(nodes: list[FakeNode]) -> None:
    async with Client([nodes[0].address], **FAST) as c:
        reply = await c.request(m.Init("req-123", []))
        assert reply == m.InitResponse("req-123", "Ok")
        reply = await c.request(m.GetMetrics(7))
        assert type(reply) is m.GetMetricsResponse and reply.id == 7 and reply.response["id"] == 1


async def test_pipelining_with_out_of_order_replies(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    n = 20
    held: list[tuple[Any, Any]] = []
    all_in = asyncio.Event()

    async def hold_then_reverse(fn: FakeNode, ws: Any, msg: Any) -> Any:
        held.append((ws, msg))
        if len(held) == n:
            all_in.set()
        return None

    for i in range(n):
        node.fields[("User", i, "Age")] = ({"Int": i}, None, None)
    node.behaviour = hold_then_reverse
    async with Client([node.address], **FAST) as c:
        reads = [asyncio.create_task(c.read(f"User${i}", "Age")) for i in range(n)]
        await all_in.wait()  # every request is in flight on the one connection at once
        assert len(node.connections) == 1
        for ws, msg in reversed(held):
            await node.send(ws, await FakeNode.serve_store(node, ws, msg))
        values = await asyncio.gather(*reads)
    assert [v for v, _, _ in values] == [Int(i) for i in range(n)]


async def test_helpers_against_the_fake_store(nodes: list[FakeNode]) -> None:
    async with Client(nodes[0].address, **FAST) as c:
        folder = await c.create("Folder", "Users")
        users = [await c.create("User", f"u{i}", parent=folder) for i in range(7)]
        assert users[0] == EntityId("User", 2)
        await c.write(users[0], "Email", "a@b.c")
        value, wt, writer = await c.read("User$2", "Email")
        assert value == String("a@b.c") and wt == Timestamp(1, 0) and writer is None
        await c.write(users[1], "Score", Int(5), writer_id=users[0], write_time=Timestamp(9, 5))
        assert await c.read(users[1], "Score") == (Int(5), Timestamp(9, 5), EntityId("User", 2))
        await c.write(users[1], "Score", {"Int": 6}, writer_id="User$2", write_time=(9, 6))
        assert await c.read(users[1], "Score") == (Int(6), Timestamp(9, 6), EntityId("User", 2))
        echoed = await c.update([write_request(users[2], "Flag", True), read_request(users[2], "Flag")])
        assert echoed[1].value == Bool(True)
        assert await c.find("User", page_size=3) == users  # three pages
        assert await c.find("User", limit=4) == users[:4]
        assert await c.entity_types() == ["Folder", "User"]
        assert await c.entity_exists(users[3]) is True
        assert await c.field_exists("User", "Name") is True
        await c.delete(users[3])
        assert await c.entity_exists(users[3]) is False
        with pytest.raises(CommandError, match="entity not found"):
            await c.delete(users[3])
        with pytest.raises(CommandError, match="no field"):
            await c.read(users[4], "Nope")
        assert (await c.get_schema("User")).entity_type == "User"
        await c.set_schema({"entity_type": "X", "inherit": None, "fields": {}})
        assert (await c.metrics())["state"] == "Leader"
        await c.init()
        assert await c.add_learner(2, "127.0.0.1:1") == {"log_index": 11}
        await c.change_membership([1, 2])
    sent = nodes[0].of_type(m.ChangeMembership)[0]
    assert sent.members == [1, 2] and sent.retain is False


async def test_init_waits_for_its_answer_as_long_as_its_timeout_says(nodes: list[FakeNode]) -> None:
    # c.init(timeout=T) bounds Init and the members' wait together by T, also when T is longer
    # than request_timeout: Init alone was cut at request_timeout (UnknownOutcome), a timeout
    # given to say "this node is slow to take it" notwithstanding.
    async def slow_init(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.Init:
            await asyncio.sleep(3 * FAST["request_timeout"])  # a node slow to answer (a large config file)
        return await FakeNode.serve_store(fn, ws, msg)

    nodes[0].behaviour = slow_init
    async with Client([nodes[0].address], **FAST) as c:
        assert await c.init(timeout=10 * FAST["request_timeout"]) == Formation()
    assert len(nodes[0].of_type(m.Init)) == 1


async def test_init_says_which_member_is_not_in_when_its_deadline_cuts_a_poll_short(nodes: list[FakeNode]) -> None:
    # The node asks each member for 1.5 s (a host that is down drops the packets): the deadline
    # comes while a GetClusterMetrics is in flight. init said Formation() ("every member in")
    # then, and qcore-cli init nothing of the missing member; it says how it stood at the last poll.
    polls: list[Any] = []
    never = asyncio.Event()

    async def forming(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is ops.GetClusterMetrics:
            polls.append(msg)
            if len(polls) > 1:
                await never.wait()  # answered after the client's deadline, if ever
            members = [{"id": 1, "addr": fn.address, "kind": "voter", "error": None,
                        "metrics": {"state": "Leader", "current_leader": 1, "commit_index": 2, "last_applied": 2}},
                       {"id": 3, "addr": "10.0.0.3:8080", "kind": "voter", "metrics": None,
                        "error": "unreachable: no answer within 1.5 s"}]
            return ops.GetClusterMetricsResponse(msg.id, m.ok({"members": members, "leader": 1}))
        return await FakeNode.serve_store(fn, ws, msg)

    nodes[0].behaviour = forming
    async with Client([nodes[0].address], **FAST) as c:
        formed = await c.init({1: nodes[0].address, 3: "10.0.0.3:8080"}, timeout=1.0)
    assert len(polls) > 1  # the deadline came during a poll
    assert formed == Formation(leader=1, not_in={3: "unreachable: no answer within 1.5 s"}), formed
    assert not formed.complete


async def test_error_frame_raises_server_error_and_err_union_raises_for_helpers(nodes: list[FakeNode]) -> None:
    async def refuse(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.Init:
            return m.InitResponse(msg.id, m.err("already initialised"))
        return m.Error(msg.id, "Perform.request: expected object, got array")

    nodes[0].behaviour = refuse
    async with Client([nodes[0].address], **FAST) as c:
        with pytest.raises(ServerError, match="expected object"):
            await c.metrics()
        with pytest.raises(ServerError, match="already initialised"):
            await c.init()
        # the raw API hands the union back untouched
        assert (await c.request(m.Init("x", []))).response == {"Err": "already initialised"}
    assert len(nodes[0].received) == 3  # nothing was retried


# ------------------------------------------------------------------ connecting


async def test_connects_to_the_second_address_when_the_first_is_down(nodes: list[FakeNode]) -> None:
    async with Client([free_address(), nodes[1].address], **FAST) as c:
        assert c.address == nodes[1].address
        assert (await c.metrics())["id"] == 2


async def test_connection_failed_when_nobody_listens() -> None:
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await Client.connect([free_address(), free_address()], **FAST)


# ------------------------------------------------------------------ retries


async def test_read_is_retried_on_the_next_node_after_connection_loss(nodes: list[FakeNode]) -> None:
    a, b = nodes

    async def drop(fn: FakeNode, ws: Any, msg: Any) -> Any:
        ws.transport.abort()
        return None

    a.behaviour = drop
    b.fields[("User", 1, "Name")] = ({"String": "bob"}, None, None)
    async with Client([a.address, b.address], **FAST) as c:
        assert c.address == a.address
        value, _, _ = await c.read("User$1", "Name")
        assert value == String("bob")
        assert c.address == b.address
    assert len(a.of_type(m.Perform)) == 1 and len(b.of_type(m.Perform)) == 1


async def test_write_is_not_resent_after_connection_loss(nodes: list[FakeNode]) -> None:
    a, b = nodes

    async def drop_writes(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if not is_write(msg):
            return await FakeNode.serve_store(fn, ws, msg)
        ws.transport.abort()
        return None

    a.behaviour = drop_writes
    async with Client([a.address, b.address], **FAST) as c:
        with pytest.raises(UnknownOutcome, match="may or may not"):
            await c.write("User$1", "Name", "x")
        # the client is still usable: the next request goes to the other node
        await c.metrics()
    assert len([r for r in a.received if is_write(r)]) == 1
    assert not [r for r in b.received if is_write(r)]


async def test_write_is_resent_with_retry_writes(nodes: list[FakeNode]) -> None:
    a, b = nodes

    async def drop(fn: FakeNode, ws: Any, msg: Any) -> Any:
        ws.transport.abort()
        return None

    a.behaviour = drop
    async with Client([a.address, b.address], retry_writes=True, **FAST) as c:
        await c.write("User$1", "Name", "x")
    assert len([r for r in b.received if is_write(r)]) == 1
    assert b.fields[("User", 1, "Name")][0] == {"String": "x"}


async def test_a_resent_write_that_may_have_been_applied_ends_in_unknown_outcome(nodes: list[FakeNode]) -> None:
    """With retry_writes, a write whose first attempt was applied (the reply was lost) never
    ends in an error that says "not applied" or "not sent": NotLeader from the next node, or
    no node left to reach, become UnknownOutcome."""
    a, b = nodes

    async def apply_then_drop(fn: FakeNode, ws: Any, msg: Any) -> Any:
        reply = await FakeNode.serve_store(fn, ws, msg)
        if not is_write(msg):
            return reply
        ws.transport.abort()  # applied, and the reply is lost with the connection
        return None

    async def leaderless(fn: FakeNode, ws: Any, msg: Any) -> Any:
        return error(msg.id, Kind.NO_LEADER, "no leader: none elected") if is_write(msg) else \
            await FakeNode.serve_store(fn, ws, msg)

    a.behaviour, b.behaviour = apply_then_drop, leaderless
    async with Client([a.address, b.address], retry_writes=True, **FAST) as c:
        with pytest.raises(UnknownOutcome, match="may have been applied") as info:
            await c.write("User$1", "Name", "x")
        assert isinstance(info.value.__cause__, NotLeader)
        assert a.fields[("User", 1, "Name")][0] == {"String": "x"}  # it was applied
        assert [r for r in b.received if is_write(r)]  # and sent again

        a.fields.clear()
        await b.stop()  # nobody left to send it again to
        a.behaviour = apply_then_drop
        with pytest.raises(UnknownOutcome, match="may have been applied") as info:
            await c.write("User$1", "Name", "y")
        assert isinstance(info.value.__cause__, ConnectionFailed | RequestTimeout)
        assert a.fields[("User", 1, "Name")][0] == {"String": "y"}


async def test_timeouts_read_raises_request_timeout_write_raises_unknown_outcome(nodes: list[FakeNode]) -> None:
    async def silent(fn: FakeNode, ws: Any, msg: Any) -> Any:
        return await FakeNode.serve_store(fn, ws, msg) if is_schema_lookup(msg) else None

    node = nodes[0]
    node.behaviour = silent
    async with Client([node.address], request_timeout=0.6, attempt_timeout=0.2, connect_timeout=1.0) as c:
        with pytest.raises(RequestTimeout, match="no reply"):
            await c.read("User$1", "Name")
        reads = len(node.received)
        assert reads >= 2  # the read was sent again within its deadline
        await c.field_types("User")  # the schema lookup a write makes first: answered
        with pytest.raises(UnknownOutcome, match="no reply"):
            await c.write("User$1", "Name", "x")
    assert len([r for r in node.received if is_write(r)]) == 1


async def test_a_dead_connection_is_replaced_by_one_to_the_next_node(nodes: list[FakeNode]) -> None:
    a, b = nodes

    async def stuck(fn: FakeNode, ws: Any, msg: Any) -> Any:
        ws.transport.pause_reading()  # like a node whose process hangs: not even pings are answered
        return None

    a.behaviour = stuck
    async with Client([a.address, b.address], request_timeout=3.0, attempt_timeout=0.2, connect_timeout=0.5) as c:
        assert (await c.metrics())["id"] == 2
        assert c.address == b.address


async def test_a_slow_node_keeps_its_live_connection(nodes: list[FakeNode]) -> None:
    """A node that answers pings is kept (it may be waiting for an election); the read is sent again on it."""
    a, b = nodes
    answered = asyncio.Event()

    async def slow_first(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if len(fn.of_type(m.GetMetrics)) < 3:
            return None
        answered.set()
        return await FakeNode.serve_store(fn, ws, msg)

    a.behaviour = slow_first
    async with Client([a.address, b.address], request_timeout=5.0, attempt_timeout=0.2, connect_timeout=1.0) as c:
        assert (await c.metrics())["id"] == 1
        assert c.address == a.address and answered.is_set()
    assert not b.received


async def test_a_ping_the_deadline_cut_short_does_not_drop_the_connection(nodes: list[FakeNode]) -> None:
    """Only a ping unanswered for all of ``connect_timeout`` proves a connection dead: one cut
    short by the request's deadline ends the request, and the connection is kept."""
    node = nodes[0]
    async with Client([node.address], request_timeout=0.6, attempt_timeout=0.3, connect_timeout=30.0) as c:
        assert (await c.metrics())["id"] == 1
        (ws,) = node.connections
        ws.transport.pause_reading()  # the node is busy: neither the read nor the ping is read before the deadline
        with pytest.raises(RequestTimeout, match="no reply"):
            await c.metrics()
        ws.transport.resume_reading()
        assert (await c.metrics())["id"] == 1
        assert node.connections == [ws]  # answered on the connection it had


async def test_write_follows_not_leader_to_the_named_leader(nodes: list[FakeNode]) -> None:
    a, b = nodes

    async def follower(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if is_write(msg):
            return error(msg.id, Kind.NOT_LEADER, f"not leader; leader is 2 at {b.address}", leader_id=2,
                         leader_addr=b.address)
        return await FakeNode.serve_store(fn, ws, msg)

    a.behaviour = follower
    async with Client([a.address], **FAST) as c:
        await c.write("User$1", "Name", "x")
        assert c.address == b.address
        assert b.address in c.addresses
    assert len([r for r in a.received if is_write(r)]) == 1
    assert len([r for r in b.received if is_write(r)]) == 1


async def test_write_waits_out_no_leader_then_succeeds(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    refusals = 3

    async def electing(fn: FakeNode, ws: Any, msg: Any) -> Any:
        nonlocal refusals
        if is_write(msg) and refusals:
            refusals -= 1
            return error(msg.id, Kind.NO_LEADER, "no leader elected within 1s")
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = electing
    async with Client([node.address], **FAST) as c:
        await c.write("User$1", "Name", "x")
    assert len([r for r in node.received if is_write(r)]) == 4


async def test_no_leader_until_the_deadline_raises_not_leader(nodes: list[FakeNode]) -> None:
    async def leaderless(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if is_schema_lookup(msg):
            return await FakeNode.serve_store(fn, ws, msg)
        return error(msg.id, Kind.NO_LEADER, "no leader: none elected")

    nodes[0].behaviour = leaderless
    async with Client([nodes[0].address], request_timeout=0.3, attempt_timeout=0.2, connect_timeout=1.0) as c:
        with pytest.raises(NotLeader) as info:
            await c.read("User$1", "Name")
        with pytest.raises(NotLeader) as info:  # the node said "not applied": never an unknown outcome
            await c.write("User$1", "Name", {"String": "x"})
    assert info.value.leader_id is None and info.value.kind == "no_leader"
    assert len([r for r in nodes[0].received if is_write(r)]) >= 1


async def test_not_initialised_tries_the_other_nodes_then_gives_up(nodes: list[FakeNode]) -> None:
    async def fresh(fn: FakeNode, ws: Any, msg: Any) -> Any:
        return error(msg.id, Kind.NOT_INITIALISED, "node is not initialised: send Init, or add it to a cluster")

    for n in nodes:
        n.behaviour = fresh
    async with Client([n.address for n in nodes], **FAST) as c:
        with pytest.raises(ServerError, match="not initialised"):
            await c.create("User", "x")
    assert len(nodes[0].received) == 1 and len(nodes[1].received) == 1


async def test_requests_in_flight_on_a_retired_connection_still_get_their_replies(nodes: list[FakeNode]) -> None:
    a, b = nodes
    slow_in = asyncio.Event()
    release = asyncio.Event()

    async def follower(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.GetMetrics:
            slow_in.set()
            await release.wait()
            return m.GetMetricsResponse(msg.id, {"id": 1})
        return error(msg.id, Kind.NOT_LEADER, f"not leader; leader is 2 at {b.address}", leader_id=2,
                     leader_addr=b.address)

    a.behaviour = follower
    async with Client([a.address], **FAST) as c:
        slow = asyncio.create_task(c.metrics())
        await slow_in.wait()
        await c.create("User", "x")  # moves the client to b
        assert c.address == b.address
        release.set()
        assert (await slow)["id"] == 1


async def test_unknown_outcome_reply_fails_a_write_but_a_read_is_retried(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    unknown = 1

    async def flaky(fn: FakeNode, ws: Any, msg: Any) -> Any:
        nonlocal unknown
        if type(msg) is m.Perform and not is_schema_lookup(msg) and unknown:
            unknown -= 1
            return error(msg.id, Kind.OUTCOME_UNKNOWN, "the leader at 127.0.0.1:9 did not answer within 10s")
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = flaky
    node.fields[("User", 1, "Name")] = ({"String": "bob"}, None, None)
    async with Client([node.address], **FAST) as c:
        with pytest.raises(UnknownOutcome, match="did not answer"):
            await c.write("User$1", "Name", "x")
        unknown = 1
        assert (await c.read("User$1", "Name"))[0] == String("bob")
    assert len([r for r in node.received if is_write(r)]) == 1
    assert len(node.of_type(m.Perform)) == 4  # the schema, the write, the read twice


async def test_close_ends_a_request_that_is_still_connecting_and_leaves_no_connection() -> None:
    """close() while a request waits for a connection (here a node that accepts TCP and never
    completes the handshake): the request fails at once with ConnectionFailed, and the
    half-made connection is dropped instead of outliving the closed client."""
    dialled = asyncio.Event()
    dropped = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dialled.set()
        await reader.read()  # until the client hangs up
        dropped.set()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        c = Client([f"127.0.0.1:{port}"], request_timeout=60, connect_timeout=30)
        pending = asyncio.create_task(c.read("User$1", "Name"))
        await dialled.wait()
        await c.close()
        with pytest.raises(ConnectionFailed, match="client is closed"):
            await asyncio.wait_for(pending, 10)  # not after its 60 s deadline
        await asyncio.wait_for(dropped.wait(), 10)  # not after the 30 s handshake timeout
        assert c.address is None
    finally:
        server.close()


async def test_a_cancelled_request_frees_its_id(nodes: list[FakeNode]) -> None:
    arrived = asyncio.Event()

    async def silent(fn: FakeNode, ws: Any, msg: Any) -> Any:
        arrived.set()
        return None

    nodes[0].behaviour = silent
    async with Client([nodes[0].address], **FAST) as c:
        task = asyncio.create_task(c.request(m.GetMetrics("same-id")))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        nodes[0].behaviour = FakeNode.serve_store
        # the id may be used again at once: nothing is left waiting for it
        assert (await c.request(m.GetMetrics("same-id"))).id == "same-id"


async def test_a_command_error_is_final_even_if_its_text_looks_retryable(nodes: list[FakeNode]) -> None:
    async def store_error(fn: FakeNode, ws: Any, msg: Any) -> Any:
        return m.PerformResponse(msg.id, {"UpdateEntity": {"response": [], "error": "request[0]: no field 'no leader'"}})

    nodes[0].behaviour = store_error
    async with Client([nodes[0].address], **FAST) as c:
        with pytest.raises(CommandError, match="no field"):
            await c.write("User$1", "no leader", "x")
    assert len([r for r in nodes[0].received if is_write(r)]) == 1


async def test_connect_to_leader_follows_metrics(nodes: list[FakeNode]) -> None:
    a, b = nodes
    a.metrics = {"id": 1, "state": "Follower", "current_leader": 2,
                 "membership_config": {"configs": [[1, 2]], "nodes": {"1": a.address, "2": b.address}}}
    c = await Client.connect(a.address, **FAST)
    try:
        assert c.address == a.address
        assert await c.connect_to_leader() == b.address
        assert c.address == b.address
        assert c.addresses == [a.address, b.address]  # learned from the membership
        assert (await c.metrics())["id"] == 2
    finally:
        await c.close()


def test_client_and_connect_declare_every_keyword_argument_for_type_checkers() -> None:
    """`Client(addrs, request_timeout=..., user=...)` is checked by mypy: its options are a
    TypedDict equal to Session.__init__'s keyword arguments, not `**options: Any`."""
    import inspect
    import typing

    from qcore.client.session import Session, SessionOptions

    params = inspect.signature(Session.__init__).parameters
    session_hints = typing.get_type_hints(Session.__init__)
    keywords = {n: session_hints[n] for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert typing.get_type_hints(SessionOptions) == keywords
    for f in (Client.__init__, Client.connect):
        assert typing.get_type_hints(f, include_extras=True)["options"] == typing.Unpack[SessionOptions], f
