"""The load generator: N closed-loop clients, one request in flight each.

Run as its own process (``python -m qcore.bench.loadgen SPEC.json``) so the
orchestrator, the servers and the generator do not share an event loop. The
process connects all its clients, prints ``READY``, waits for a line on
stdin (so several generator processes start together), runs warm-up then
the measured window, and prints one JSON line with its result.

Spec keys: ``target`` (qcore, noop, noop-http, etcd, pysyncobj), ``params``
(target parameters, see :func:`qcore.bench.targets.make_target`),
``endpoints``, ``workload``, ``concurrency``, ``client_offset``,
``duration``, ``warmup``, ``seed``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

import orjson

from qcore.bench.stats import Histogram
from qcore.bench.targets import Target, make_target

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Failures that mean the connection is gone (reconnect) rather than an error reply.
_TRANSPORT_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError)


class _Window:
    """Shared per-process counters for the measured window."""

    def __init__(self) -> None:
        self.hist = Histogram()
        self.ops = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.last_end = 0.0


async def _open_all(target: Target, endpoints: list[str], count: int, offset: int) -> list[Any]:
    """Open every client's connection, a few at a time (a burst of 256 SYNs is itself a benchmark)."""
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> Any:
        async with sem:
            return await target.open(endpoints[(offset + i) % len(endpoints)])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _client(
    target: Target,
    conn: Any,
    endpoint: str,
    workload: str,
    client: int,
    seed: int,
    warm_end: float,
    stop: float,
    win: _Window,
) -> None:
    rng = random.Random(seed * 100_003 + client)
    seq = 0
    clock = time.perf_counter
    record = win.hist.record
    while True:
        t0 = clock()
        if t0 >= stop:
            break
        req = target.request(workload, client, seq, rng)
        seq += 1
        err = ""
        try:
            ok = target.ok(await conn.call(req))
            if not ok:
                err = "error reply"
        except Exception as exc:  # noqa: BLE001 - any failure is counted, the run goes on
            ok = False
            err = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, _TRANSPORT_ERRORS) or "Closed" in type(exc).__name__:
                conn = await _reconnect(target, conn, endpoint, stop)
                if conn is None:
                    break
        t1 = clock()
        if t0 >= warm_end:
            if ok:
                win.ops += 1
                record((t1 - t0) * 1e6)
            else:
                win.errors += 1
                if len(win.error_samples) < 5:
                    win.error_samples.append(err)
            if t1 > win.last_end:
                win.last_end = t1
    if conn is not None:
        try:
            await conn.close()
        except Exception:  # noqa: BLE001 - closing after the run is best effort
            pass


async def _reconnect(target: Target, old: Any, endpoint: str, stop: float) -> Any:
    try:
        await old.close()
    except Exception:  # noqa: BLE001
        pass
    delay = 0.05
    while time.perf_counter() < stop:
        try:
            return await target.open(endpoint)
        except Exception:  # noqa: BLE001 - the server may be restarting; keep trying until the window ends
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    return None


async def run(spec: dict[str, Any], on_connected: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Run one spec in this process; ``on_connected`` (if given) is awaited once every client is connected."""
    target = make_target(spec["target"], spec.get("params", {}))
    workload = spec["workload"]
    if workload not in target.workloads:
        raise ValueError(f"{target.name} has no {workload!r} workload")
    endpoints = list(spec["endpoints"])
    count = int(spec["concurrency"])
    offset = int(spec.get("client_offset", 0))
    conns = await _open_all(target, endpoints, count, offset)
    if on_connected is not None:
        await on_connected()
    win = _Window()
    start = time.perf_counter()
    warm_end = start + float(spec.get("warmup", 1.0))
    stop = warm_end + float(spec["duration"])
    seed = int(spec.get("seed", 1))
    await asyncio.gather(
        *(
            _client(target, conns[i], endpoints[(offset + i) % len(endpoints)], workload, offset + i, seed, warm_end, stop, win)
            for i in range(count)
        )
    )
    seconds = max(win.last_end, stop) - warm_end
    return {
        "ops": win.ops,
        "errors": win.errors,
        "error_samples": win.error_samples,
        "seconds": seconds,
        "hist": win.hist.to_json(),
    }


async def _wait_for_go() -> None:
    """Tell the orchestrator this process is connected, then wait for its go line."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def loop_name() -> str:
    """Which event loop :func:`run_async` uses (stored with results)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when available, without changing the global loop policy."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m qcore.bench.loadgen SPEC.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    with open(args[0], "rb") as f:
        spec = orjson.loads(f.read())
    try:
        result = run_async(run(spec, _wait_for_go))
    except Exception as exc:  # noqa: BLE001 - report the failure to the orchestrator as JSON
        sys.stdout.write(orjson.dumps({"failed": f"{type(exc).__name__}: {exc}"}).decode() + "\n")
        return 1
    result["loop"] = loop_name()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
