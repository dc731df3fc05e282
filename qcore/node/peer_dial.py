"""Opening a connection to a peer: TLS verified against the cluster's CA
(qcore.node.tls), then, with a peer secret, the handshake that proves each
side to the other (qcore.node.peer_auth) before anything else is sent.
Used by the Raft links, snapshot transfers and the forwarding link alike.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from qcore.node.peer_auth import Dialler, PeerKeys
from qcore.tls import scheme
from qcore.wsfast import TlsClientConnection

__all__ = ["PeerAuthFailed", "PeerDialer"]


class PeerAuthFailed(ConnectionError):
    """The peer handshake failed (wrong or missing secret, another node at the address)."""


class PeerDialer:
    def __init__(self, node_id: int, tls: ssl.SSLContext | None, keys: PeerKeys | None,
                 handshake_timeout: float = 5.0) -> None:
        self.node_id = node_id
        self.tls = tls
        self.keys = keys
        self._timeout = handshake_timeout

    def uri(self, addr: str, path: str) -> str:
        return f"{scheme(self.tls)}://{addr}{path}"

    async def open(self, addr: str, path: str, expect: int | None = None, **kwargs: Any) -> ClientConnection:
        """A connection to the peer at ``addr`` that has passed the handshake.
        ``expect``: the node id that must answer there (None: any member).
        Raises OSError (PeerAuthFailed, ssl.SSLCertVerificationError), TimeoutError
        or a websockets error."""
        ws = await connect(self.uri(addr, path), ssl=self.tls, proxy=None, compression=None,
                           create_connection=TlsClientConnection, **kwargs)
        if self.keys is None:
            return ws
        try:
            async with asyncio.timeout(self._timeout):  # not wait_for: in 3.11 it can swallow a cancel
                await self._handshake(ws, expect)
        except BaseException:
            await ws.close()
            raise
        return ws

    async def _handshake(self, ws: ClientConnection, expect: int | None) -> None:
        assert self.keys is not None
        d = Dialler(self.keys, self.node_id, expect)
        await ws.send(d.hello(), text=True)
        while True:
            nxt = d.receive(await ws.recv(decode=False))
            if d.done:
                return
            if nxt is None:
                raise PeerAuthFailed(f"peer handshake failed: {d.error}")
            await ws.send(nxt, text=True)
