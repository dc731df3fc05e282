"""Fault-injecting TCP proxies for the peer links of a local cluster.

Every node reaches every peer through its own proxy: node i dials peer j at
the proxy for the directed pair (i, j) (``--peer-override j=HOST:PORT``), and
the proxy forwards to j's real WebSocket port. A TCP connection carries bytes
both ways, so "bytes from a to b" travel upstream on proxy (a, b) and
downstream on proxy (b, a); :class:`Network` flips both to cut one direction
of a link, whichever connection a node happens to use. Client traffic never
goes through a proxy: partitions are between nodes, as in Jepsen.

Faults per direction of a proxy:

* ``pass`` — forward, after ``delay`` seconds of added latency if set;
* ``drop`` — read and discard, keeping the connection open (a black hole:
  the sender sees no error, only silence). A connection that lost bytes no
  longer carries a valid byte stream, so when the direction passes again it
  is closed, as a real TCP connection would be after a long partition.

Why proxies and not network namespaces: see ``docs/chaos.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

__all__ = ["LinkProxy", "Network", "Direction"]

_CHUNK = 65536


@dataclass
class Direction:
    """The fault applied to one direction of a proxy, and its counters."""

    drop: bool = False
    delay: float = 0.0
    forwarded: int = 0
    dropped: int = 0
    _activity: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def _count(self, dropped: int = 0, forwarded: int = 0) -> None:
        self.dropped += dropped
        self.forwarded += forwarded
        self._activity.set()

    async def wait_dropped(self, at_least: int) -> None:
        """Wait until this direction has discarded ``at_least`` bytes."""
        while self.dropped < at_least:
            self._activity.clear()
            await self._activity.wait()


@dataclass(eq=False)
class _Conn:
    client_w: asyncio.StreamWriter
    server_w: asyncio.StreamWriter
    tainted: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for w in (self.client_w, self.server_w):
            with contextlib.suppress(Exception):
                w.transport.abort()
        for t in self.tasks:
            t.cancel()


class LinkProxy:
    """Listens on ``127.0.0.1:listen_port`` and forwards to ``target_port``.

    ``up`` is client -> server (the dialling node's bytes), ``down`` is
    server -> client.
    """

    def __init__(self, name: str, target_port: int, listen_port: int = 0, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.target_port = target_port
        self.listen_port = listen_port
        self.up = Direction()
        self.down = Direction()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Conn] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen_port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.reset()

    def reset(self) -> None:
        """Abort every open connection (both ends see a reset)."""
        for c in list(self._conns):
            c.close()
        self._conns.clear()

    def configure(self, *, up_drop: bool | None = None, down_drop: bool | None = None,
                  up_delay: float | None = None, down_delay: float | None = None) -> None:
        """Change faults; connections that lost bytes are closed once both ways pass."""
        if up_drop is not None:
            self.up.drop = up_drop
        if down_drop is not None:
            self.down.drop = down_drop
        if up_delay is not None:
            self.up.delay = up_delay
        if down_delay is not None:
            self.down.delay = down_delay
        if not self.up.drop and not self.down.drop:
            for c in [c for c in self._conns if c.tainted]:
                c.close()
                self._conns.discard(c)

    def heal(self) -> None:
        self.configure(up_drop=False, down_drop=False, up_delay=0.0, down_delay=0.0)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.transport.abort()  # the target is down: refuse like it would
            return
        conn = _Conn(client_w, server_w)
        self._conns.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(conn, client_r, server_w, self.up)),
            asyncio.create_task(self._pump(conn, server_r, client_w, self.down)),
        ]
        await asyncio.gather(*conn.tasks, return_exceptions=True)
        conn.close()
        self._conns.discard(conn)

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    d: Direction) -> None:
        """Copy one direction; latency is added by a separate writer task so
        that a delay adds latency without throttling throughput."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        delivery = asyncio.create_task(self._deliver(queue, writer))
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if d.drop:
                    d._count(dropped=len(data))
                    conn.tainted = True
                    continue
                d._count(forwarded=len(data))
                queue.put_nowait((loop.time() + d.delay, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await delivery
            conn.close()

    @staticmethod
    async def _deliver(queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()


class Network:
    """One proxy per ordered pair of nodes, and partitions expressed on links.

    ``ports`` maps node id -> the node's real WebSocket port.
    """

    def __init__(self, ports: dict[int, int], host: str = "127.0.0.1") -> None:
        self.ports = dict(ports)
        self.host = host
        self.proxies: dict[tuple[int, int], LinkProxy] = {
            (i, j): LinkProxy(f"{i}->{j}", ports[j], host=host)
            for i in ports for j in ports if i != j
        }
        self.cut_links: set[tuple[int, int]] = set()

    async def start(self) -> None:
        for p in self.proxies.values():
            await p.start()

    async def stop(self) -> None:
        for p in self.proxies.values():
            await p.stop()

    def peer_overrides(self, node: int) -> dict[int, str]:
        """Where ``node`` must dial each peer: its proxies."""
        return {j: p.address for (i, j), p in self.proxies.items() if i == node}

    def _apply(self, a: int, b: int) -> None:
        """Push the cut state of the pair (a, b) into its two proxies."""
        ab, ba = (a, b) in self.cut_links, (b, a) in self.cut_links
        self.proxies[(a, b)].configure(up_drop=ab, down_drop=ba)
        self.proxies[(b, a)].configure(up_drop=ba, down_drop=ab)

    def cut(self, src: int, dst: int) -> None:
        """Bytes from src to dst are lost from now on (one way)."""
        self.cut_links.add((src, dst))
        self._apply(src, dst)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Nodes talk only inside their group; nodes in no group are isolated."""
        group_of: dict[int, int] = {}
        for g, members in enumerate(groups):
            for m in members:
                group_of[m] = g
        for i in self.ports:
            for j in self.ports:
                if i != j and (i not in group_of or j not in group_of or group_of[i] != group_of[j]):
                    self.cut(i, j)

    def isolate(self, node: int) -> None:
        self.partition([[n for n in self.ports if n != node]])

    def set_delay(self, seconds: float) -> None:
        """Add latency to every peer byte (both directions of every link)."""
        for p in self.proxies.values():
            p.configure(up_delay=seconds / 2, down_delay=seconds / 2)

    def heal(self) -> None:
        """Everything passes again; connections that lost bytes are reset."""
        self.cut_links.clear()
        for p in self.proxies.values():
            p.heal()

    def reset_node(self, node: int) -> None:
        """Abort every peer connection to and from a node (its process died)."""
        for (i, j), p in self.proxies.items():
            if node in (i, j):
                p.reset()

    def describe(self) -> str:
        if not self.cut_links:
            return "healed"
        return "cut " + ", ".join(f"{a}->{b}" for a, b in sorted(self.cut_links))
