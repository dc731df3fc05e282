"""Real node processes on loopback, and a tiny raw-protocol client.

The client here speaks the wire format directly (orjson + websockets) so
that these tests check the protocol as a stranger would see it, independent
of qcore.client.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from qcore.local_procs import free_port, log_tail, node_argv
from tests.node.http_get import http_get

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas.yaml"


class NodeProc:
    """One `python -m qcore` process with its own data dir and log file."""

    def __init__(self, node_id: int, workdir: Path, *extra: str, port: int | None = None,
                 config_file: Path | None = SCHEMAS, cwd: Path = REPO, ssl: ssl.SSLContext | None = None,
                 program: Sequence[str] | None = None) -> None:
        """`ssl`: the node serves TLS, and this is how a client verifies it; `program` replaces
        ``python -m qcore`` (node_argv)."""
        self.id = node_id
        self.ssl = ssl
        self.config_file = config_file
        self.cwd = cwd
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.data_dir = workdir / f"node-{node_id}"
        self.log_path = workdir / f"node-{node_id}.log"
        self.extra = list(extra)
        self.program = program
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "NodeProc":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            node_argv(self.id, self.addr, self.config_file, self.data_dir, "--tick-ms", "20", "--election-ticks", "15",
                      *self.extra, program=self.program),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
        )
        log.close()
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        return log_tail(self.log_path, n)


class Conn:
    """A pipelining raw client: send frames, await replies by id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.unmatched: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, addr: str, ssl: ssl.SSLContext | None = None, path: str = "",
                   local_host: str | None = None) -> "Conn":
        """`local_host`: connect from this loopback address (127.0.0.2...), to look like another client host."""
        extra: dict[str, Any] = {"local_addr": (local_host, 0)} if local_host is not None else {}
        ws = await connect(f"{'wss' if ssl else 'ws'}://{addr}{path}", proxy=None, max_size=64 << 20,
                           open_timeout=5, ssl=ssl, **extra)
        return cls(ws)

    @classmethod
    async def login(cls, addr: str, user: str, password: str) -> "Conn":
        """A connection authenticated as `user` (SPEC 8.3)."""
        c = await cls.open(addr)
        reply = await c.call("Authenticate", user=user, password=password)
        assert "Ok" in reply["AuthenticateResponse"]["response"], reply
        return c

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                reply = orjson.loads(frame)
                ((tag, body),) = reply.items()
                fut = self._pending.pop(body.get("id"), None) if isinstance(body, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(reply)
                else:
                    await self.unmatched.put(reply)
        except Exception:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    async def send(self, tag: str, **fields: Any) -> "asyncio.Future[dict[str, Any]]":
        """Send {tag: {id, **fields}}; the future of its reply frame, so that a request sent
        after this one is sent after it on the connection."""
        rid = f"r{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.ws.send(orjson.dumps({tag: {"id": rid, **fields}}).decode())
        return fut

    async def call(self, tag: str, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        """Send {tag: {id, **fields}}; return the reply frame ({ReplyTag: body})."""
        return await asyncio.wait_for(await self.send(tag, **fields), timeout)

    async def perform(self, request: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        reply = await self.call("Perform", timeout=timeout, request=request)
        assert "PerformResponse" in reply, reply
        return reply["PerformResponse"]["response"]

    async def metrics(self) -> dict[str, Any]:
        return (await self.call("GetMetrics"))["GetMetricsResponse"]["response"]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def node_metrics(node: NodeProc) -> dict[str, Any]:
    """The node's GetMetrics, asked on a connection of its own."""
    c = await Conn.open(node.addr, node.ssl)
    try:
        return await c.metrics()
    finally:
        await c.close()


async def logged(node: NodeProc, text: str) -> bool:
    """Has the node logged `text` yet (for `wait_until`)?"""
    return text in node.log_path.read_text()


async def wait_serving(node: NodeProc, timeout: float = 20) -> None:
    """Until the node answers GetMetrics (the process is up and serving; with
    users on, its "authentication required" counts as an answer)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not node.alive():
            raise AssertionError(f"node {node.id} exited:\n{node.log_tail()}")
        try:
            c = await Conn.open(node.addr, node.ssl)
            try:
                reply = await c.call("GetMetrics")
                if "GetMetricsResponse" in reply or reply.get("Error", {}).get("kind") == "auth_required":
                    return
            finally:
                await c.close()
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"node {node.id} not serving after {timeout}s ({last}):\n{node.log_tail()}")


async def start_and_init(nodes: Sequence[NodeProc], **init: Any) -> None:
    """Start `nodes` and Init them as one cluster through the first (`init`: Init's other
    fields, such as admin_password). No leader is known yet: wait_ready for that."""
    for n in nodes:
        n.start()
    for n in nodes:
        await wait_serving(n)
    first = await Conn.open(nodes[0].addr, nodes[0].ssl)
    try:
        reply = await first.call("Init", nodes=[[n.id, n.addr] for n in nodes], **init)
        assert reply["InitResponse"]["response"] == "Ok", reply
    finally:
        await first.close()


async def wait_ready(node: NodeProc, timeout: float = 20) -> None:
    """Until the node's GET /ready is 200: it knows a leader and has applied what it knows to be
    committed. A node just started, restarted or added does not know the leader yet (the leader may
    still be backing off from dialling it), and until it does a read, a login (Authenticate waits
    for a read barrier) or a forwarded write there is answered no_leader after two election timeouts."""

    async def ready() -> bool:
        return (await http_get(node.addr, "/ready", ssl=node.ssl))[0] == 200

    await wait_until(ready, timeout, what=f"node {node.id} ready (a leader known)")


async def wait_until(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    """Poll an async predicate across processes (there is no event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def eid(typ: str, n: int) -> dict[str, Any]:
    return {"typ": typ, "id": n}


def write(entity: dict[str, Any], field: str, value: Any, adjust: str = "Set", push: str = "Always") -> dict[str, Any]:
    return {"Write": {"entity_id": entity, "field_type": field, "value": value, "push_condition": push,
                      "adjust_behavior": adjust, "write_time": None, "writer_id": None}}


def read(entity: dict[str, Any], field: str) -> dict[str, Any]:
    return {"Read": {"entity_id": entity, "field_type": field, "value": None, "write_time": None, "writer_id": None}}
