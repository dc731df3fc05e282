"""Just enough of qcore's wire protocol for the bench to set clusters up.

The bench talks raw frames instead of using qcore.client so that it measures
and controls exactly what goes on the wire (and so it works against any
server that speaks SPEC section 2, including an older qcore).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import Any

import orjson

from qcore.bench.conns import WsConn

logger = logging.getLogger(__name__)

_ids = itertools.count(1)


class AdminError(RuntimeError):
    """A request got an error reply, or no reply."""


class AdminConn:
    """A pipelining request/reply connection keyed by request id."""

    def __init__(self, conn: WsConn, endpoint: str) -> None:
        self._conn = conn
        self.endpoint = endpoint
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def open(cls, endpoint: str, tls: ssl.SSLContext | None = None,
                   login: tuple[str, str] | None = None) -> "AdminConn":
        """``login``: authenticate as this (user, password) first (a cluster with users on)."""
        conn = cls(await WsConn.open(endpoint, tls), endpoint)
        if login is not None:
            check_ok("Authenticate", (await conn.request("Authenticate", user=login[0], password=login[1]))["response"])
        return conn

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = orjson.loads(await self._conn.recv())
                if not isinstance(msg, dict) or len(msg) != 1:
                    continue
                body = next(iter(msg.values()))
                rid = body.get("id") if isinstance(body, dict) else None
                fut = self._waiting.pop(str(rid), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except Exception as exc:  # noqa: BLE001 - connection gone: fail everyone waiting
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(AdminError(f"{self.endpoint}: connection lost: {exc!r}"))
            self._waiting.clear()

    async def request(self, kind: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send ``{kind: {id, **fields}}`` and return the reply's body."""
        rid = f"bench-{next(_ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        await self._conn.send(orjson.dumps({kind: {"id": rid, **fields}}))
        try:
            msg = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            self._waiting.pop(rid, None)
            raise AdminError(f"{self.endpoint}: no reply to {kind} within {timeout}s") from exc
        reply_kind, body = next(iter(msg.items()))
        if reply_kind == "Error":
            raise AdminError(f"{self.endpoint}: {kind} -> {body.get('error')}")
        return body

    async def perform(self, command: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Run one CommandRequest; returns the inner CommandResponse, raising on ``error``."""
        body = await self.request("Perform", timeout=timeout, request={command: fields})
        resp = body.get("response") or {}
        inner = resp.get(command, {}) if isinstance(resp, dict) else {}
        if not isinstance(inner, dict):
            raise AdminError(f"{self.endpoint}: unexpected reply to {command}: {body}")
        if inner.get("error") is not None:
            raise AdminError(f"{self.endpoint}: {command} -> {inner['error']}")
        return inner

    async def close(self) -> None:
        self._reader.cancel()
        try:
            await self._conn.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def check_ok(what: str, response: Any) -> Any:
    """Management replies: ``"Ok"`` or ``{"Ok": ...}`` succeed, ``{"Err": ...}`` raises."""
    if response == "Ok":
        return None
    if isinstance(response, dict) and "Ok" in response:
        return response["Ok"]
    if isinstance(response, dict) and "Err" in response:
        raise AdminError(f"{what}: {response['Err']}")
    raise AdminError(f"{what}: unexpected response {response!r}")

