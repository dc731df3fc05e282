"""A single-process stand-in for a node, with bugs on demand, to test the harness.

It speaks just enough of the protocol (GetMetrics, Init, AddLearner,
ChangeMembership, Perform with UpdateEntity on Register.Value and
FindEntities) for the chaos harness to drive it. It is *not* a model of the
real node: it exists so that the harness can be shown to catch the bugs it is
meant to catch — acknowledged writes lost on kill -9 (``--volatile``) and
stale reads (``--stale-reads``) — and to pass a correct server.

    python tests/chaos/fake_node.py --id 1 --ws-addr 127.0.0.1:P --config-file F --data-dir D [--volatile] [--stale-reads]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve


class FakeNode:
    def __init__(self, registers: int, data_dir: Path, volatile: bool, stale_reads: bool) -> None:
        self.path = data_dir / "state.json"
        self.volatile = volatile
        self.stale_reads = stale_reads
        self.values: dict[int, int] = {i: 0 for i in range(1, registers + 1)}
        self.old: dict[int, int] = dict(self.values)  # what a stale read returns
        self.applied = 0
        if not volatile and self.path.exists():
            self.values = {int(k): v for k, v in json.loads(self.path.read_text()).items()}
        self.rng = random.Random(0)

    def persist(self) -> None:
        if self.volatile:
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.values, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def perform(self, request: dict[str, Any]) -> dict[str, Any]:
        if "FindEntities" in request:
            items = [{"typ": "Register", "id": i} for i in sorted(self.values)]
            return {"FindEntities": {"response": {"items": items, "total": len(items), "next_cursor": None},
                                     "error": None}}
        reqs = request["UpdateEntity"]["request"]
        out = []
        for r in reqs:
            ((tag, body),) = r.items()
            key = body["entity_id"]["id"]
            if tag == "Read":
                source = self.old if self.stale_reads and self.rng.random() < 0.3 else self.values
                body = dict(body, value={"Int": source[key]})
            else:
                v = body["value"]["Int"]
                self.old[key] = self.values[key]
                self.values[key] = v if body["adjust_behavior"] == "Set" else self.values[key] + v
                self.applied += 1
                self.persist()
            out.append({tag: body})
        return {"UpdateEntity": {"response": out, "error": None}}

    def handle(self, frame: str | bytes) -> dict[str, Any]:
        ((tag, body),) = orjson.loads(frame).items()
        rid = body.get("id")
        if tag == "GetMetrics":
            return {"GetMetricsResponse": {"id": rid, "response": {
                "id": 1, "state": "Leader", "current_term": 1, "last_applied": {"index": self.applied}}}}
        if tag in ("Init", "AddLearner", "ChangeMembership"):
            return {f"{tag}Response": {"id": rid, "response": "Ok" if tag == "Init" else {"Ok": None}}}
        if tag == "Perform":
            return {"PerformResponse": {"id": rid, "response": self.perform(body["request"])}}
        return {"Error": {"id": rid, "error": f"unknown message {tag}"}}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--id", type=int)
    p.add_argument("--ws-addr")
    p.add_argument("--config-file", type=Path)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--peer-override", action="append", default=[])
    p.add_argument("--volatile", action="store_true")
    p.add_argument("--stale-reads", action="store_true")
    a = p.parse_args()
    a.data_dir.mkdir(parents=True, exist_ok=True)
    registers = len(re.findall(r"entity_type: Register, name", a.config_file.read_text()))
    node = FakeNode(registers, a.data_dir, a.volatile, a.stale_reads)

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            await ws.send(orjson.dumps(node.handle(frame)).decode())

    host, port = a.ws_addr.rsplit(":", 1)
    async with serve(handler, host, int(port)):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
