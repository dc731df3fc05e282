"""Peer transport: Raft messages between nodes over the one WebSocket port.

Messages travel one way: each node keeps one persistent outbound connection
per peer (`ws[s]://peer/raft?from=<id>&addr=<host:port>&level=<n>...`, opened and
authenticated by qcore.node.peer_dial) and sends every
message for that peer on it, requests and responses alike, tagged with the
seed's frame names (RaftVote / RaftAppend / RaftSnapshot and their
*Response). Nothing waits for a reply, so many RPCs are in flight per link
(pipelining is the Raft core's business), and a slow or dead peer only fills
its own bounded backlog: what its connection has not sent plus what waits to
be written stays within `--max-peer-output` bytes (and 8,192 queued frames).
Messages beyond that are dropped, as are the queued ones when the link drops,
and the core is told the peer is unreachable — Raft probes it and retransmits
what matters. A connection whose peer reads nothing for --stuck-timeout is
aborted and dialled again. When a peer's last Raft connection to us closes
(its process died, or the connection was reset), after every message it
carried has been stepped, the core is told the link went down: a follower
that so loses its leader campaigns within a tick or two.

Snapshots are the exception: they are big, so each one gets its own
short-lived connection and travels as RaftSnapshot chunks, each acknowledged
with a RaftSnapshotResponse before the next is sent (flow control), then the
core is told whether it arrived.

A brand-new node does not know its peers' addresses until it has applied the
configuration entries, yet it must answer the leader before that; so the
`addr` query parameter of an inbound peer connection teaches the receiver how
to reach the sender. Its `level` parameter is the highest semantics level of
log entries the sender applies (qcore.node.entries; none: 1); the transport
keeps each peer's latest (`level_of`), from which the replica works out the
level it proposes at.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosedError, InvalidStatus, WebSocketException

from qcore.node import removal
from qcore.node.cluster_identity import ClusterIdentity
from qcore.node.entries import ENTRY_LEVEL, LEVEL_BEFORE_LEVELS
from qcore.node.peer_dial import PeerAuthFailed, PeerDialer
from qcore.protocol.raft_codec import (
    BatchRefused,
    ForwardBatch,
    PeerMessage,
    RaftCodecError,
    decode_batch_refused,
    decode_forward_batch,
    decode_message,
    encode_batch_refused,
    encode_forward_batch,
    encode_message,
    frame_tag,
)
from qcore.raft.types import Message, MessageType
from qcore.wsfast import must_drain, unsent_bytes, write_frames

if TYPE_CHECKING:
    from qcore.node.driver import RaftDriver

log = logging.getLogger(__name__)

_MAX_QUEUE = 8192  # frames queued for a peer that is not keeping up; beyond them (or --max-peer-output) they are dropped
_PEER_FRAME_LIMIT = 64 << 20
_LOG_EVERY = 10.0  # seconds between warnings about one peer's dropped messages
_FIRST_BACKOFF, _MAX_BACKOFF = 0.05, 1.0  # seconds between dials of a peer that cannot be reached, doubling


def peer_identity(path: str) -> tuple[int, str] | None:
    """(node id, address) declared in a peer connection's request path, if any."""
    parts = urlsplit(path)
    if parts.path != "/raft":
        return None
    query = parse_qs(parts.query)
    try:
        return int(query["from"][0]), query["addr"][0]
    except (KeyError, ValueError, IndexError):
        return None


def declared_level(path: str) -> int:
    """The semantics level (qcore.node.entries) a peer's Raft link declares in its path
    (`&level=N`); a link that declares none (a build before levels) or no number: 1."""
    value = parse_qs(urlsplit(path).query).get("level", [""])[0]
    return int(value) if value.isascii() and value.isdigit() and int(value) >= 1 else LEVEL_BEFORE_LEVELS


class PeerLink:
    """The outbound connection to one peer.

    While the connection is up and keeping pace, frames are written the
    moment the driver sends them (all of one Ready's frames for this peer in
    one syscall); they queue only while connecting or while the peer is
    slow, and the link's task then writes the backlog.
    """

    def __init__(self, transport: "PeerTransport", peer_id: int) -> None:
        self._transport = transport
        self.peer_id = peer_id
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        # Set when the peer proves it is up (it dialled us): the next dial need not wait out the backoff.
        self._redial = asyncio.Event()
        self._closed = False
        self._connected = False
        self._ws: ClientConnection | None = None  # set while the connection is open and the link is pumping
        self._draining = False
        self._refused: str | None = None  # the last handshake/TLS failure logged
        self._dropped = [0, 0]  # frames, bytes dropped since the last warning
        self._warned_at = -_LOG_EVERY
        self._task = asyncio.create_task(self._run(), name=f"peer-{transport.node_id}->{peer_id}")

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def redial(self) -> None:
        """The peer is up (its own Raft connection to us opened): if this link is waiting to dial
        it again, dial now. A peer restarted while the backoff had grown to its 1 s cap would
        otherwise hear nothing from us, its leader, for up to that long, and answer its clients
        no_leader meanwhile once two (short) election timeouts have passed."""
        if self._ws is None:
            self._redial.set()

    def send_frames(self, frames: list[bytes]) -> None:
        """Write ``frames`` now, or queue them while connecting or while the peer
        is slow. Those that would take the link's unsent bytes (its transport's
        buffer and the queue) past --max-peer-output are dropped, in order from
        the first that does not fit, and the peer is reported unreachable: Raft
        then probes it and resends from what it acknowledges. (One frame is
        always taken when nothing is unsent, so an entry larger than the bound
        still goes.)"""
        ws = self._ws
        direct = ws is not None and not self._queue and not self._draining
        unsent = self._queued_bytes + (unsent_bytes(ws) if ws is not None else 0)
        size = sum(map(len, frames))
        if unsent + size > self._transport.max_output or (not direct and len(self._queue) + len(frames) > _MAX_QUEUE):
            frames, size = self._fit(frames, unsent, direct)
            if not frames:
                return
        if direct and write_frames(ws, frames):
            if must_drain(ws):
                self._draining = True
                self._ready.set()
            return
        self._queue.extend(frames)
        self._queued_bytes += size
        self._ready.set()

    def _fit(self, frames: list[bytes], unsent: int, direct: bool) -> tuple[list[bytes], int]:
        """The frames that fit (and their bytes); the rest are dropped."""
        room = self._transport.max_output - unsent
        slots = len(frames) if direct else _MAX_QUEUE - len(self._queue)
        taken, size = min(len(frames), max(0, slots)), 0
        for i in range(taken):
            if size + len(frames[i]) > room and (unsent or i):
                taken = i
                break
            size += len(frames[i])
        if taken < len(frames):  # (a lone frame over the bound with nothing unsent drops nothing)
            self._drop(frames[taken:])
        return frames[:taken], size

    def _drop(self, frames: list[bytes]) -> None:
        """The peer is not keeping up (or is down): these frames go nowhere."""
        self._dropped[0] += len(frames)
        self._dropped[1] += sum(map(len, frames))
        self._transport.driver.report_unreachable(self.peer_id)
        now = time.monotonic()
        if now - self._warned_at >= _LOG_EVERY:
            self._warned_at = now
            log.warning("peer %d is not keeping up: dropped %d messages (%d bytes) over --max-peer-output %d; "
                        "Raft resends what it needs once it answers", self.peer_id, self._dropped[0],
                        self._dropped[1], self._transport.max_output)
            self._dropped = [0, 0]

    async def close(self) -> None:
        self._closed = True
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF
        while not self._closed:
            addr = self._transport.address_of(self.peer_id)
            if addr is None:
                self._queue.clear()
                self._queued_bytes = 0
                await asyncio.sleep(0.2)
                continue
            self._redial.clear()  # a wake from now on cuts the backoff after this attempt short
            try:
                ws = await self._transport.dialer.open(
                    addr, self._transport.raft_path(), expect=self.peer_id,
                    open_timeout=2,
                    max_size=_PEER_FRAME_LIMIT,
                    ping_interval=5,
                    ping_timeout=10,
                    close_timeout=1,
                )
                try:
                    if not self._connected:
                        log.info("connected to peer %d at %s", self.peer_id, addr)
                    self._connected = True
                    self._refused = None
                    backoff = _FIRST_BACKOFF
                    reader = asyncio.create_task(self._drain_replies(ws))
                    try:
                        await self._pump(ws, addr, reader)
                    finally:
                        self._ws = None
                        self._draining = False
                        reader.cancel()
                finally:
                    await ws.close()
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status, why = exc.response.status_code, exc.response.body.decode(errors="replace")
                if status in (403, removal.STATUS):  # of another cluster (cluster_identity), or removed
                    self._transport.identity.note_refused_by(self.peer_id, why)
                if status == removal.STATUS:
                    index = exc.response.headers.get(removal.APPLIED_HEADER, "")
                    if index.isdigit():
                        self._transport.driver.removal.heard(self.peer_id, int(index), why)
                elif status != 403:
                    log.debug("peer %d at %s refused the connection: %s", self.peer_id, addr, exc)
            except (PeerAuthFailed, ssl.SSLError) as exc:
                # Misconfiguration, not a transient failure: say so (once per change of reason).
                if str(exc) != self._refused:
                    self._refused = str(exc)
                    log.error("peer %d at %s: %s", self.peer_id, addr, exc)
            except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
                if self._connected:
                    log.warning("lost connection to peer %d at %s: %s", self.peer_id, addr, exc)
                else:
                    log.debug("cannot reach peer %d at %s: %s", self.peer_id, addr, exc)
            self._connected = False
            self._queue.clear()
            self._queued_bytes = 0
            self._transport.driver.report_unreachable(self.peer_id)
            try:
                await asyncio.wait_for(self._redial.wait(), backoff)
                backoff = _FIRST_BACKOFF  # the peer dialled us: it is up
            except TimeoutError:
                backoff = min(_MAX_BACKOFF, backoff * 2)

    async def _pump(self, ws: ClientConnection, addr: str, reader: asyncio.Task[None]) -> None:
        """Write the backlog, wait out slow peers, notice a dead connection or a moved peer."""
        queue = self._queue
        self._ws = ws
        while not self._closed:
            if self._draining or must_drain(ws):
                self._draining = True
                await self._drain(ws)
                self._draining = False
            if queue:
                frames = list(queue)
                queue.clear()
                self._queued_bytes = 0
                if not write_frames(ws, frames):
                    raise ConnectionClosedError(None, None)
                continue
            self._ready.clear()
            waiter = asyncio.create_task(self._ready.wait())
            done, _ = await asyncio.wait({waiter, reader}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                waiter.cancel()
                reader.result()  # raises the connection error
                return
            if waiter not in done:
                waiter.cancel()
            if self._transport.address_of(self.peer_id) != addr:
                return  # the peer moved: reconnect to the new address

    async def _drain(self, ws: ClientConnection) -> None:
        """Until the connection's buffer is below its low-water mark. A peer that
        reads nothing for --stuck-timeout (its process stopped, its network
        gone quiet) has its connection aborted: what it holds is freed and the
        link dials again. (Keepalive cannot notice: its ping waits behind the
        same full buffer.)"""
        timeout = self._transport.stuck_timeout
        before = unsent_bytes(ws)
        while True:
            try:
                await asyncio.wait_for(ws.drain(), timeout)
                return
            except asyncio.TimeoutError:
                now = unsent_bytes(ws)
                if now < before:  # slow, not stuck
                    before = now
                    continue
            ws.transport.abort()  # a close handshake would wait behind the unsent bytes
            raise asyncio.TimeoutError(f"it read nothing for {timeout:g}s ({now + self._queued_bytes} bytes unsent)")

    async def _drain_replies(self, ws: ClientConnection) -> None:
        """The peer answers only with Error frames here; log them."""
        async for frame in ws:
            self._transport.on_outbound_reply(self.peer_id, frame)


class _SnapshotAssembly:
    """Chunks of one inbound snapshot, in order."""

    def __init__(self, header: dict[str, Any], total: int) -> None:
        self.header = header
        self.total = total
        self.buf = bytearray()


class PeerTransport:
    def __init__(
        self,
        node_id: int,
        self_addr: str,
        driver_ref: Callable[[], "RaftDriver"],
        overrides: dict[int, str] | None = None,
        chunk_bytes: int = 1 << 20,
        identity: ClusterIdentity | None = None,
        dialer: PeerDialer | None = None,
        max_output: int = 64 << 20,
        stuck_timeout: float = 30.0,
    ) -> None:
        """``max_output``: unsent bytes per peer link (--max-peer-output); a link
        whose peer reads none of them for ``stuck_timeout`` seconds is closed."""
        self.node_id = node_id
        self.max_output = max_output
        self.stuck_timeout = stuck_timeout
        self.identity = identity if identity is not None else ClusterIdentity(node_id, None)
        self.dialer = dialer if dialer is not None else PeerDialer(node_id, None, None)
        self.self_addr = self_addr
        self._driver_ref = driver_ref
        self._overrides = dict(overrides or {})
        self._learned: dict[int, str] = {}
        self._links: dict[int, PeerLink] = {}
        self._chunk_bytes = chunk_bytes
        self._frame_ids = itertools.count(1)
        self._snapshot_tasks: set[asyncio.Task[None]] = set()
        self._inbound: Counter[int] = Counter()  # peer -> its open Raft connections to us
        self._levels: dict[int, int] = {}  # peer -> the level its latest Raft connection to us declared

    @property
    def driver(self) -> "RaftDriver":
        return self._driver_ref()

    def raft_path(self) -> str:
        """The path of our connections to peers: who we are, where we listen, the highest
        semantics level we apply (qcore.node.entries), our cluster, how far we have applied
        and whether we are a member there (qcore.node.removal)."""
        driver = self.driver
        return (f"/raft?from={self.node_id}&addr={self.self_addr}&level={ENTRY_LEVEL}{self.identity.query()}"
                f"{removal.declaration(driver.applied, driver.conf_state(), self.node_id)}")

    def address_of(self, peer_id: int) -> str | None:
        if peer_id in self._overrides:
            return self._overrides[peer_id]
        addr = self.driver.address_of(peer_id)
        return addr if addr is not None else self._learned.get(peer_id)

    def connected(self, peer_id: int) -> bool:
        """Is the outbound link to `peer_id` up (so a message sent now is likely delivered)?"""
        link = self._links.get(peer_id)
        return link is not None and link.connected

    def learn(self, peer_id: int, addr: str) -> None:
        if peer_id != self.node_id and self._learned.get(peer_id) != addr:
            self._learned[peer_id] = addr

    # ---------------------------------------------------------------- send
    def send(self, messages: Sequence[PeerMessage]) -> None:
        by_peer: dict[int, list[bytes]] = {}
        for msg in messages:
            if msg.to == self.node_id:
                continue
            if type(msg) is Message and msg.type == MessageType.SNAP:
                task = asyncio.create_task(self._send_snapshot(msg))
                self._snapshot_tasks.add(task)
                task.add_done_callback(self._snapshot_tasks.discard)
                continue
            frames = by_peer.get(msg.to)
            if frames is None:
                frames = by_peer[msg.to] = []
            frames.append(self._frame(msg))
        for peer, frames in by_peer.items():
            link = self._links.get(peer)
            if link is None:
                link = self._links[peer] = PeerLink(self, peer)
            link.send_frames(frames)

    def _frame(self, msg: PeerMessage) -> bytes:
        tag = frame_tag(msg)
        if type(msg) is Message:
            body = encode_message(msg)
        elif type(msg) is ForwardBatch:
            body = encode_forward_batch(msg)
        else:
            assert type(msg) is BatchRefused
            body = encode_batch_refused(msg)
        if tag.endswith("Response"):
            return orjson.dumps({tag: {"id": next(self._frame_ids), "response": {"Ok": body}}})
        return orjson.dumps({tag: {"id": next(self._frame_ids), "request": body}})

    async def _send_snapshot(self, msg: Message) -> None:
        assert msg.snapshot is not None
        addr = self.address_of(msg.to)
        ok = False
        data = msg.snapshot.data
        header = encode_message(msg)
        try:
            if addr is None:
                raise OSError(f"no address for node {msg.to}")
            async with await self.dialer.open(
                addr, self.raft_path(), expect=msg.to, open_timeout=5, max_size=_PEER_FRAME_LIMIT, close_timeout=2,
            ) as ws:
                offset = 0
                total = len(data)
                while True:
                    chunk = data[offset : offset + self._chunk_bytes]
                    done = offset + len(chunk) >= total
                    frame_id = next(self._frame_ids)
                    await ws.send(
                        orjson.dumps({"RaftSnapshot": {"id": frame_id, "request": {
                            "msg": header, "offset": offset, "total": total,
                            "data": base64.b64encode(chunk).decode("ascii"), "done": done,
                        }}}),
                        text=True,
                    )
                    async with asyncio.timeout(30):  # not wait_for: in 3.11 it can swallow a cancel
                        reply = orjson.loads(await ws.recv())
                    body = reply.get("RaftSnapshotResponse", {}).get("response")
                    if not (isinstance(body, dict) and "Ok" in body):
                        raise OSError(f"peer refused snapshot chunk: {reply}")
                    offset += len(chunk)
                    if done:
                        break
            ok = True
            log.info("sent snapshot at index %d (%d bytes) to node %d", msg.snapshot.meta.index, total, msg.to)
        except (OSError, WebSocketException, asyncio.TimeoutError, ValueError) as exc:
            log.warning("sending snapshot to node %d failed: %s", msg.to, exc)
        self.driver.report_snapshot(msg.to, ok)

    # ------------------------------------------------------------- receive
    def on_frame(self, tag: str, body: Any, state: dict[str, Any]) -> Any | None:
        """Handle one inbound Raft frame; return a reply body for RaftSnapshot.

        `state` is per-connection scratch space (the snapshot being assembled).
        Raises RaftCodecError for a malformed message.
        """
        if tag == "RaftSnapshot":
            return self._on_snapshot_chunk(body, state)
        if tag.endswith("Response"):
            ok = body.get("Ok") if isinstance(body, dict) else None
            if ok is None:
                log.debug("peer replied with %s", body)
                return None
            body = ok
        msg: PeerMessage
        if tag == "RaftForward":
            msg = decode_forward_batch(body)
        elif tag == "RaftForwardResponse":
            msg = decode_batch_refused(body)
        else:
            msg = decode_message(body)
        if msg.to != self.node_id:
            raise RaftCodecError(f"message for node {msg.to} delivered to node {self.node_id}")
        self.driver.step(msg)
        return None

    def _on_snapshot_chunk(self, req: Any, state: dict[str, Any]) -> Any:
        if not isinstance(req, dict):
            raise RaftCodecError("RaftSnapshot.request: expected object")
        try:
            header, offset, total, chunk, done = (
                req["msg"], req["offset"], req["total"], base64.b64decode(req["data"], validate=True), req["done"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RaftCodecError(f"RaftSnapshot.request: {exc}") from None
        assembly: _SnapshotAssembly | None = state.get("snapshot")
        if offset == 0:
            assembly = state["snapshot"] = _SnapshotAssembly(header, total)
        if assembly is None or offset != len(assembly.buf) or total != assembly.total:
            state.pop("snapshot", None)
            return {"Err": f"unexpected snapshot chunk at offset {offset}"}
        assembly.buf += chunk
        if done:
            state.pop("snapshot", None)
            if len(assembly.buf) != total:
                return {"Err": f"snapshot size mismatch: got {len(assembly.buf)}, expected {total}"}
            msg = decode_message(assembly.header, snapshot_data=bytes(assembly.buf))
            self.driver.step(msg)
        return {"Ok": {"received": offset + len(chunk)}}

    def inbound_opened(self, peer_id: int, level: int = LEVEL_BEFORE_LEVELS) -> None:
        """A peer's Raft connection to us is open (and authenticated, if required), declaring
        semantics `level` (`declared_level`): it is up, so a link to it waiting to dial again
        dials now; its level is the one `level_of` says from now on."""
        self._inbound[peer_id] += 1
        self._levels[peer_id] = level
        link = self._links.get(peer_id)
        if link is not None:
            link.redial()

    def level_of(self, peer_id: int) -> int | None:
        """The level `peer_id`'s latest Raft connection to us declared (kept after it closes:
        a process restarted declares again); None if none has opened since we started."""
        return self._levels.get(peer_id)

    def inbound_closed(self, peer_id: int) -> None:
        """One of them closed, after everything it carried was stepped. When
        none is left (a snapshot's own connection closing leaves the link),
        the peer's process may have died: report_link_down."""
        self._inbound[peer_id] -= 1
        if self._inbound[peer_id] <= 0:
            del self._inbound[peer_id]
            self.driver.report_link_down(peer_id)

    def on_outbound_reply(self, peer_id: int, frame: Any) -> None:
        log.debug("reply from peer %d on outbound link: %.200s", peer_id, frame)

    async def close(self) -> None:
        for task in list(self._snapshot_tasks):
            task.cancel()
        for link in list(self._links.values()):
            await link.close()
        self._links.clear()
