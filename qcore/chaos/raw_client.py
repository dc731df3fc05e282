"""A deliberately thin client for the chaos harness: one request, one outcome.

The harness does not use :mod:`qcore.client` on purpose: a friendly client
retries and follows leaders, which is right for users but would hide from the
history what really happened to each request (a retried ``Add`` that was
applied twice is exactly the kind of bug being hunted). Here every request is
sent once, on one WebSocket connection to one node, and its outcome is
classified precisely:

* ``ok`` — a reply without error;
* ``fail`` — certainly not applied: the connection could not be opened, or
  the error's kind promises it was not (:data:`qcore.protocol.errors.NOT_APPLIED`),
  or it is a final answer (the command was refused), or the request only reads;
* ``unknown`` — anything else for a write: a timeout, a connection lost after
  sending, an ``outcome_unknown`` error.

With ``login`` (a ``--users`` run), every connection authenticates first; a
node not initialised yet has no users and is talked to as it is, and an
``auth_required`` answer drops the connection so the next request logs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from qcore.protocol.errors import retry_class

logger = logging.getLogger(__name__)

__all__ = ["RawClient", "Outcome", "Reply", "register_id", "read_request", "write_request"]

Outcome = Literal["ok", "fail", "unknown"]


@dataclass
class Reply:
    outcome: Outcome
    body: Any = None  # the reply's fields (the dict under the message type) when ok
    error: str | None = None


class _NotSent(Exception):
    pass


class NodeRemoved(_NotSent):
    """The node answers, but only that it was removed from the cluster: with
    users on, nobody can log in there (qcore.node.removal)."""


class RawClient:
    """One WebSocket connection to one node, (re)opened on demand; requests may overlap."""

    _ids = itertools.count(1)

    def __init__(self, addr: str, name: str = "chaos", max_size: int | None = 64 << 20,
                 tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None) -> None:
        """``tls``: connect with wss://, verifying the node against this context; ``login``:
        (user, password) to authenticate every connection as (users on)."""
        self.addr = addr
        self.tls = tls
        self.login = login
        self.name = name
        self.max_size = max_size
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def _connection(self, timeout: float) -> ClientConnection:
        async with self._lock:
            if self._ws is None:
                try:
                    ws: ClientConnection = await asyncio.wait_for(
                        websockets.connect(f"{'wss' if self.tls else 'ws'}://{self.addr}", max_size=self.max_size,
                                           open_timeout=timeout, ping_interval=None, ssl=self.tls),
                        timeout,
                    )
                except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake,
                        websockets.ConnectionClosed) as e:
                    raise _NotSent(f"connect to {self.addr}: {e!r}") from e
                self._ws = ws
                self._reader = asyncio.create_task(self._read_loop(ws))
                if self.login is not None:
                    await self._authenticate(ws, timeout)
                return ws
            return self._ws

    async def _authenticate(self, ws: ClientConnection, timeout: float) -> None:
        assert self.login is not None
        user, password = self.login
        try:
            reply = await self._exchange(ws, "Authenticate", {"user": user, "password": password}, timeout)
        except (_NotSent, ConnectionError, asyncio.TimeoutError, TimeoutError) as e:
            await self._drop(ws)
            raise _NotSent(f"authenticate at {self.addr}: {e!r}") from e
        ((tag, body),) = reply.items()
        if tag == "AuthenticateResponse" and "Ok" in (body.get("response") or {}):
            return
        if tag == "Error" and body.get("kind") == "not_initialised":
            return  # no users yet: talk to it as it is (auth_required later drops the connection)
        await self._drop(ws)
        if tag == "Error" and body.get("kind") == "removed":
            raise NodeRemoved(f"authenticate at {self.addr}: {body}")
        raise _NotSent(f"authenticate at {self.addr}: {body}")

    async def _drop(self, ws: ClientConnection) -> None:
        if self._ws is ws:
            self._ws = None
        with contextlib.suppress(Exception):
            await ws.close()

    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                try:
                    msg = orjson.loads(frame)
                    ((_, body),) = msg.items()
                    fut = self._waiters.pop(str(body.get("id")), None)
                except (orjson.JSONDecodeError, ValueError, AttributeError):
                    logger.warning("%s: undecodable reply %r", self.name, frame[:200])
                    continue
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self._waiters.clear()

    async def call(self, msg_type: str, fields: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and return the whole reply message ``{Type: {...}}``.

        Raises :class:`_NotSent` when the request never left, ConnectionError
        or TimeoutError when it left but no reply came.
        """
        return await self._exchange(await self._connection(timeout), msg_type, fields, timeout)

    async def _exchange(self, ws: ClientConnection, msg_type: str, fields: dict[str, Any],
                        timeout: float) -> dict[str, Any]:
        rid = f"{self.name}-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            # A node that stops reading (paused, or pushing back) must not hang
            # the sender: the send is under the same deadline as the reply.
            await asyncio.wait_for(ws.send(orjson.dumps({msg_type: {"id": rid, **fields}}).decode()), timeout)
        except websockets.ConnectionClosed as e:
            self._waiters.pop(rid, None)
            raise _NotSent(repr(e)) from e
        except (asyncio.TimeoutError, TimeoutError):
            self._waiters.pop(rid, None)
            # Part of the frame may have left: the stream is unusable.
            if self._ws is ws:
                self._ws = None
            ws.transport.abort()
            raise
        try:
            return await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
        finally:
            self._waiters.pop(rid, None)

    async def perform(self, request: dict[str, Any], timeout: float, writes: bool) -> Reply:
        """A ``Perform`` with its outcome classified (see the module docstring)."""
        try:
            msg = await self.call("Perform", {"request": request}, timeout)
        except _NotSent as e:
            return Reply("fail", error=str(e))
        except (ConnectionError, asyncio.TimeoutError, TimeoutError) as e:
            return Reply("unknown" if writes else "fail", error=repr(e))
        ((tag, body),) = msg.items()
        if tag == "Error":
            text, kind = str(body.get("error")), body.get("kind")
            if kind == "auth_required":  # a connection opened before users were on: log in anew
                await self.close()
        else:
            ((_, resp),) = body["response"].items()
            text = resp.get("error")
            if text is None:
                return Reply("ok", body=resp)
            kind = "rejected"  # the state machine's answer: the command applied as a no-op
        unknown = retry_class(kind) == "unknown" or kind is None
        return Reply("unknown" if unknown and writes else "fail", error=text)

    async def management(self, msg_type: str, fields: dict[str, Any], timeout: float) -> Any:
        """A management request; returns its ``response`` or raises RuntimeError on Err."""
        msg = await self.call(msg_type, fields, timeout)
        ((tag, body),) = msg.items()
        if tag == "Error":
            if body.get("kind") == "auth_required":
                await self.close()
            raise RuntimeError(f"{msg_type}: {body.get('error')}")
        resp = body.get("response")
        if isinstance(resp, dict) and "Err" in resp:
            raise RuntimeError(f"{msg_type}: {resp['Err']}")
        return resp

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


def register_id(n: int) -> dict[str, Any]:
    return {"typ": "Register", "id": n}


def read_request(entity_id: int, field: str = "Value") -> dict[str, Any]:
    return {"UpdateEntity": {"request": [{"Read": {
        "entity_id": register_id(entity_id), "field_type": field,
        "value": None, "write_time": None, "writer_id": None}}]}}


def write_request(entity_id: int, value: int, behavior: str, field: str = "Value") -> dict[str, Any]:
    return {"UpdateEntity": {"request": [{"Write": {
        "entity_id": register_id(entity_id), "field_type": field, "value": {"Int": value},
        "push_condition": "Always", "adjust_behavior": behavior,
        "write_time": None, "writer_id": None}}]}}


def read_value(body: dict[str, Any]) -> int:
    """The Int read by a successful :func:`read_request`."""
    value = body["response"][0]["Read"]["value"]
    if not isinstance(value, dict) or "Int" not in value:
        raise ValueError(f"read returned {value!r}, not an Int")
    return int(value["Int"])
