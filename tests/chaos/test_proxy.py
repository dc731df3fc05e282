"""The fault-injecting proxy, against a real TCP echo server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from qcore.chaos.proxy import LinkProxy, Network


class Recorder:
    """A TCP server that records what it receives and echoes it back."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.got_data = asyncio.Event()
        self.closed = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                self.received += data
                self.got_data.set()
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            w.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[Recorder]:
    rec = Recorder()
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def proxy(echo: Recorder) -> AsyncIterator[LinkProxy]:
    p = LinkProxy("t", echo.port)
    await p.start()
    yield p
    await p.stop()


async def test_pass_forwards_both_ways_in_order(proxy: LinkProxy, echo: Recorder) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
    payload = bytes(range(256)) * 1000
    w.write(payload)
    await w.drain()
    assert await r.readexactly(len(payload)) == payload
    assert proxy.up.forwarded == len(payload) and proxy.down.forwarded == len(payload)
    w.close()


async def test_delay_keeps_bytes_intact(proxy: LinkProxy) -> None:
    proxy.configure(up_delay=0.01, down_delay=0.01)
    r, w = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
    for i in range(20):
        w.write(f"msg{i};".encode())
    await w.drain()
    expected = "".join(f"msg{i};" for i in range(20)).encode()
    assert await r.readexactly(len(expected)) == expected
    w.close()


async def test_upstream_drop_is_silent_then_the_connection_is_reset_on_heal(
    proxy: LinkProxy, echo: Recorder
) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
    w.write(b"warmup")
    assert await r.readexactly(6) == b"warmup"
    proxy.configure(up_drop=True)
    w.write(b"lost")
    await w.drain()
    # The bytes are consumed by the proxy and counted, never delivered.
    await proxy.up.wait_dropped(4)
    proxy.heal()
    assert await r.read() == b""  # the tainted connection is closed
    await echo.closed.wait()
    assert bytes(echo.received) == b"warmup"


async def test_downstream_drop_is_one_way(proxy: LinkProxy, echo: Recorder) -> None:
    proxy.configure(down_drop=True)
    r, w = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
    w.write(b"ping")
    await echo.got_data.wait()  # upstream passes: the server got it
    assert bytes(echo.received) == b"ping"
    await proxy.down.wait_dropped(4)  # the echo is swallowed
    proxy.heal()
    assert await r.read() == b""


async def test_target_down_refuses(echo: Recorder) -> None:
    p = LinkProxy("t", echo.port)
    await p.start()
    await echo.stop()
    r, w = await asyncio.open_connection("127.0.0.1", p.listen_port)
    assert await r.read() == b""
    await p.stop()
    await echo.start()  # the fixture stops it again


async def test_network_cut_maps_a_direction_to_both_proxies() -> None:
    net = Network({1: 1, 2: 2, 3: 3})  # ports are not dialled here
    net.cut(1, 2)
    assert net.proxies[(1, 2)].up.drop and not net.proxies[(1, 2)].down.drop
    assert net.proxies[(2, 1)].down.drop and not net.proxies[(2, 1)].up.drop
    assert not any(p.up.drop or p.down.drop for k, p in net.proxies.items() if 3 in k)
    net.partition([[1], [2, 3]])
    assert net.cut_links == {(1, 2), (2, 1), (1, 3), (3, 1)}
    assert not net.proxies[(2, 3)].up.drop and not net.proxies[(3, 2)].down.drop
    net.heal()
    assert not any(p.up.drop or p.down.drop for p in net.proxies.values())
    net.isolate(3)
    assert net.cut_links == {(1, 3), (3, 1), (2, 3), (3, 2)}
