"""The whole harness (processes, workload, nemesis, checks) against a fake node with
known bugs: it must pass a correct server and flag the bugs it exists to find."""

from __future__ import annotations

import sys
from pathlib import Path

from qcore.chaos.run import EXIT_NONLINEAR, EXIT_OK, RunConfig, run

FAKE = [sys.executable, str(Path(__file__).with_name("fake_node.py"))]


def cfg(tmp_path: Path, faults: tuple[str, ...], *flags: str, seed: int = 1) -> RunConfig:
    return RunConfig(nodes=1, spares=0, duration=4.0, seed=seed, workers=4, faults=faults, registers=20,
                     ops_per_key=40, base_dir=tmp_path, program=FAKE + list(flags), op_timeout=2.0,
                     quiet=(0.5, 1.0), hold=(1.0, 2.0))


async def test_a_durable_correct_server_passes_kills(tmp_path: Path) -> None:
    report = await run(cfg(tmp_path, ("kill",)))
    assert report.exit_code == EXIT_OK, report.render() + report.log_tails
    assert report.ok > 0 and report.keys_checked > 0
    assert report.faults.get("kill", 0) >= 1
    assert not report.lost_write_keys


async def test_writes_lost_on_kill_are_caught(tmp_path: Path) -> None:
    # kill -9 of a node that keeps state only in memory loses acknowledged writes.
    report = await run(cfg(tmp_path, ("kill",), "--volatile"))
    assert report.exit_code == EXIT_NONLINEAR, report.render()
    assert report.lost_write_keys
    assert "cannot be linearized" in report.render()
    assert "--seed 1" in report.render()


async def test_stale_reads_are_caught(tmp_path: Path) -> None:
    report = await run(cfg(tmp_path, (), "--stale-reads"))
    assert report.exit_code == EXIT_NONLINEAR, report.render()
    assert report.nonlinear and report.nonlinear[0].explanation is not None
