"""One PySyncObj process with a tiny request server in front (``--vs pysyncobj``).

PySyncObj is a library, not a server: each process holds a replicated dict
(a ``SyncObj`` subclass, journal on disk) and serves the load generator over
WebSocket with small JSON frames ``{"id", "op", "k", "v"}`` ->
``{"id", "ok", "v"}``. Replicated calls complete on PySyncObj's own tick
thread; the callback hands the result back to the asyncio loop.

Reads are local (``get``): PySyncObj has no linearizable read, so its read
figures are not comparable with qcore's or etcd's and the report says so.

Run as ``python -m qcore.bench.pysyncobj_server --self 127.0.0.1:P
--partners 127.0.0.1:Q,... --ws-port W --dir DIR [--batch]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import orjson
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qcore.bench.loadgen import run_async

logger = logging.getLogger(__name__)


class BenchKV(SyncObj):
    """A replicated dict with the operations the bench workloads need."""

    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._data: dict[str, Any] = {}

    @replicated
    def put(self, key: str, value: Any) -> bool:
        self._data[key] = value
        return True

    @replicated
    def add(self, key: str, delta: int) -> int:
        value = int(self._data.get(key, 0)) + delta
        self._data[key] = value
        return value

    @replicated
    def put_many(self, items: list[list[Any]]) -> bool:
        for key, value in items:
            self._data[key] = value
        return True

    def get(self, key: str) -> Any:
        return self._data.get(key)


def _serve_requests(kv: BenchKV) -> Any:
    loop = asyncio.get_running_loop()

    def settle(fut: asyncio.Future[Any], result: Any, err: Any) -> None:
        if not fut.done():
            fut.set_result((result, err))

    async def replicate(method: Any, *args: Any) -> tuple[Any, Any]:
        fut: asyncio.Future[Any] = loop.create_future()
        method(*args, callback=lambda res, err: loop.call_soon_threadsafe(settle, fut, res, err))
        return await fut

    async def handler(ws: ServerConnection) -> None:
        try:
            while True:
                msg = orjson.loads(await ws.recv(decode=False))
                op, rid = msg.get("op"), msg.get("id")
                reply: dict[str, Any] = {"id": rid, "ok": True}
                if op == "get":
                    reply["v"] = kv.get(msg["k"])
                elif op == "status":
                    leader = kv._getLeader()
                    reply.update(ready=bool(kv.isReady()), leader=str(leader) if leader is not None else None)
                else:
                    if op == "set":
                        res, err = await replicate(kv.put, msg["k"], msg["v"])
                    elif op == "add":
                        res, err = await replicate(kv.add, msg["k"], int(msg["v"]))
                    elif op == "batch":
                        res, err = await replicate(kv.put_many, msg["v"])
                    else:
                        res, err = None, f"unknown op {op!r}"
                    reply["ok"] = err == FAIL_REASON.SUCCESS
                    reply["v"] = res
                    if not reply["ok"]:
                        reply["error"] = str(err)
                await ws.send(orjson.dumps(reply), text=True)
        except ConnectionClosed:
            pass

    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcore.bench.pysyncobj_server")
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--partners", default="")
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--batch", action="store_true", help="PySyncObj's default appendEntriesUseBatch=True")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = Path(args.dir)
    data.mkdir(parents=True, exist_ok=True)
    conf = SyncObjConf(
        journalFile=str(data / "journal.bin"),
        fullDumpFile=str(data / "dump.bin"),
        appendEntriesUseBatch=args.batch,
        dynamicMembershipChange=False,
    )
    partners = [p for p in args.partners.split(",") if p]
    kv = BenchKV(args.self_addr, partners, conf)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with serve(_serve_requests(kv), "127.0.0.1", args.ws_port, compression=None, ping_interval=None):
            await stop.wait()

    try:
        run_async(go())
    finally:
        kv.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
