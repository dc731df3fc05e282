"""The seed's example client: Init a single-node cluster, then GetMetrics.

    python examples/websocket_client.py [host:port]      (default 127.0.0.1:8080)

It speaks the wire protocol directly — one JSON object per WebSocket text
frame, externally tagged (``{"MessageType": {"id": ..., ...}}``) — to show
what goes over the wire. Applications would rather use ``qcore.client.Client``.
"""

import asyncio
import json
import sys
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


async def main(addr: str) -> None:
    async with connect(f"ws://{addr}") as ws:
        # nodes: [] makes a single-node cluster of the node we are connected to.
        # A second run answers {"Err": "already initialised"}: that is fine.
        await call(ws, "Init", nodes=[])
        await call(ws, "GetMetrics")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"))
