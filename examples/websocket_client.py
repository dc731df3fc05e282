"""The seed's example client: Init a single-node cluster, then GetMetrics.

    python examples/websocket_client.py [host:port]      (default 127.0.0.1:8080)
    python examples/websocket_client.py wss://host:port --tls-ca-file ca.pem   (TLS; or QCORE_TLS_CA=ca.pem)

A CA file means TLS whatever the scheme written (``ws://`` included), as with
qcore-cli; a ``wss://`` address without one trusts the system's CAs. A node
that cannot be reached or whose certificate does not verify is one line on
stderr and exit status 1.

It speaks the wire protocol directly — one JSON object per WebSocket text
frame, externally tagged (``{"MessageType": {"id": ..., ...}}``) — to show
what goes over the wire. Applications would rather use ``qcore.client.Client``.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import uuid

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, WebSocketException


async def call(ws, message_type: str, **fields) -> dict:
    """Send one request and return its reply (matched by id; this client sends one at a time)."""
    request_id = str(uuid.uuid4())
    request = {message_type: {"id": request_id, **fields}}
    print(">>", json.dumps(request))
    await ws.send(json.dumps(request))
    while True:
        reply = json.loads(await ws.recv())
        (body,) = reply.values()
        if body.get("id") == request_id:
            print("<<", json.dumps(reply, indent=2))
            return reply


async def main(addr: str, ca_file: str | None = None) -> None:
    # TLS when asked for (a CA file or wss://): the node's certificate must
    # verify against the CA (or the system's CAs), or the connection is refused.
    tls = None
    if ca_file or addr.startswith("wss://"):
        try:
            tls = ssl.create_default_context(cafile=ca_file or None)
        except OSError as e:  # missing, unreadable, or not a PEM certificate
            raise OSError(f"cannot use the CA file {ca_file}: {e.strerror or e}") from e
    addr = addr.removeprefix("ws://").removeprefix("wss://")
    addr = f"{'wss' if tls else 'ws'}://{addr}"
    async with connect(addr, ssl=tls) as ws:
        # nodes: [] makes a single-node cluster of the node we are connected to.
        # A second run answers {"Err": "already initialised"}: that is fine.
        await call(ws, "Init", nodes=[])
        await call(ws, "GetMetrics")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Init a single-node cluster, then GetMetrics.")
    p.add_argument("addr", nargs="?", default="127.0.0.1:8080", help="host:port, ws://host:port or wss://host:port")
    p.add_argument("--tls-ca-file", default=os.environ.get("QCORE_TLS_CA"),
                   help="the CA that signs the node's certificate (default $QCORE_TLS_CA); implies wss://")
    args = p.parse_args()
    try:
        asyncio.run(main(args.addr, args.tls_ca_file))
    except OSError as e:  # refused, unreachable, a certificate that does not verify, an unreadable CA file
        sys.exit(f"websocket_client: {args.addr}: {e}")
    except InvalidMessage as e:  # no HTTP answer to a plain handshake: most often a TLS node
        sys.exit(f"websocket_client: {args.addr}: {e} (is the node serving TLS? then connect with wss:// and its CA file)")
    except WebSocketException as e:  # a handshake refused, a connection that broke off
        sys.exit(f"websocket_client: {args.addr}: {e}")
