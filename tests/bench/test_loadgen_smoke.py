"""Smoke tests of the bench's load generator against the no-op server.

They check that the ruler counts what it should (every reply once, error
replies as errors, latencies ordered); they never assert speed.
"""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from qcore.bench import loadgen, report
from qcore.bench.cli import main as bench_main
from qcore.bench.noop import answer, serve_noop
from qcore.bench.peers import NoopServer
from qcore.local_procs import free_ports
from qcore.bench.runner import RunResult, measure
from qcore.bench.stats import Histogram, summarise
from qcore.bench.targets import WORKLOADS, QcoreTarget

ENTITIES = [["BenchItem", i] for i in range(1, 50)]


@pytest.fixture
async def noop_ports():
    """An in-process no-op server (WebSocket + HTTP) for the duration of a test."""
    ws_port, http_port = free_ports(2)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_noop("127.0.0.1", ws_port, http_port, stop))
    # The server is listening once a connection succeeds.
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", ws_port)
            w.close()
            _, w = await asyncio.open_connection("127.0.0.1", http_port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.01)
    yield ws_port, http_port
    stop.set()
    await task


@pytest.mark.parametrize("workload", WORKLOADS)
async def test_every_workload_runs_against_noop_websocket(noop_ports, workload):
    ws_port, _ = noop_ports
    spec = {
        "target": "noop",
        "params": {"entities": ENTITIES},
        "endpoints": [f"127.0.0.1:{ws_port}"],
        "workload": workload,
        "concurrency": 4,
        "duration": 0.3,
        "warmup": 0.1,
    }
    out = await loadgen.run(spec)
    hist = Histogram.from_json(out["hist"])
    assert out["errors"] == 0, out["error_samples"]
    assert out["ops"] > 0
    assert hist.total == out["ops"]
    f = summarise(hist, out["ops"], out["errors"], out["seconds"])
    assert 0 < f["p50_ms"] <= f["p90_ms"] <= f["p99_ms"] <= f["p99.9_ms"]


@pytest.mark.parametrize("target", ["noop-http", "pysyncobj"])
async def test_http_and_pysyncobj_shapes_run_against_noop(noop_ports, target):
    ws_port, http_port = noop_ports
    port = http_port if target == "noop-http" else ws_port
    spec = {
        "target": target,
        "params": {"keys": 20},
        "endpoints": [f"127.0.0.1:{port}"],
        "workload": "batch",
        "concurrency": 3,
        "duration": 0.3,
        "warmup": 0.0,
    }
    out = await loadgen.run(spec)
    assert out["errors"] == 0, out["error_samples"]
    assert out["ops"] > 0


async def test_noop_websocket_answers_whole_and_fragmented_requests_in_order(noop_ports):
    ws_port, _ = noop_ports
    async with connect(f"ws://127.0.0.1:{ws_port}", compression=None) as ws:
        request = {"Perform": {"id": 7, "request": {"UpdateEntity": {"request": []}}}}
        await ws.send(orjson.dumps(request).decode())
        await ws.send([b'{"Perform": {"id": 8, ', b'"request": {}}}'], text=True)  # fragmented
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        second = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["PerformResponse"]["id"] == 7
    assert second["PerformResponse"]["id"] == 8


async def test_connection_refused_fails_the_run():
    (port,) = free_ports(1)
    spec = {"target": "noop", "params": {"entities": ENTITIES}, "endpoints": [f"127.0.0.1:{port}"],
            "workload": "write", "concurrency": 1, "duration": 0.1}
    with pytest.raises(OSError):
        await loadgen.run(spec)


def test_error_replies_are_errors():
    t = QcoreTarget(ENTITIES)
    assert t.ok(answer(t.request("write", 0, 0, random.Random(1))))
    assert not t.ok(orjson.dumps({"Error": {"id": "x", "error": "bad"}}))
    assert not t.ok(orjson.dumps({"PerformResponse": {"id": "x", "response": {"UpdateEntity": {"response": [], "error": "type mismatch"}}}}))
    assert t.ok(orjson.dumps({"PerformResponse": {"id": "x", "response": {"CreateEntity": {"response": {"typ": "A", "id": 1}, "error": None}}}}))


def test_requests_follow_the_wire_format():
    t = QcoreTarget(ENTITIES)
    frame = orjson.loads(t.request("batch", 3, 7, random.Random(1)))
    writes = frame["Perform"]["request"]["UpdateEntity"]["request"]
    assert frame["Perform"]["id"] == "3-7"
    assert len(writes) == 10
    w = writes[0]["Write"]
    assert len(w["value"]["String"]) == 64
    assert w["adjust_behavior"] == "Set" and w["push_condition"] == "Always"
    add = orjson.loads(t.request("add", 0, 0, random.Random(1)))["Perform"]["request"]["UpdateEntity"]["request"][0]["Write"]
    assert add["adjust_behavior"] == "Add" and add["value"] == {"Int": 1}


def test_histogram_percentiles_match_sorted_samples():
    rng = random.Random(7)
    samples = [rng.lognormvariate(7, 1) for _ in range(20_000)]
    h = Histogram()
    for s in samples:
        h.record(s)
    samples.sort()
    for p in (50, 90, 99, 99.9):
        exact = samples[math.ceil(len(samples) * p / 100) - 1] / 1000
        assert h.percentile(p) == pytest.approx(exact, rel=0.02)
    merged = Histogram.from_json(h.to_json())
    merged.merge(h)
    assert merged.total == 2 * h.total
    assert merged.percentile(50) == h.percentile(50)


def test_ratios_pair_qcore_with_each_peer():
    def res(system, ops, p50):
        r = RunResult(system, 3, "write", 64)
        r.figures = {"ops_per_s": ops, "p50_ms": p50, "p99_ms": p50 * 2, "p90_ms": p50, "p99.9_ms": p50 * 3, "errors": 0}
        return r

    rows = report.ratios([res("qcore", 6000, 5), res("etcd", 4000, 10), res("noop", 30000, 1)])
    assert len(rows) == 1
    assert rows[0]["peer"] == "etcd"
    assert rows[0]["throughput_ratio"] == pytest.approx(1.5)
    assert rows[0]["p50_ratio"] == pytest.approx(0.5)
    assert "etcd" in report.ratio_table(rows)


async def test_measure_runs_generator_processes(tmp_path: Path):
    noop = NoopServer(tmp_path)
    await noop.start()
    try:
        r = await measure(system="noop", nodes=1, target="noop", params=await noop.prepare(10), endpoints=noop.endpoints,
                          workload="mixed", concurrency=5, duration=0.5, warmup=0.2, procs=2)
    finally:
        noop.stop()
    assert r.failed is None
    assert r.figures["ops"] > 0 and r.figures["errors"] == 0
    assert r.hist.total == r.figures["ops"]


def test_cli_ceiling_prints_table(tmp_path: Path, capsys):
    rc = bench_main(["ceiling", "--workloads", "read", "--concurrency", "2", "--duration", "0.3", "--warmup", "0.1",
                     "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "noop-http" in out and "ops/s" in out


def test_targets_compare_the_issue_cells():
    def res(system, nodes, wl, conc, ops, p50=1.0, p99=2.0):
        r = RunResult(system, nodes, wl, conc)
        r.figures = {"ops_per_s": ops, "p50_ms": p50, "p99_ms": p99}
        return r

    text = report.targets([
        res("qcore", 3, "write", 64, 6000), res("etcd", 3, "write", 64, 3000),
        res("pysyncobj", 3, "write", 16, 7000), res("pysyncobj", 3, "write", 64, 5000),
    ])
    lines = text.splitlines()
    assert any(line.strip().startswith("MET") and ">= 1.5x etcd" in line and "= 2.00" in line for line in lines)
    # Against PySyncObj the target is its peak over all concurrencies (7000 at 16 clients), so it is missed.
    assert any(line.strip().startswith("MISS") and "PySyncObj" in line and "(16 clients)" in line for line in lines)


def test_without_matplotlib_there_are_no_charts_but_a_table(monkeypatch, tmp_path: Path):
    import sys

    r = RunResult("qcore", 1, "write", 1)
    r.hist.record(1500.0)
    r.figures = summarise(r.hist, 1, 0, 1.0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert report.charts([r], tmp_path) == []
    assert "qcore" in report.table([r])


def test_feature_cost_takes_the_median_of_each_side_and_leaves_out_failed_rounds():
    from qcore.bench.feature_cost import summarise as cost_summary

    def run(system: str, ops: float, p50: float, failed: str | None = None, errors: int = 0) -> RunResult:
        return RunResult(system, 3, "write", 64, figures={"ops_per_s": ops, "p50_ms": p50, "errors": errors},
                         failed=failed)

    results = [run("qcore-tls", 800, 9.0, errors=40), run("qcore", 1000, 7.0), run("qcore-tls", 900, 8.0, errors=2),
               run("qcore", 1100, 6.0), run("qcore-tls", 700, 10.0), run("qcore", 1200, 5.0),
               run("qcore-tls", 0, 0.0, failed="boom")]
    [row] = cost_summary(results, [64], "qcore-tls", "qcore")
    assert (row["with"], row["without"], row["runs"]) == (800, 1100, 3)
    assert (row["with_p50_ms"], row["without_p50_ms"]) == (9.0, 6.0)
    assert row["cost_pct"] == pytest.approx(100 * 300 / 1100)
    # Errors are not in ops/s: the summary sums them per side, so lost throughput is not silent.
    assert (row["with_errors"], row["without_errors"]) == (42, 0)
