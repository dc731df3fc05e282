"""No-op servers that answer every request at once: the load generator's ceiling.

If the generator can only push X requests/s at a server that does nothing,
any system measured near X is limited by the client, not by itself. The
WebSocket server answers qcore-shaped frames (``Perform`` -> a successful
``PerformResponse`` with the same id) and the PySyncObj bench server's shape
(``{"id", "op"}`` -> ``{"id", "ok": true}``); the HTTP server answers every
POST with 200 and a small JSON body, like etcd's gateway.

Run as ``python -m qcore.bench.noop --ws-port P [--http-port Q]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qcore.bench.loadgen import run_async
from qcore.wsfast import SinkServerConnection, server_connection_class, write_frames

logger = logging.getLogger(__name__)

_OK_UPDATE: dict[str, Any] = {"UpdateEntity": {"response": [], "error": None}}
_HTTP_BODY = b'{"header":{"cluster_id":"0","member_id":"0","revision":"1","raft_term":"1"}}'
_HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_HTTP_BODY),
    _HTTP_BODY,
)


def answer(frame: bytes | str) -> bytes:
    """The reply a no-op server gives to one frame."""
    try:
        msg: Any = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return orjson.dumps({"Error": {"id": None, "error": "invalid JSON"}})
    if isinstance(msg, dict) and "op" in msg:
        return orjson.dumps({"id": msg.get("id"), "ok": True})
    if isinstance(msg, dict) and len(msg) == 1:
        kind, body = next(iter(msg.items()))
        rid = body.get("id") if isinstance(body, dict) else None
        if kind == "Perform":
            return orjson.dumps({"PerformResponse": {"id": rid, "response": _OK_UPDATE}})
        return orjson.dumps({f"{kind}Response": {"id": rid, "response": "Ok"}})
    return orjson.dumps({"Error": {"id": None, "error": "unknown message"}})


async def _ws_handler(ws: ServerConnection) -> None:
    # Answered from the connection's callback, the way a qcore node takes
    # requests (qcore.wsfast), so the ceiling shows what a server that
    # does nothing else costs the load generator, not websockets' recv() queue.
    if isinstance(ws, SinkServerConnection):
        def sink(data: bytes, _text: bool) -> None:
            write_frames(ws, (answer(data),))

        ws.sink = sink
    try:
        async for frame in ws:  # only fragmented messages arrive here
            await ws.send(answer(frame), text=True)
    except ConnectionClosed:
        pass


async def _http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            writer.write(_HTTP_REPLY)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve_noop(host: str, ws_port: int, http_port: int | None, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set."""
    async with serve(
        _ws_handler, host, ws_port, compression=None, ping_interval=None, max_size=None,
        create_connection=server_connection_class(),
    ):
        http = await asyncio.start_server(_http_handler, host, http_port) if http_port else None
        logger.info("no-op server on ws %s:%d http %s", host, ws_port, http_port)
        await stop.wait()
        if http is not None:
            http.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcore.bench.noop", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, default=None)
    args = parser.parse_args(argv)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_noop(args.host, args.ws_port, args.http_port, stop)

    run_async(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
