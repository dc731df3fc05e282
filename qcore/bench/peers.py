"""Launchers for the PySyncObj peer and the no-op server.

Every launcher has the same shape as :class:`qcore.bench.cluster.QcoreCluster`
(``system``, ``target``, ``nodes``, ``endpoints``, ``start()``,
``prepare(n)``, ``rss_bytes()``, ``check_alive()``, ``stop()``), so the
orchestrator treats qcore and its peers alike.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from qcore.bench.conns import WsConn
from qcore.bench.procs import Child, ChildError, ChildGroup, python_argv, wait_listening
from qcore.local_procs import free_ports

logger = logging.getLogger(__name__)

PYSYNCOBJ_INSTALL_HINT = "pip install 'qcore[bench]'   (or: pip install pysyncobj==0.3.17)"


def pysyncobj_installed() -> bool:
    return importlib.util.find_spec("pysyncobj") is not None


def pysyncobj_version() -> str:
    if not pysyncobj_installed():
        return "not installed"
    from importlib.metadata import version

    return version("pysyncobj")


class PysyncobjCluster(ChildGroup):
    """``nodes`` PySyncObj processes, each with a bench request server."""

    system = "pysyncobj"
    target = "pysyncobj"

    def __init__(self, nodes: int, workdir: Path, batch: bool = False) -> None:
        self.nodes = nodes
        self.workdir = workdir / f"pysyncobj-{nodes}"
        ports = free_ports(2 * nodes)
        self.raft_addrs = [f"127.0.0.1:{p}" for p in ports[:nodes]]
        self.ws_ports = ports[nodes:]
        self.endpoints = [f"127.0.0.1:{p}" for p in self.ws_ports]
        self.batch = batch
        self.children: list[Child] = []

    async def start(self) -> None:
        if not pysyncobj_installed():
            raise ChildError(f"pysyncobj is not installed; install it with: {PYSYNCOBJ_INSTALL_HINT}")
        for i, (addr, port) in enumerate(zip(self.raft_addrs, self.ws_ports), start=1):
            partners = ",".join(a for a in self.raft_addrs if a != addr)
            argv = python_argv(
                "qcore.bench.pysyncobj_server",
                "--self", addr,
                "--partners", partners,
                "--ws-port", str(port),
                "--dir", str(self.workdir / f"p{i}"),
                *(["--batch"] if self.batch else []),
            )
            self.children.append(Child(f"pysyncobj p{i}", argv, self.workdir / f"p{i}.log"))
        for child, port in zip(self.children, self.ws_ports):
            await wait_listening(child, "127.0.0.1", port)
        await self._wait_ready()

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every process has a leader; then order endpoints leader first."""
        deadline = time.monotonic() + timeout
        leader = None
        for ep in self.endpoints:
            conn = await WsConn.open(ep)
            try:
                while True:
                    st = orjson.loads(await conn.call(orjson.dumps({"id": "s", "op": "status"})))
                    if st.get("ready") and st.get("leader"):
                        leader = st["leader"]
                        break
                    if time.monotonic() > deadline:
                        raise ChildError(f"pysyncobj {ep} not ready after {timeout}s: {st}")
                    await asyncio.sleep(0.1)  # polling: PySyncObj has no ready event over the wire
            finally:
                await conn.close()
        if leader in self.raft_addrs:
            i = self.raft_addrs.index(leader)
            self.endpoints.insert(0, self.endpoints.pop(i))

    async def prepare(self, keys: int) -> dict[str, Any]:
        keys = min(keys, 10_000)

        async def filler(part: range) -> None:
            conn = await WsConn.open(self.endpoints[0])
            try:
                for i in part:
                    reply = orjson.loads(await conn.call(orjson.dumps({"id": str(i), "op": "set", "k": f"k{i}", "v": "x" * 64})))
                    if not reply.get("ok"):
                        raise ChildError(f"pysyncobj fill failed: {reply}")
            finally:
                await conn.close()

        await asyncio.gather(*(filler(range(s, keys, 16)) for s in range(16)))
        return {"keys": keys}


class NoopServer:
    """The no-op server (WebSocket and HTTP) for the load generator's ceiling."""

    system = "noop"
    target = "noop"
    nodes = 1

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ws_port, self.http_port = free_ports(2)
        self.endpoints = [f"127.0.0.1:{self.ws_port}"]
        self.http_endpoints = [f"127.0.0.1:{self.http_port}"]
        self.children: list[Child] = []

    async def start(self) -> None:
        argv = python_argv("qcore.bench.noop", "--ws-port", str(self.ws_port), "--http-port", str(self.http_port))
        child = Child("no-op server", argv, self.workdir / "noop.log")
        self.children.append(child)
        await wait_listening(child, "127.0.0.1", self.ws_port)
        await wait_listening(child, "127.0.0.1", self.http_port)

    async def prepare(self, entities: int) -> dict[str, Any]:
        return {"entities": [["BenchItem", i] for i in range(min(entities, 10_000))], "keys": min(entities, 10_000)}

    def rss_bytes(self) -> list[int]:
        return [c.rss_bytes() for c in self.children]

    def check_alive(self) -> None:
        for c in self.children:
            if not c.alive():
                raise ChildError(f"{c.name} died; log {c.log_path}")

    def stop(self) -> None:
        for c in self.children:
            c.stop()
