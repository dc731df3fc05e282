"""Notification delivery benchmark (not a test).

    python bench/notify_bench.py                      # 100 subscribers, flat-out writes, then paced writes
    python bench/notify_bench.py --subscribers 100 --writers 16 --duration 10
    python bench/notify_bench.py --nodes 3            # subscribers on a follower, writes via the leader
    python bench/notify_bench.py --quick              # 2 s phases, smoke check
    python bench/notify_bench.py --hub-only           # the hub alone, in-process: publish cost, frames/s

Starts its own node(s) (`python -m qcore`, durable storage under a temp dir
unless --in-memory), creates one User, opens N subscriber connections that
each register on the User's `LoginCount` (an EntityId registration, or with
--type-wide an EntityType registration on `User`), and writes `Add 1` to it:

* **flat out**: W writer tasks write as fast as the node acknowledges, for
  --duration seconds. Reports writes/s and notifications/s delivered to all
  subscribers together (counted on the client, first write to last frame).
* **paced**: --rate writes/s, well under saturation, so the lag is the
  system's and not a queue's.

Lag: each notification's receive time minus its `write_time`, which the
leader fixes when it proposes the entry (it travels in the entry): so lag =
propose -> commit (fsync on a majority) -> apply on the subscribers' node ->
notification sent -> received. The write's own round trip (proposal -> ack to
the writer) is printed alongside: the difference is roughly the
commit-to-client part. Node(s) and this client share the machine (and its 2
cores, here): figures are for comparison between runs, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from qcore.local_procs import free_ports, node_argv

REPO = Path(__file__).resolve().parents[1]


class Rpc:
    """A small pipelining client: replies by id, pushed frames to a callback."""

    def __init__(self, ws: ClientConnection, on_push: Any = None) -> None:
        self.ws = ws
        self.n = 0
        self.pending: dict[str, asyncio.Future[dict]] = {}
        self.on_push = on_push
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, addr: str, on_push: Any = None) -> "Rpc":
        return cls(await connect(f"ws://{addr}", proxy=None, max_size=1 << 26, compression=None), on_push)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                recv = time.time_ns()
                msg = orjson.loads(frame)
                ((tag, body),) = msg.items()
                if tag == "Notification":
                    if self.on_push is not None:
                        self.on_push(body, recv)
                    continue
                fut = self.pending.pop(body.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except Exception:
            pass

    async def call(self, tag: str, **fields: Any) -> dict:
        self.n += 1
        rid = f"b{self.n}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(orjson.dumps({tag: {"id": rid, **fields}}), text=True)
        return await asyncio.wait_for(fut, 30)

    async def perform(self, request: dict) -> dict:
        reply = await self.call("Perform", request=request)
        ((_, body),) = reply["PerformResponse"]["response"].items()
        if body.get("error"):
            raise RuntimeError(body["error"])
        return body

    async def close(self) -> None:
        await self.ws.close()


def start_node(node_id: int, port: int, workdir: Path, in_memory: bool, init: bool) -> subprocess.Popen:
    args = node_argv(node_id, f"127.0.0.1:{port}", REPO / "schemas.yaml", workdir / f"node-{node_id}",
                     "--log-level", "WARNING")
    if in_memory:
        args.append("--in-memory")
    if init:
        args.append("--init")
    log = open(workdir / f"node-{node_id}.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


async def wait_up(addr: str) -> Rpc:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await Rpc.open(addr)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def wait_for(pred: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = await pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def cluster(n: int, workdir: Path, in_memory: bool, on_leader: bool = False
                  ) -> tuple[list[subprocess.Popen], list[str], Rpc, str]:
    """Start n nodes; return (procs, addrs, a connection to the leader, the subscribers' address)."""
    ports = free_ports(n)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    procs = [start_node(i + 1, ports[i], workdir, in_memory, init=(n == 1)) for i in range(n)]
    rpcs = [await wait_up(a) for a in addrs]
    if n > 1:
        r = await rpcs[0].call("Init", nodes=[[i + 1, a] for i, a in enumerate(addrs)])
        assert r["InitResponse"]["response"] == "Ok", r

    async def leader() -> int:
        for r in rpcs:
            m = (await r.call("GetMetrics"))["GetMetricsResponse"]["response"]
            if m["state"] == "Leader" and m["last_applied"] and m["last_applied"]["index"] >= 2:
                return m["id"]
        return 0

    lid = await wait_for(leader, "a leader")
    lead = rpcs[lid - 1]
    sub_addr = addrs[lid % n] if n > 1 and not on_leader else addrs[lid - 1]  # a follower unless asked
    for i, r in enumerate(rpcs):
        if r is not lead:
            await r.close()
    return procs, addrs, lead, sub_addr


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def phase(lead: Rpc, user: dict, subs: list[dict[str, Any]], writers: int, duration: float,
                rate: float, node_pids: list[int]) -> dict[str, Any]:
    for s in subs:
        s["lags"].clear()
        s["count"] = 0
    acks: list[float] = []
    written = 0
    stop = time.monotonic() + duration
    req = {"UpdateEntity": {"request": [{"Write": {
        "entity_id": user, "field_type": "LoginCount", "value": {"Int": 1}, "push_condition": "Always",
        "adjust_behavior": "Add", "write_time": None, "writer_id": None}}]}}

    async def writer(k: int) -> None:
        nonlocal written
        period = writers / rate if rate else 0.0
        nxt = time.monotonic() + (k * period / writers if period else 0)
        while time.monotonic() < stop:
            if period:
                delay = nxt - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the load, not synchronising
                nxt += period
            t0 = time.perf_counter()
            await lead.perform(req)
            acks.append((time.perf_counter() - t0) * 1000)
            written += 1

    t_start = time.monotonic()
    node_cpu0, client_cpu0 = cpu_seconds(node_pids), time.process_time()
    await asyncio.gather(*(writer(k) for k in range(writers)))
    t_writes = time.monotonic() - t_start
    expected = written
    deadline = time.monotonic() + 60
    while any(s["count"] < expected for s in subs) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # waiting for frames from another process: nothing to await on
    t_all = max(s["last"] for s in subs) - t_start
    node_cpu, client_cpu = cpu_seconds(node_pids) - node_cpu0, time.process_time() - client_cpu0
    delivered = sum(s["count"] for s in subs)
    lags = [x for s in subs for x in s["lags"]]
    return {
        "writes": written,
        "writes_per_s": round(written / t_writes),
        "notifications": delivered,
        "notifications_per_s": round(delivered / t_all),
        "complete": delivered == expected * len(subs),
        "lag_ms_p50": round(pct(lags, 50), 2),
        "lag_ms_p99": round(pct(lags, 99), 2),
        "lag_ms_max": round(max(lags), 2) if lags else None,
        "write_ack_ms_p50": round(statistics.median(acks), 2) if acks else None,
        "write_ack_ms_p99": round(pct(acks, 99), 2),
        "seconds": round(t_all, 2),
        "node_cpu_s": round(node_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
    }


async def hub_only(subscribers: int, writes: int) -> dict[str, Any]:
    """The hub alone, in this process: a real Store and NotificationHub, sinks
    that count frames instead of sockets. Separates the hub's own cost from
    the network, the Raft round and the client."""
    sys.path.insert(0, str(REPO))
    from qcore.node.notify import NotificationHub
    from qcore.protocol import messages as m
    from qcore.store import AdjustBehavior, CreateEntity, Int, Store, Timestamp, UpdateEntity, Write
    from qcore.store.config import load_config

    class Sink:
        def __init__(self) -> None:
            self.n = 0

        async def send(self, data: bytes, text: bool | None = None) -> None:
            self.n += 1

        async def close(self, code: int = 1000, reason: str = "") -> None:
            pass

    class Conn:
        def __init__(self) -> None:
            self.ws = Sink()

    now = Timestamp(1_700_000_000, 0)
    store = Store()
    store.apply(load_config(REPO / "schemas.yaml"), now)
    user = store.apply(CreateEntity("User", None, "bench"), now)[0].response
    other = store.apply(CreateEntity("User", None, "other"), now)[0].response
    out: dict[str, Any] = {}
    for subs in (0, subscribers):
        hub = NotificationHub(100_000, 1000, 1_000_000, lambda: store)
        conns = [Conn() for _ in range(subs)]
        for c in conns:
            hub.attach(c)
            cfg = {"EntityId": {"entity_id": {"typ": user.typ, "id": user.id}, "field_type": "LoginCount",
                                "trigger_on_change": False, "context": ["Name"]}}
            await hub.register(m.RegisterNotification("r", cfg), c)
        cmds = [UpdateEntity([Write(e, "LoginCount", Int(1), adjust_behavior=AdjustBehavior.Add)])
                for e in (user, other)]
        changes = [store.apply(cmds[i % 2], now)[1] for i in range(writes)]  # half match, half do not
        t0 = time.perf_counter()
        for i, ch in enumerate(changes):
            hub.publish(i + 1, ch)
        t_pub = time.perf_counter() - t0
        while sum(c.ws.n for c in conns) < (writes // 2) * subs:
            await asyncio.sleep(0)
        t_all = time.perf_counter() - t0
        out[f"{subs}_subscribers"] = {
            "publish_us_per_change": round(t_pub / writes * 1e6, 2),
            "notifications_per_s": round((writes // 2) * subs / t_all) if subs else 0,
        }
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--writers", type=int, default=16, help="concurrent writers in the flat-out phase")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=100.0, help="writes/s in the paced phase (0: skip it)")
    ap.add_argument("--nodes", type=int, default=1, choices=[1, 3])
    ap.add_argument("--on-leader", action="store_true", help="with --nodes 3: subscribe on the leader")
    ap.add_argument("--type-wide", action="store_true", help="EntityType registrations on User")
    ap.add_argument("--in-memory", action="store_true", help="no fsync (Raft state in memory)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--hub-only", action="store_true", help="measure the hub in-process (no node, no network)")
    args = ap.parse_args()
    if args.hub_only:
        print(json.dumps(await hub_only(args.subscribers, 2000 if args.quick else 20000)))
        return
    if args.quick:
        args.duration = 2.0
    with tempfile.TemporaryDirectory(prefix="qcore-notify-bench-", dir="/var/tmp") as tmp:
        procs, addrs, lead, sub_addr = await cluster(args.nodes, Path(tmp), args.in_memory, args.on_leader)
        try:
            user = (await lead.perform({"CreateEntity": {"entity_type": "User", "parent_id": None,
                                                         "name": "bench"}}))["response"]
            subs: list[dict[str, Any]] = []
            config = ({"EntityType": {"entity_type": "User", "field_type": "LoginCount",
                                      "trigger_on_change": False, "context": []}} if args.type_wide else
                      {"EntityId": {"entity_id": user, "field_type": "LoginCount",
                                    "trigger_on_change": False, "context": ["Name"]}})
            for _ in range(args.subscribers):
                s: dict[str, Any] = {"lags": [], "count": 0, "last": 0.0}

                def on_push(body: dict, recv_ns: int, s: dict[str, Any] = s) -> None:
                    wt = body["notification"]["write_time"]
                    s["lags"].append((recv_ns - (wt["secs_since_epoch"] * 1_000_000_000
                                                 + wt["nanos_since_epoch"])) / 1e6)
                    s["count"] += 1
                    s["last"] = time.monotonic()

                rpc = await Rpc.open(sub_addr, on_push)
                for _ in range(100):  # a follower may not have applied the create yet
                    r = await rpc.call("RegisterNotification", config=config)
                    if "Ok" in r["RegisterNotificationResponse"]["response"]:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError(r)
                s["rpc"] = rpc
                subs.append(s)
            results: dict[str, Any] = {
                "subscribers": args.subscribers, "nodes": args.nodes, "type_wide": args.type_wide,
                "in_memory": args.in_memory,
                "subscribed_on": "follower" if args.nodes > 1 and not args.on_leader else "leader",
            }
            pids = [p.pid for p in procs]
            await phase(lead, user, subs, 4, 1.0, 0, pids)  # warm-up
            results["flat_out"] = await phase(lead, user, subs, args.writers, args.duration, 0, pids)
            if args.rate:
                results["paced"] = await phase(lead, user, subs, 4, args.duration, args.rate, pids)
                results["paced"]["rate"] = args.rate
            for s in subs:
                await s["rpc"].close()
            await lead.close()
        finally:
            for p in procs:
                p.kill()
                p.wait()
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.subscribers} subscribers ({'EntityType' if args.type_wide else 'EntityId'} registrations) on the "
          f"{results['subscribed_on']} of a {args.nodes}-node cluster, "
          f"{'in-memory' if args.in_memory else 'durable (fsync)'}")
    for name in ("flat_out", "paced"):
        r = results.get(name)
        if r is None:
            continue
        print(f"  {name:8s}: {r['writes_per_s']:>7,} writes/s -> {r['notifications_per_s']:>9,} notifications/s"
              f" delivered{'' if r['complete'] else ' (INCOMPLETE)'}; lag p50 {r['lag_ms_p50']} ms, "
              f"p99 {r['lag_ms_p99']} ms (write ack p50 {r['write_ack_ms_p50']} ms, p99 {r['write_ack_ms_p99']} ms); "
              f"CPU over {r['seconds']} s: node(s) {r['node_cpu_s']} s, this client {r['client_cpu_s']} s")


if __name__ == "__main__":
    asyncio.run(main())
