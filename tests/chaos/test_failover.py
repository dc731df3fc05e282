"""The failover measurement (``python -m qcore.chaos --failover``): what it counts, and one real run.

The figures themselves are benchmarks (docs/chaos.md); here only that the
harness measures what it says and runs end to end.
"""

from __future__ import annotations

from pathlib import Path

from qcore.chaos.failover import FailoverConfig, _Writers, measure_failover

from .node_available import requires_node


def test_a_write_issued_before_the_kill_does_not_count_as_recovery() -> None:
    w = _Writers(["127.0.0.1:1"], None, clients=2, tls_ca=None)
    kill = 100.0
    w.acks = [
        (0, 99.9, 100.05),  # committed before the kill, acknowledged after: proves nothing
        (1, 100.01, 100.30),
        (0, 100.06, 100.20),
    ]
    first, every = w.recovered(kill)
    assert round(first, 3) == 0.2 and round(every, 3) == 0.3
    w.acks = w.acks[:2]
    first, every = w.recovered(kill)
    assert round(first, 3) == 0.3 and every is None  # client 0 has not written since


@requires_node
async def test_a_short_failover_measurement_runs(tmp_path: Path) -> None:
    report = await measure_failover(FailoverConfig(kills=2, nodes=3, clients=2, base_dir=tmp_path))
    print(report.render())
    assert report.ok, report.render()
    assert len(report.kills) == 2 and all(k.next_write is not None for k in report.kills)
    assert "kill -9 -> next write: median" in report.render()
