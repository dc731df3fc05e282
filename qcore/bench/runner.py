"""Drive one measurement: spawn load-generator processes, start them together, merge.

The clients of one run are split over ``procs`` generator processes (client
numbers stay distinct through ``client_offset``); each connects, reports
READY, and all are released at once so their windows overlap.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from qcore.bench.procs import child_env
from qcore.bench.stats import Histogram, summarise

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """One row of the results table."""

    system: str
    nodes: int
    workload: str
    concurrency: int
    figures: dict[str, float] = field(default_factory=dict)
    hist: Histogram = field(default_factory=Histogram)
    error_samples: list[str] = field(default_factory=list)
    failed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "nodes": self.nodes,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "figures": self.figures,
            "hist": self.hist.to_json(),
            "error_samples": self.error_samples,
            "failed": self.failed,
            "extra": self.extra,
        }


    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunResult":
        return cls(
            system=data["system"],
            nodes=int(data["nodes"]),
            workload=data["workload"],
            concurrency=int(data["concurrency"]),
            figures=dict(data.get("figures") or {}),
            hist=Histogram.from_json(data["hist"]),
            error_samples=list(data.get("error_samples") or []),
            failed=data.get("failed"),
            extra=dict(data.get("extra") or {}),
        )


async def _spawn(spec: dict[str, Any], workdir: Path, index: int) -> asyncio.subprocess.Process:
    path = workdir / f"spec-{index}.json"
    path.write_bytes(orjson.dumps(spec))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qcore.bench.loadgen",
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )


async def measure(
    *,
    system: str,
    nodes: int,
    target: str,
    params: dict[str, Any],
    endpoints: list[str],
    workload: str,
    concurrency: int,
    duration: float,
    warmup: float,
    procs: int = 1,
    seed: int = 1,
) -> RunResult:
    """Run one (system, workload, concurrency) measurement and return its merged result."""
    result = RunResult(system, nodes, workload, concurrency)
    procs = max(1, min(procs, concurrency))
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    with tempfile.TemporaryDirectory(prefix="qcore-loadgen-") as tmp:
        children = []
        offset = 0
        for i, share in enumerate(shares):
            spec = {
                "target": target,
                "params": params,
                "endpoints": endpoints,
                "workload": workload,
                "concurrency": share,
                "client_offset": offset,
                "duration": duration,
                "warmup": warmup,
                "seed": seed,
            }
            offset += share
            children.append(await _spawn(spec, Path(tmp), i))
        try:
            outputs = await _release_and_collect(children, timeout=duration + warmup + 120)
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
    ops = errors = 0
    seconds = 0.0
    for out in outputs:
        if "failed" in out:
            result.failed = out["failed"]
            return result
        ops += out["ops"]
        errors += out["errors"]
        seconds = max(seconds, out["seconds"])
        result.hist.merge(Histogram.from_json(out["hist"]))
        result.error_samples.extend(out["error_samples"])
    result.figures = summarise(result.hist, ops, errors, seconds)
    result.extra["loop"] = outputs[0].get("loop", "?") if outputs else "?"
    return result


async def _release_and_collect(children: list[asyncio.subprocess.Process], timeout: float) -> list[dict[str, Any]]:
    async def ready(child: asyncio.subprocess.Process) -> dict[str, Any] | None:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if line.strip() == b"READY":
            return None
        # The generator failed before connecting all its clients: its only line is the failure.
        err = b""
        if child.stderr is not None:
            err = await child.stderr.read()
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return {"failed": (line + err).decode(errors="replace")[-2000:] or "load generator died"}

    early = await asyncio.wait_for(asyncio.gather(*(ready(c) for c in children)), 120)
    failures = [e for e in early if e is not None]
    if failures:
        return failures
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()

    async def collect(child: asyncio.subprocess.Process) -> dict[str, Any]:
        out, err = await child.communicate()
        lines = out.strip().splitlines()
        if not lines:
            return {"failed": err.decode(errors="replace")[-2000:] or "load generator printed nothing"}
        return orjson.loads(lines[-1])

    return list(await asyncio.wait_for(asyncio.gather(*(collect(c) for c in children)), timeout))
