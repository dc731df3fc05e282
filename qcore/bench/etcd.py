"""A local etcd cluster as a peer to measure qcore against (``--vs etcd``).

Members run the Debian ``etcd-server`` binary with its shipped (durable,
fsync-on-commit) settings on loopback ports and fresh data dirs; the load
generator speaks to its gRPC-gateway JSON API (``/v3/kv/put``,
``/v3/kv/range``, ``/v3/kv/txn``) over keep-alive HTTP/1.1, values base64.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from qcore.bench.conns import HttpConn
from qcore.bench.procs import Child, ChildError, ChildGroup, wait_listening
from qcore.local_procs import free_ports

logger = logging.getLogger(__name__)

INSTALL_HINT = "apt-get update && apt-get install -y etcd-server etcd-client"


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def etcd_version() -> str:
    exe = etcd_binary()
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].replace("etcd Version: ", "") if out else "unknown"


class EtcdCluster(ChildGroup):
    """``nodes`` etcd members on loopback."""

    system = "etcd"
    target = "etcd"

    def __init__(self, nodes: int, workdir: Path) -> None:
        self.nodes = nodes
        self.workdir = workdir / f"etcd-{nodes}"
        ports = free_ports(2 * nodes)
        self.client_ports = ports[:nodes]
        self.peer_ports = ports[nodes:]
        self.endpoints = [f"127.0.0.1:{p}" for p in self.client_ports]
        self.children: list[Child] = []

    async def start(self) -> None:
        exe = etcd_binary()
        if exe is None:
            raise ChildError(f"etcd is not installed; install it with: {INSTALL_HINT}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports, start=1))
        for i, (cp, pp) in enumerate(zip(self.client_ports, self.peer_ports), start=1):
            argv = [
                exe,
                "--name", f"m{i}",
                "--data-dir", str(self.workdir / f"m{i}"),
                "--listen-client-urls", f"http://127.0.0.1:{cp}",
                "--advertise-client-urls", f"http://127.0.0.1:{cp}",
                "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"qcore-bench-{self.nodes}",
                "--logger", "zap",
                "--log-level", "warn",
            ]
            self.children.append(Child(f"etcd m{i}", argv, self.workdir / f"m{i}.log"))
        for child, port in zip(self.children, self.client_ports):
            await wait_listening(child, "127.0.0.1", port)
        await self._wait_ready()

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        """A member is ready once a linearizable put through it succeeds (the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        for ep in self.endpoints:
            conn = await HttpConn.open(ep)
            try:
                while True:
                    try:
                        status, _ = await conn.call((b"/v3/kv/put", orjson.dumps({"key": _b64("bench/ready"), "value": _b64("1")})))
                        if status == 200:
                            break
                    except (OSError, asyncio.IncompleteReadError):
                        await conn.close()
                        conn = await HttpConn.open(ep)
                    if time.monotonic() > deadline:
                        raise ChildError(f"etcd member {ep} not ready after {timeout}s")
                    await asyncio.sleep(0.1)  # polling: etcd offers no leader-elected event over HTTP
            finally:
                await conn.close()

    async def _leader_first(self) -> None:
        """Order endpoints leader first, as qcore's are, so client i meets the same role on every system."""
        for i, ep in enumerate(self.endpoints):
            conn = await HttpConn.open(ep)
            try:
                status, body = await conn.call((b"/v3/maintenance/status", b"{}"))
            finally:
                await conn.close()
            st = orjson.loads(body) if status == 200 else {}
            if st.get("leader") and st.get("header", {}).get("member_id") == st.get("leader"):
                self.endpoints.insert(0, self.endpoints.pop(i))
                return

    async def prepare(self, keys: int) -> dict[str, Any]:
        """Put every key the workloads touch once, so reads find values."""
        keys = min(keys, 10_000)

        async def filler(part: range) -> None:
            conn = await HttpConn.open(self.endpoints[0])
            try:
                for i in part:
                    body = orjson.dumps({"key": _b64(f"bench/k{i:07d}"), "value": _b64("x" * 64)})
                    status, reply = await conn.call((b"/v3/kv/put", body))
                    if status != 200:
                        raise ChildError(f"etcd fill failed: {status} {reply[:200]!r}")
            finally:
                await conn.close()

        await asyncio.gather(*(filler(range(s, keys, 16)) for s in range(16)))
        await self._leader_first()
        return {"keys": keys}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
