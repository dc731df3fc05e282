"""A stand-in for a qcore node: a real WebSocket server on 127.0.0.1 whose
answers each test scripts. It is a test double of the *server*; the client
under test is the real one, talking over real sockets.

By default it serves a tiny in-memory store (enough of SPEC 2.2 to exercise
the client's helpers); a test replaces ``node.behaviour`` to misbehave:
answer out of order, never answer, drop the connection, refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qcore.protocol import messages as m

Behaviour = Callable[["FakeNode", ServerConnection, Any], Awaitable[Any]]


class FakeNode:
    def __init__(self, node_id: int = 1) -> None:
        self.node_id = node_id
        self.received: list[Any] = []
        self.behaviour: Behaviour = FakeNode.serve_store
        self.connections: list[ServerConnection] = []
        self.arrived = asyncio.Condition()
        self._server: Server | None = None
        self.address = ""
        # the tiny store
        self.fields: dict[tuple[str, int, str], Any] = {}
        self.entities: list[dict[str, Any]] = []
        self.schemas: dict[str, Any] = {"User": {"entity_type": "User", "inherit": None, "fields": {}}}
        self.next_entity = 1
        self.metrics: dict[str, Any] = {"id": node_id, "state": "Leader", "current_leader": node_id, "last_applied": 10}

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def drop_connections(self) -> None:
        for ws in self.connections:
            ws.transport.abort()

    async def wait_received(self, n: int) -> None:
        """Wait until ``n`` requests have arrived in total."""
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= n)

    def of_type(self, cls: type) -> list[Any]:
        return [r for r in self.received if type(r) is cls]

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        try:
            async for frame in ws:
                msg = m.decode_message(frame)
                async with self.arrived:
                    self.received.append(msg)
                    self.arrived.notify_all()
                # Each request in its own task, so a test may hold replies back.
                asyncio.get_running_loop().create_task(self._answer(ws, msg))
        except ConnectionClosed:
            pass
        finally:
            self.connections.remove(ws)

    async def _answer(self, ws: ServerConnection, msg: Any) -> None:
        reply = await self.behaviour(self, ws, msg)
        if reply is not None:
            try:
                await ws.send(m.encode_message(reply).decode())
            except ConnectionClosed:
                pass

    async def send(self, ws: ServerConnection, msg: Any) -> None:
        await ws.send(m.encode_message(msg).decode())

    # ------------------------------------------------------------ default behaviour

    async def serve_store(self, ws: ServerConnection, msg: Any) -> Any:
        if type(msg) is m.GetMetrics:
            return m.GetMetricsResponse(msg.id, self.metrics)
        if type(msg) is m.Init:
            return m.InitResponse(msg.id, m.ok())
        if type(msg) in (m.AddLearner, m.ChangeMembership, m.RemoveNode):
            return m.RESPONSE_TYPES[type(msg)](msg.id, m.ok({"log_index": 11}))
        if type(msg) is m.Perform:
            return m.PerformResponse(msg.id, self.perform(msg.request))
        return m.Error(msg.id, f"fake node does not serve {type(msg).__name__}")

    def perform(self, req: dict[str, Any]) -> dict[str, Any]:
        ((tag, body),) = req.items()
        if tag == "UpdateEntity":
            out = []
            for r in body["request"]:
                ((kind, rb),) = r.items()
                key = (rb["entity_id"]["typ"], rb["entity_id"]["id"], rb["field_type"])
                if kind == "Read":
                    if key not in self.fields:
                        return {tag: {"response": [], "error": f"request 0: no field {key[2]}"}}
                    v, t, w = self.fields[key]
                    out.append({"Read": {**rb, "value": v, "write_time": t, "writer_id": w}})
                else:
                    t = rb["write_time"] or {"secs_since_epoch": 1, "nanos_since_epoch": 0}
                    self.fields[key] = (rb["value"], t, rb["writer_id"])
                    out.append(r)
            return {tag: {"response": out, "error": None}}
        if tag == "CreateEntity":
            eid = {"typ": body["entity_type"], "id": self.next_entity}
            self.next_entity += 1
            self.entities.append(eid)
            self.fields[(eid["typ"], eid["id"], "Name")] = ({"String": body["name"]}, None, None)
            return {tag: {"response": eid, "error": None}}
        if tag == "DeleteEntity":
            if body["entity_id"] not in self.entities:
                return {tag: {"error": "entity not found"}}
            self.entities.remove(body["entity_id"])
            return {tag: {"error": None}}
        if tag == "FindEntities":
            items = [e for e in self.entities if e["typ"] == body["entity_type"]]
            opts = body["page_opts"] or {"limit": None, "cursor": None}
            start = int(opts["cursor"] or 0)
            limit = opts["limit"] or len(items)
            page = items[start : start + limit]
            nxt = str(start + limit) if start + limit < len(items) else None
            return {tag: {"response": {"items": page, "total": len(items), "next_cursor": nxt}, "error": None}}
        if tag == "GetEntityTypes":
            types = sorted({e["typ"] for e in self.entities})
            return {tag: {"response": {"items": types, "total": len(types), "next_cursor": None}, "error": None}}
        if tag == "EntityExists":
            return {tag: {"response": body["entity_id"] in self.entities}}
        if tag == "FieldExists":
            return {tag: {"response": body["field_type"] in ("Name", "Parent", "Children")}}
        if tag in ("GetSchema", "GetCompleteSchema"):
            schema = self.schemas.get(body["entity_type"])
            return {tag: {"response": schema, "error": None if schema else f"unknown type {body['entity_type']}"}}
        if tag == "SetSchema":
            self.schemas[body["entity_schema"]["entity_type"]] = body["entity_schema"]
            return {tag: {"error": None}}
        return {tag: {"error": f"fake node does not do {tag}"}}
