"""The node's server connection (qcore.node.ws_conn) and reply writer
(qcore.node.frames_out).

On a live node: messages reach the handler straight from the connection,
unfragmented and fragmented ones are both served, and a text frame that is
not UTF-8 gets an Error, connection open. In-process, against raw client
bytes: every well-formed message reaches the sink once, whole and in order,
whichever path it takes (unwrapped by the connection or parsed by
websockets), and frames a server must refuse are still refused the way
websockets refuses them."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from qcore.node.frames_out import write_frames
from qcore.node.ws_conn import SinkServerConnection
from tests.node.harness import wait_serving

MAX_SIZE = 4096


async def test_fragmented_and_whole_messages_are_both_served(nodes):
    n = nodes(1, "--init").start()
    await wait_serving(n)
    async with connect(f"ws://{n.addr}") as ws:
        frame = orjson.dumps({"GetMetrics": {"id": "fragmented"}}).decode()
        # An iterable sends one message as several frames (opcode CONT after the first).
        await ws.send([frame[:5], frame[5:12], frame[12:]])
        await ws.send(orjson.dumps({"GetMetrics": {"id": "whole"}}).decode())
        ids = set()
        for _ in range(2):
            reply = orjson.loads(await ws.recv())
            ids.add(reply["GetMetricsResponse"]["id"])
        assert ids == {"fragmented", "whole"}


async def test_text_frame_that_is_not_utf8_gets_an_error(nodes):
    n = nodes(1, "--init").start()
    await wait_serving(n)
    async with connect(f"ws://{n.addr}") as ws:
        await ws.send(b'{"GetMetrics": {"id": "\xff\xfe"}}', text=True)
        reply = orjson.loads(await ws.recv())
        assert "not valid UTF-8" in reply["Error"]["error"]
        await ws.send(orjson.dumps({"GetMetrics": {"id": "after"}}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["GetMetricsResponse"]["id"] == "after"



def client_frame(payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True)


@pytest.fixture
async def server():
    """A server whose connections record what reaches their sink and echo
    each message back with write_frames."""
    received: list[tuple[bytes, bool]] = []

    async def handler(ws: ServerConnection) -> None:
        def sink(data: bytes, text: bool) -> None:
            received.append((bytes(data), text))
            write_frames(ws, (b"echo:" + bytes(data),))

        assert isinstance(ws, SinkServerConnection)
        ws.sink = sink
        try:
            async for msg in ws:  # fragmented messages
                data = msg.encode() if isinstance(msg, str) else msg
                received.append((data, isinstance(msg, str)))
                write_frames(ws, (b"echo:" + data,))
        except ConnectionClosed:
            pass

    srv = await serve(handler, "127.0.0.1", 0, compression=None, max_size=MAX_SIZE,
                      create_connection=SinkServerConnection)
    port = srv.sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}", received
    srv.close()
    await srv.wait_closed()


async def recv_n(ws, n: int) -> list[bytes]:
    return [await asyncio.wait_for(ws.recv(decode=False), 5) for _ in range(n)]


async def test_every_message_arrives_once_whole_and_in_order(server):
    uri, received = server
    sizes = [0, 5, 125, 126, 1000, MAX_SIZE]
    async with connect(uri, compression=None, max_size=None) as ws:
        raw = ws.transport
        for n in sizes:  # one whole frame per write: unwrapped by the node
            raw.write(client_frame(b"a" * n))
        raw.write(client_frame(b"one") + client_frame(b"two"))  # two in one write
        split = client_frame(b"s" * 300)
        raw.write(split[:7])  # one frame over two writes
        await asyncio.sleep(0.01)
        raw.write(split[7:])
        raw.write(client_frame(b"\x00\x01", Opcode.BINARY))
        raw.write(client_frame(b"last"))
        # A fragmented message goes through websockets' assembler and the
        # handler task, so it is sent last: its order relative to the others
        # is not promised (see qcore.node.ws_conn).
        raw.write(client_frame(b"frag", fin=False) + client_frame(b"mented", Opcode.CONT))
        expected = [b"a" * n for n in sizes] + [b"one", b"two", b"s" * 300, b"\x00\x01", b"last", b"fragmented"]
        replies = await recv_n(ws, len(expected))
    assert [p for p, _ in received] == expected
    assert [t for _, t in received] == [True] * (len(sizes) + 3) + [False, True, True]
    assert replies == [b"echo:" + p for p in expected]


@pytest.mark.parametrize(
    "bad, code",
    [
        (Frame(Opcode.TEXT, b"unmasked").serialize(mask=False), 1002),
        (bytes([client_frame(b"rsv")[0] | 0x40]) + client_frame(b"rsv")[1:], 1002),
        (client_frame(b"x" * (MAX_SIZE + 1)), 1009),
    ],
    ids=["unmasked", "reserved-bit", "too-big"],
)
async def test_frames_websockets_refuses_are_still_refused(server, bad, code):
    uri, received = server
    async with connect(uri, compression=None, max_size=None) as ws:
        ws.transport.write(bad)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert received == []


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
async def test_write_frames_from_a_server_reads_back_whole(size):
    payloads = [bytes([65 + i % 26]) * size for i in range(3)]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        assert write_frames(ws, payloads)
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, compression=None)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
            await ws.send("go")
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in payloads]
    finally:
        srv.close()
        await srv.wait_closed()
    assert got == [p.decode() for p in payloads]  # text frames
