"""Which connections may carry peer messages (SPEC 8.2).

A connection is a client connection unless it authenticated as a peer:
by the secret handshake (qcore.node.peer_auth) or, with ``--peer-cert-auth``,
by a client certificate that verified against the cluster's CA. The server
asks this gate about every connection it accepts (`open`) and, while peer
authentication is on, about every frame (`refusal`):

- Raft messages and forwarded writes (``RaftVote``, ``RaftAppend``,
  ``RaftSnapshot``, ``RaftForward`` and their responses) are taken only
  from a peer; on any other connection they get ``Error`` ("not an
  authenticated peer", kind ``unauthenticated_peer``), reach neither Raft
  nor the store, and are logged at most once per `_LOG_EVERY` seconds;
- a connection opened on a peer path (``/raft``, ``/forward``) carries
  nothing else until it has authenticated, and one that has not within
  `HANDSHAKE_TIMEOUT` is closed;
- a peer's ``/raft`` connection carries only peer messages; client
  requests relayed by a peer travel on its ``/forward`` connection.

With peer authentication off every connection is trusted as before (SPEC 8:
off by default).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qcore.node.peer_auth import NOT_A_PEER, Acceptor, PeerKeys
from qcore.node.remote import remote_of
from qcore.node.tls import verified_client_cert
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error, refusal

log = logging.getLogger(__name__)

#: Frames only a peer may send.
PEER_TAGS = frozenset({
    "RaftVote", "RaftAppend", "RaftSnapshot", "RaftForward",
    "RaftVoteResponse", "RaftAppendResponse", "RaftSnapshotResponse", "RaftForwardResponse",
})
HANDSHAKE_TIMEOUT = 10.0  # seconds a peer-path connection has to authenticate
_LOG_EVERY = 10.0


class ConnKind(enum.Enum):
    CLIENT = "client"
    PEER = "peer"


def declared_peer(path: str) -> tuple[str, int | None, str | None] | None:
    """``(purpose, node id, address)`` a peer path declares (``/raft?from=..&addr=..``,
    ``/forward``); None for any other path."""
    parts = urlsplit(path)
    if parts.path not in ("/raft", "/forward"):
        return None
    query = parse_qs(parts.query)
    try:
        node_id: int | None = int(query["from"][0])
    except (KeyError, ValueError, IndexError):
        node_id = None
    addr = query.get("addr", [None])[0]
    return parts.path[1:], node_id, addr


class PeerSide:
    """What the gate knows about one connection (kept on its ConnContext)."""

    __slots__ = ("kind", "path", "purpose", "declared_id", "declared_addr", "acceptor", "timer")

    def __init__(self, path: str, purpose: str | None, declared_id: int | None, declared_addr: str | None) -> None:
        self.kind = ConnKind.CLIENT
        self.path = path  # the request path (it declares the peer's cluster too: cluster_identity)
        self.purpose = purpose  # "raft", "forward" or None (a client's path)
        self.declared_id = declared_id
        self.declared_addr = declared_addr
        self.acceptor: Acceptor | None = None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def peer(self) -> bool:
        return self.kind is ConnKind.PEER


class PeerGate:
    def __init__(self, node_id: int, keys: PeerKeys | None, cert_auth: bool,
                 on_peer: Callable[[PeerSide], None],
                 handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """``on_peer(side)`` is called for each connection that becomes a
        peer's (with auth off: each that declares a peer path)."""
        self.node_id = node_id
        self.keys = keys
        self.cert_auth = cert_auth
        self.enabled = keys is not None or cert_auth
        self._on_peer = on_peer
        self._timeout = handshake_timeout
        self._logged_at = -_LOG_EVERY
        self._unlogged = 0

    # ------------------------------------------------------------ connections
    def open(self, ws: Any, path: str) -> PeerSide:
        declared = declared_peer(path)
        side = PeerSide(path, *declared) if declared is not None else PeerSide(path, None, None, None)
        if declared is None:
            return side
        if not self.enabled:
            side.kind = ConnKind.PEER
            self._on_peer(side)
        elif self.cert_auth and verified_client_cert(ws.transport):
            self._become_peer(side, "client certificate")
        else:
            side.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, ws, side)
        return side

    def close(self, side: PeerSide) -> None:
        if side.timer is not None:
            side.timer.cancel()
            side.timer = None

    def _become_peer(self, side: PeerSide, how: str) -> None:
        side.kind = ConnKind.PEER
        self.close(side)
        if side.declared_id is not None:  # a node's Raft link: one per peer and reconnection
            log.info("node %s (%s) authenticated as a peer by %s", side.declared_id, side.declared_addr, how)
        else:  # a /forward connection (a relay, or one per member per GetClusterMetrics): not worth a line each
            log.debug("a /%s connection authenticated as a peer by %s", side.purpose, how)
        self._on_peer(side)

    def _expire(self, ws: Any, side: PeerSide) -> None:
        side.timer = None
        if not side.peer:
            self._log_refusal(ws, f"peer handshake not completed within {self._timeout:g}s: closing")
            asyncio.ensure_future(ws.close(1008, "peer handshake timed out"))

    # ------------------------------------------------------------ frames
    def refusal(self, ws: Any, side: PeerSide, tag: str, rid: Any) -> m.Error | None:
        """Why this frame may not be served on this connection (None: it may).
        ``rid``: the frame's request id (None: it has none, the refusal gets a
        fresh one; made only then, as this runs for every frame). Call only
        while `enabled`."""
        if side.kind is ConnKind.PEER:
            if tag in PEER_TAGS or side.purpose == "forward":
                return None
            return error(m.new_id() if rid is None else rid, Kind.INVALID,
                         f"{tag}: a peer's Raft connection carries only peer messages")
        if tag not in PEER_TAGS and side.purpose is None:
            return None  # a client's request on a client's connection
        self._log_refusal(ws, f"{tag} refused: {NOT_A_PEER}")
        return error(m.new_id() if rid is None else rid, Kind.UNAUTHENTICATED_PEER, f"{tag}: {NOT_A_PEER}")

    def handshake(self, ws: Any, side: PeerSide, msg: m.PeerAuth) -> tuple[m.PeerAuthResponse, bool]:
        """The reply to one step of the secret handshake, and whether the
        connection must be closed once it is sent (a failed handshake)."""
        if self.keys is None or side.purpose is None:
            why = ("peer authentication by secret is not configured on this node" if self.keys is None
                   else "the peer handshake belongs on a /raft or /forward connection")
            reply: m.PeerAuthResponse = refusal(m.PeerAuthResponse, msg.id, Kind.UNAUTHENTICATED_PEER, why)
            return reply, True
        if side.acceptor is None:
            side.acceptor = Acceptor(self.keys, self.node_id, side.declared_id)
        reply = side.acceptor.on_request(msg)
        if side.acceptor.authenticated and not side.peer:
            self._become_peer(side, "the peer secret")
        elif side.acceptor.failed:
            self._log_refusal(ws, f"peer handshake failed: {side.acceptor.error}")
            return reply, True
        return reply, False

    def _log_refusal(self, ws: Any, what: str) -> None:
        """One line per `_LOG_EVERY` seconds at most: a stranger must not be
        able to fill the disk with our complaints."""
        now = time.monotonic()
        if now - self._logged_at < _LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more refusals since the last line)" if self._unlogged else ""
        self._logged_at, self._unlogged = now, 0
        log.warning("from %s: %s%s", remote_of(ws), what, more)

