"""The seed's example client: Init a single-node cluster, then GetMetrics.

    python examples/websocket_client.py [host:port]      (default 127.0.0.1:8080)
    python examples/websocket_client.py wss://host:port --tls-ca-file ca.pem   (TLS; or QCORE_TLS_CA=ca.pem)

It speaks the wire protocol directly — one JSON object per WebSocket text
frame, externally tagged (``{"MessageType": {"id": ..., ...}}``) — to show
what goes over the wire. Applications would rather use ``qcore.client.Client``.
"""

import argparse
import asyncio
import json
import os
import ssl
import uuid

from websockets.asyncio.client import connect


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
    # TLS when asked for: the node's certificate must verify against the CA
    # (or the system's CAs), or the connection is refused.
    tls = None
    if ca_file or addr.startswith("wss://"):
        tls = ssl.create_default_context(cafile=ca_file)
    if "://" not in addr:
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
    asyncio.run(main(args.addr, args.tls_ca_file))
