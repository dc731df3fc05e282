"""A minimal HTTP GET for the tests of a node's HTTP endpoints."""

from __future__ import annotations

import asyncio
import ssl as _ssl


async def http_get(addr: str, path: str, timeout: float = 5.0,
                   ssl: _ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of GET `path` on `addr` (HTTPS with `ssl`)."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=ssl, server_hostname=host if ssl else None), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: qcore-tests\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)  # the node closes after one response
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body
