"""Handlers of the operations messages (qcore.protocol.ops): the cluster's
members at a glance, and snapshots for backups.

`GetClusterMetrics` asks every member for its `GetMetrics` over a short
connection of its own, all at once, each with a short timeout; a member that
does not answer is listed with an `error` instead of metrics. The CLI's
`status` table and the web console read it.

`SnapshotSave` is linearizable: a ReadIndex barrier first, then a snapshot of
the state machine at an index at least as new (the node's latest if new
enough, else one built now on the snapshot thread while Raft goes on). The
snapshot is held on the connection under a handle and pulled in chunks with
`SnapshotRead`; closing the connection releases it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from websockets.exceptions import WebSocketException

from qcore.node.errors import NOT_INITIALISED_TEXT
from qcore.node.metrics import build_metrics
from qcore.node.peer_dial import PeerDialer
from qcore.protocol import messages as m
from qcore.protocol import ops
from qcore.protocol.errors import Kind, error, refusal
from qcore.raft.types import Snapshot

if TYPE_CHECKING:
    from qcore.node.api import ConnContext
    from qcore.node.server import Node

log = logging.getLogger(__name__)

MEMBER_TIMEOUT = 1.5  # seconds a member has to answer GetMetrics
_HELD_PER_CONN = 2  # snapshots one connection may hold at once

Handler = Callable[[Any, "ConnContext | None"], Awaitable[Any]]


def ops_handlers(node: "Node") -> dict[str, Handler]:
    h = OpsApi(node)
    return {
        "GetClusterMetrics": h.get_cluster_metrics,
        "SnapshotSave": h.snapshot_save,
        "SnapshotRead": h.snapshot_read,
        "SnapshotRelease": h.snapshot_release,
    }


async def member_metrics(addr: str, timeout: float, dialer: PeerDialer) -> dict[str, Any]:
    """One member's GetMetrics, over a peer connection of its own (``/forward``,
    opened as the node opens its links: TLS and the peer handshake; a client's
    connection would have to log in with users on)."""
    async with asyncio.timeout(timeout):
        ws = await dialer.open(addr, "/forward", open_timeout=timeout, close_timeout=0.5, max_size=16 << 20)
        try:
            await ws.send(orjson.dumps({"GetMetrics": {"id": 1}}).decode())
            reply = orjson.loads(await ws.recv())
        finally:
            await ws.close()
    body = reply.get("GetMetricsResponse") if isinstance(reply, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("response"), dict):
        raise ValueError(f"unexpected reply: {str(reply)[:200]}")
    return body["response"]


class OpsApi:
    def __init__(self, node: "Node") -> None:
        self._node = node

    async def get_cluster_metrics(self, msg: ops.GetClusterMetrics, conn: "ConnContext | None") -> Any:
        node = self._node
        cs = node.driver.conf_state()
        voters = set(cs.voters) | set(cs.voters_outgoing)
        members = sorted(voters | set(cs.learners))
        if not members:
            members = [node.opts.id]

        async def one(member: int) -> dict[str, Any]:
            addr = node.opts.ws_addr if member == node.opts.id else node.transport.address_of(member)
            entry: dict[str, Any] = {
                "id": member, "addr": addr, "kind": "learner" if member in cs.learners else "voter",
                "metrics": None, "error": None,
            }
            if member == node.opts.id:
                entry["metrics"] = build_metrics(node)
            elif addr is None:
                entry["error"] = "unreachable: no address known"
            else:
                try:
                    entry["metrics"] = await member_metrics(addr, MEMBER_TIMEOUT, node.dialer)
                except TimeoutError:  # a member that hangs (stopped, overloaded): the error has no text
                    entry["error"] = f"unreachable: no answer within {MEMBER_TIMEOUT:g} s"
                except (OSError, WebSocketException, ValueError) as exc:
                    entry["error"] = f"unreachable: {str(exc) or type(exc).__name__}"
            return entry

        entries = await asyncio.gather(*(one(i) for i in members))
        leader = node.driver.leader_id() or None
        return ops.GetClusterMetricsResponse(msg.id, m.ok({"members": list(entries), "leader": leader}))

    async def snapshot_save(self, msg: ops.SnapshotSave, conn: "ConnContext | None") -> Any:
        node = self._node
        driver = node.driver
        if conn is None:
            return refusal(ops.SnapshotSaveResponse, msg.id, Kind.INVALID, "SnapshotSave needs a connection to read the snapshot on")
        if not driver.initialised():
            return error(msg.id, Kind.NOT_INITIALISED, NOT_INITIALISED_TEXT)
        await node.api.read_barrier()
        snap: Snapshot = await driver.request_snapshot(driver.applied)
        digest = await asyncio.get_running_loop().run_in_executor(None, lambda: hashlib.sha256(snap.data).hexdigest())
        held: dict[str, Snapshot] = conn.state.setdefault("snapshots", {})
        while len(held) >= _HELD_PER_CONN:
            held.pop(next(iter(held)))
        handle = uuid.uuid4().hex
        held[handle] = snap
        log.info("snapshot at index %d (%d bytes) held for a backup", snap.meta.index, len(snap.data))
        return ops.SnapshotSaveResponse(msg.id, m.ok({
            "handle": handle, "index": snap.meta.index, "term": snap.meta.term,
            "size": len(snap.data), "sha256": digest,
        }))

    async def snapshot_read(self, msg: ops.SnapshotRead, conn: "ConnContext | None") -> Any:
        snap = (conn.state.get("snapshots") or {}).get(msg.handle) if conn is not None else None
        if snap is None:
            return refusal(ops.SnapshotReadResponse, msg.id, Kind.NOT_FOUND, f"no snapshot {msg.handle!r} held on this connection")
        if msg.length == 0 or msg.length > ops.MAX_SNAPSHOT_CHUNK:
            return refusal(ops.SnapshotReadResponse, msg.id, Kind.INVALID, f"length must be 1..{ops.MAX_SNAPSHOT_CHUNK}")
        data = snap.data
        if msg.offset > len(data):
            return refusal(ops.SnapshotReadResponse, msg.id, Kind.INVALID, f"offset {msg.offset} is past the end ({len(data)})")
        if conn is not None:  # a ~100-byte request, a reply of up to 5.4 MiB: wait for room for it
            await self._node.backpressure.drained(conn)
        chunk = data[msg.offset : msg.offset + msg.length]
        return ops.SnapshotReadResponse(msg.id, m.ok({
            "offset": msg.offset, "data": base64.b64encode(chunk).decode("ascii"),
            "done": msg.offset + len(chunk) >= len(data),
        }))

    async def snapshot_release(self, msg: ops.SnapshotRelease, conn: "ConnContext | None") -> Any:
        held = conn.state.get("snapshots") if conn is not None else None
        if not held or held.pop(msg.handle, None) is None:
            return refusal(ops.SnapshotReleaseResponse, msg.id, Kind.NOT_FOUND, f"no snapshot {msg.handle!r} held on this connection")
        return ops.SnapshotReleaseResponse(msg.id, m.ok(None))
