"""A minimal HTTP client for the tests of a node's HTTP endpoints."""

from __future__ import annotations

import asyncio
import ssl as _ssl

import websockets

#: websockets 17 hands requests of every method to the node; older releases close any but GET unanswered.
METHODS_REACH_THE_NODE = int(websockets.__version__.split(".")[0]) >= 17


async def http_get(addr: str, path: str, timeout: float = 5.0,
                   ssl: _ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of GET `path` on `addr` (HTTPS with `ssl`)."""
    return parse_response(await http_exchange(addr, "GET", path, timeout=timeout, ssl=ssl))


async def http_exchange(addr: str, method: str, path: str, headers: str = "", body: bytes = b"",
                        timeout: float = 5.0, ssl: _ssl.SSLContext | None = None) -> bytes:
    """Every byte the node sends for one request (`headers`: more header lines, each ending in CRLF),
    up to its close."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=ssl, server_hostname=host if ssl else None), timeout)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: qcore-tests\r\n{headers}\r\n".encode()
                     + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)  # the node closes after one response
    finally:
        writer.close()


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body
