"""Forwarding requests that only the leader can serve.

Writes normally reach the leader as forwarded batches (RaftForward) on the
Raft link (qcore.node.replica); this link carries membership changes, and
writes when no leader was reachable that way. A follower keeps one
pipelined connection to the current leader (`ws[s]://leader/forward`,
opened as a peer: qcore.node.peer_dial) and relays requests over it with
fresh ids, mapping each reply back. Requests arriving on a `/forward` connection are never
forwarded again: the receiver answers "not leader" instead, so a stale view
of the leader can cost one hop but never a loop.

If the link breaks while a request is in flight, its outcome is unknown (the
leader may have applied it): the caller must say so rather than retry a
write blindly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from qcore.node.errors import OutcomeUnknown, RequestFailed
from qcore.node.peer_dial import PeerDialer
from qcore.wsfast import write_frames

log = logging.getLogger(__name__)


class _Link:
    def __init__(self, addr: str, ws: ClientConnection) -> None:
        self.addr = addr
        self.ws = ws
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.outbox: list[tuple[int, bytes]] = []
        self.reader = asyncio.create_task(self._read())

    def send(self, fid: int, frame: bytes) -> None:
        """Queue a frame; every frame queued in one loop iteration goes out
        in one write (many clients of this follower share the link)."""
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outbox.append((fid, frame))

    def _flush(self) -> None:
        queued, self.outbox = self.outbox, []
        if write_frames(self.ws, [frame for _, frame in queued]):
            return
        # Nothing was written: these requests never reached the leader.
        err = RequestFailed(f"cannot send to the leader at {self.addr}: connection closed")
        for fid, _ in queued:
            fut = self.pending.pop(fid, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                try:
                    reply = orjson.loads(frame)
                    (body,) = reply.values()
                    fut = self.pending.pop(body["id"], None)
                except (ValueError, TypeError, KeyError, AttributeError):
                    log.warning("unreadable reply from leader %s: %.200s", self.addr, frame)
                    continue
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (OSError, WebSocketException) as exc:
            log.info("forwarding link to %s closed: %s", self.addr, exc)
        finally:
            err = OutcomeUnknown(f"connection to leader at {self.addr} lost while the request was in flight")
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self.pending.clear()

    @property
    def alive(self) -> bool:
        return not self.reader.done()

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class Forwarder:
    def __init__(self, max_size: int, dialer: PeerDialer) -> None:
        self._dialer = dialer
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._max_size = max_size

    async def _get_link(self, addr: str) -> _Link:
        async with self._lock:
            link = self._link
            if link is not None and link.addr == addr and link.alive:
                return link
            if link is not None:
                await link.close()
                self._link = None
            try:
                ws = await self._dialer.open(
                    addr, "/forward", open_timeout=3,
                    max_size=self._max_size, ping_interval=10, ping_timeout=20, close_timeout=1,
                )
            except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
                raise RequestFailed(f"cannot reach the leader at {addr}: {exc}") from None
            self._link = _Link(addr, ws)
            return self._link

    async def forward(self, addr: str, tag: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `{tag: body}` (body without id) to the leader; return its reply frame."""
        link = await self._get_link(addr)
        fid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.pending[fid] = fut
        link.send(fid, orjson.dumps({tag: {**body, "id": fid}}))
        try:
            async with asyncio.timeout(timeout):  # not wait_for: in 3.11 it can swallow a cancel
                return await fut
        except asyncio.TimeoutError:
            link.pending.pop(fid, None)
            raise OutcomeUnknown(f"the leader at {addr} did not answer within {timeout:.0f}s") from None

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
