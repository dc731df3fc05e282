"""The websockets fast paths (qcore.wsfast): qcore's own framing of the
common WebSocket frame agrees byte for byte with websockets' (RFC 6455) and
leaves every other frame to websockets; the sink connection hands every
message over once, whole and in order, and refuses what websockets refuses;
and with the fast paths off (another websockets, or QCORE_WS_FASTPATH=0)
the same calls work through websockets' public API. The connection tests
run over TLS too, where reads reach the connection through a reused buffer
(wsfast.TlsReadBuffer)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from qcore import wsfast
from qcore.bench.conns import WsConn
from qcore.local_tls import LocalTls, make_local_tls
from qcore.wsfast import SinkServerConnection, masked_text_frame, text_header, whole_frame, write_frames

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def parse(data: bytes, mask: bool) -> Frame:
    """One frame through websockets' own parser, which must use every byte."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = Frame.parse(reader.read_exact, mask=mask)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert not reader.buffer
    return stop.value.value


def payload_of(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_text_header_and_payload_are_what_websockets_parses(size):
    frame = parse(text_header(size) + payload_of(size), mask=False)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload_of(size))


@pytest.mark.parametrize("size", SIZES)
def test_masked_text_frame_is_what_websockets_parses(size):
    frame = parse(masked_text_frame(payload_of(size), b"\x01\x02\x03\x04"), mask=True)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload_of(size))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("masked", [True, False])
def test_whole_frame_unwraps_what_websockets_builds(size, opcode, masked):
    data = Frame(opcode, payload_of(size)).serialize(mask=masked)
    assert whole_frame(data, masked) == (payload_of(size), opcode is Opcode.TEXT)


def test_whole_frame_keeps_to_the_size_limit():
    data = Frame(Opcode.TEXT, b"x" * 1000).serialize(mask=True)
    assert whole_frame(data, True, 1000) == (b"x" * 1000, True)
    assert whole_frame(data, True, 999) is None  # websockets refuses it (1009)


def _client(payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81",
        _client(b"hello")[:-1],  # truncated
        _client(b"a" * 300)[:5],  # extended length cut short
        _client(b"one") + _client(b"two"),  # two frames in one read
        Frame(Opcode.TEXT, b"unmasked").serialize(mask=False),  # a client must mask
        _client(b"part", fin=False),  # first fragment
        _client(b"rest", Opcode.CONT),
        _client(b"", Opcode.PING),
        _client(b"\x03\xe8", Opcode.CLOSE),
        bytes([_client(b"rsv")[0] | 0x40]) + _client(b"rsv")[1:],  # RSV1 without an extension
    ],
    ids=["empty", "one-byte", "truncated", "short-length", "two-frames", "unmasked", "fragment",
         "continuation", "ping", "close", "rsv1"],
)
def test_whole_frame_leaves_everything_else_to_websockets(data):
    assert whole_frame(data, True) is None


def test_a_server_frame_is_not_taken_for_a_client_one_or_back():
    assert whole_frame(Frame(Opcode.TEXT, b"x").serialize(mask=False), True) is None
    assert whole_frame(Frame(Opcode.TEXT, b"x").serialize(mask=True), False) is None


# -- the sink connection and the reply writer, in-process ------------------------

MAX_SIZE = 4096


def client_frame(payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True)


needs_fast = pytest.mark.skipif(not wsfast.FAST, reason=f"fast paths off: {wsfast.WHY_NOT}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(Path(tmp_path_factory.mktemp("wsfast-tls")))


class Tls:
    """How the tests' servers and clients connect: plain (``ws``) or over
    TLS (``wss``, a CA made for the test)."""

    def __init__(self, certs: LocalTls | None) -> None:
        self.scheme = "wss" if certs is not None else "ws"
        self.server: ssl.SSLContext | None = None
        self.client: ssl.SSLContext | None = None
        if certs is not None:
            self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server.load_cert_chain(certs.cert, certs.key)
            self.client = certs.client()

    def uri(self, srv: websockets.Server) -> str:
        return f"{self.scheme}://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


@pytest.fixture(params=["ws", "wss"])
def tls(request: pytest.FixtureRequest, certs: LocalTls) -> Tls:
    return Tls(certs if request.param == "wss" else None)


@pytest.fixture
async def server(tls: Tls):
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
                      create_connection=SinkServerConnection, ssl=tls.server)
    yield tls.uri(srv), received
    srv.close()
    await srv.wait_closed()


async def recv_n(ws, n: int) -> list[bytes]:
    return [await asyncio.wait_for(ws.recv(decode=False), 5) for _ in range(n)]


@needs_fast
async def test_every_message_arrives_once_whole_and_in_order(server, tls):
    uri, received = server
    sizes = [0, 5, 125, 126, 1000, MAX_SIZE]
    async with connect(uri, compression=None, max_size=None, ssl=tls.client) as ws:
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
        # is not promised.
        raw.write(client_frame(b"frag", fin=False) + client_frame(b"mented", Opcode.CONT))
        expected = [b"a" * n for n in sizes] + [b"one", b"two", b"s" * 300, b"\x00\x01", b"last", b"fragmented"]
        replies = await recv_n(ws, len(expected))
    assert [p for p, _ in received] == expected
    assert [t for _, t in received] == [True] * (len(sizes) + 3) + [False, True, True]
    assert replies == [b"echo:" + p for p in expected]


@needs_fast
async def test_tls_reads_go_through_a_reused_buffer_and_stay_apart(server, tls):
    """Over TLS the transport fills wsfast's buffer (a buffered protocol) and
    each connection still gets exactly its own bytes; plain TCP transports
    keep their own reads. The bench's reply client reads the same way."""
    uri, received = server
    conns = [await WsConn.open(uri.split("://", 1)[1], tls.client) for _ in range(4)]
    try:
        for c in conns:
            proto = c._ws.transport.get_protocol()  # noqa: SLF001
            assert isinstance(proto, asyncio.BufferedProtocol) == (tls.client is not None)
        for rnd in range(3):
            frames = [b"%d-%d:" % (i, rnd) + bytes([65 + i]) * (100 * i + rnd) for i in range(len(conns))]
            replies = await asyncio.gather(*(c.call(f) for c, f in zip(conns, frames)))
            assert replies == [b"echo:" + f for f in frames]
        # websockets' own client connection (peer links, the client library) reads the same way
        async with connect(uri, compression=None, ssl=tls.client, create_connection=wsfast.TlsClientConnection) as ws:
            assert isinstance(ws.transport.get_protocol(), asyncio.BufferedProtocol) == (tls.client is not None)
            await ws.send("through websockets")
            assert await asyncio.wait_for(ws.recv(), 5) == "echo:through websockets"
    finally:
        for c in conns:
            await c.close()
    assert len(received) == 13


@needs_fast
async def test_the_reply_connection_hands_over_whole_and_fragmented_replies(tls):
    """ReplyConnection.call: each call's future gets exactly the next message,
    whether it came as one frame (unwrapped in data_received) or in fragments
    (put together from websockets' frames)."""

    async def handler(ws: ServerConnection) -> None:
        async for msg in ws:
            data = msg.encode() if isinstance(msg, str) else msg
            if data.startswith(b"frag"):
                await ws.send([b"part1:", data, b":part3"])  # three frames: TEXT, CONT, CONT
            else:
                await ws.send(b"whole:" + data, text=True)

    srv = await serve(handler, "127.0.0.1", 0, compression=None, ssl=tls.server)
    try:
        conn = await WsConn.open(tls.uri(srv).split("://", 1)[1], tls.client)
        try:
            assert isinstance(conn._ws, wsfast.ReplyConnection)  # noqa: SLF001
            for frame in [b"one", b"frag-a", b"x" * 70000, b"frag-b", b"two"]:
                want = b"part1:" + frame + b":part3" if frame.startswith(b"frag") else b"whole:" + frame
                assert await asyncio.wait_for(conn.call(frame), 5) == want
        finally:
            await conn.close()
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.mark.parametrize(
    "bad, code",
    [
        (Frame(Opcode.TEXT, b"unmasked").serialize(mask=False), 1002),
        (bytes([client_frame(b"rsv")[0] | 0x40]) + client_frame(b"rsv")[1:], 1002),
        (client_frame(b"x" * (MAX_SIZE + 1)), 1009),
    ],
    ids=["unmasked", "reserved-bit", "too-big"],
)
@needs_fast
async def test_frames_websockets_refuses_are_still_refused(server, tls, bad, code):
    uri, received = server
    async with connect(uri, compression=None, max_size=None, ssl=tls.client) as ws:
        ws.transport.write(bad)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert received == []


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "public-api"])
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
async def test_write_frames_from_a_server_reads_back_whole(size, fast, monkeypatch):
    monkeypatch.setattr(wsfast, "FAST", fast and wsfast.FAST)
    payloads = [bytes([65 + i % 26]) * size for i in range(3)]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        assert write_frames(ws, payloads[:1])
        assert write_frames(ws, payloads[1:])  # a second call: still in order
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, compression=None, create_connection=wsfast.server_connection_class())
    port = srv.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
            await ws.send("go")
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in payloads]
            # send_frames (notifications) too
            assert wsfast.must_drain(ws) is False
    finally:
        srv.close()
        await srv.wait_closed()
    assert got == [p.decode() for p in payloads]  # text frames


@pytest.mark.parametrize("sink", [True, False], ids=["sink-server", "websockets-server"])
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
async def test_write_frames_from_a_client_reads_back_whole(size, sink):
    """A node's links to its peers are client connections: their frames are
    masked (RFC 6455), and websockets' own parser takes them as well as the sink."""
    payloads = [bytes([97 + i % 26]) * size for i in range(3)]
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        if isinstance(ws, SinkServerConnection):
            def take(data: bytes, text: bool) -> None:
                assert text
                got.append(bytes(data))
                if len(got) == len(payloads):
                    done.set()
            ws.sink = take
        async for frame in ws:
            got.append(frame.encode())
            if len(got) == len(payloads):
                done.set()

    create = wsfast.server_connection_class() if sink else ServerConnection
    srv = await serve(handler, "127.0.0.1", 0, compression=None, create_connection=create, max_size=None)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
            assert write_frames(ws, payloads[:1])
            assert write_frames(ws, payloads[1:])
            await asyncio.wait_for(done.wait(), 5)
    finally:
        srv.close()
        await srv.wait_closed()
    assert got == payloads


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "public-api"])
async def test_a_server_connection_reports_replies_backing_up_and_draining(fast, tls, monkeypatch):
    """What qcore.node.backpressure relies on, with and without the fast paths:
    replies a client does not read cross the transport's high-water mark
    (on_writing(True)) and are counted by unsent_bytes, frames waiting for
    their turn included; once the client reads, on_writing(False), nothing unsent."""
    monkeypatch.setattr(wsfast, "FAST", fast and wsfast.FAST)
    chunk = b"x" * 65536
    events: list[bool] = []
    backed_up, queued, read_all, looked = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    counted: list[int] = []
    sent = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal sent
        assert isinstance(ws, wsfast.FlowServerConnection)
        ws.on_writing = lambda paused: (events.append(paused), backed_up.set() if paused else None)
        await ws.recv()
        for _ in range(500):  # at most 32 MiB: the kernel's socket buffers fill long before
            assert write_frames(ws, [chunk])
            sent += 1
            await asyncio.sleep(0)
            if backed_up.is_set():
                break
        before = wsfast.unsent_bytes(ws)
        assert write_frames(ws, [chunk, chunk])
        sent += 2
        counted.extend((before, wsfast.unsent_bytes(ws)))
        queued.set()
        await read_all.wait()
        counted.append(wsfast.unsent_bytes(ws))
        looked.set()
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, compression=None, write_limit=32768,
                      create_connection=wsfast.server_connection_class(), ssl=tls.server)
    try:
        # max_queue=1: the client stops reading its socket after one unread message
        async with connect(tls.uri(srv), compression=None, max_queue=1, max_size=None, ssl=tls.client) as ws:
            await ws.send("go")
            await asyncio.wait_for(queued.wait(), 10)
            got = 0
            while got < sent:
                assert await asyncio.wait_for(ws.recv(decode=False), 5) == chunk
                got += 1
            read_all.set()
            await asyncio.wait_for(looked.wait(), 5)
    finally:
        srv.close()
        await srv.wait_closed()
    assert events[0] is True and events[-1] is False
    assert counted[0] > 32768 and counted[1] >= counted[0] + 2 * len(chunk)
    assert counted[2] == 0


# -- without the fast paths --------------------------------------------------------


async def test_without_the_fast_paths_nothing_bypasses_websockets(monkeypatch):
    monkeypatch.setattr(wsfast, "FAST", False)
    assert wsfast.server_connection_class() is wsfast.FlowServerConnection  # websockets' own + flow callbacks
    sent: list[tuple[bytes, bool]] = []

    async def handler(ws: ServerConnection) -> None:
        assert type(ws) is wsfast.FlowServerConnection
        async for msg in ws:
            sent.append((msg.encode() if isinstance(msg, str) else msg, isinstance(msg, str)))
            await wsfast.send_frames(ws, [b"a", b"b"])

    srv = await serve(handler, "127.0.0.1", 0, compression=None, create_connection=wsfast.server_connection_class())
    port = srv.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            assert wsfast.whole_message(ws.protocol, client_frame(b"x")) is None
            await ws.send("hello")
            assert [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)] == ["a", "b"]
            await ws.close()
            assert write_frames(ws, [b"late"]) is False  # closed: nothing sent
    finally:
        srv.close()
        await srv.wait_closed()
    assert sent == [(b"hello", True)]


def test_the_fast_paths_turn_themselves_off_where_they_were_not_tested(monkeypatch):
    major = int(websockets.__version__.split(".")[0])
    assert wsfast.FAST == (wsfast.TESTED_MAJOR[0] <= major <= wsfast.TESTED_MAJOR[1])
    monkeypatch.setattr(websockets, "__version__", "99.0")
    assert "outside the tested" in (wsfast._why_not() or "")  # noqa: SLF001
    monkeypatch.setenv("QCORE_WS_FASTPATH", "0")
    assert wsfast._why_not() == "disabled by QCORE_WS_FASTPATH=0"  # noqa: SLF001
    probe = "import qcore.wsfast as w; print(w.FAST, w.WHY_NOT)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"QCORE_WS_FASTPATH": "0", "PATH": ""}).stdout
    assert out.strip() == "False disabled by QCORE_WS_FASTPATH=0"
