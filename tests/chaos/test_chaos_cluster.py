"""Chaos runs against the real node program: 3 voters + 1 spare under every fault.

The short runs are part of the default suite (about two minutes, and half
a minute with TLS and a peer secret). Longer runs are
opt-in: ``QCORE_SLOW=1`` (5 voters, several minutes), or by hand with
``python -m qcore.chaos``. A failing run prints its report, the replay command
(with the seed) and the tails of the node logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qcore.chaos.run import EXIT_OK, RunConfig, RunReport, run

from .node_available import requires_node

SEED = int(os.environ.get("QCORE_CHAOS_SEED", "20261125"))


async def _clean_run(cfg: RunConfig) -> RunReport:
    """Run `cfg`, print its report and check the harness exited EXIT_OK
    (the node log tails go with a failure)."""
    report = await run(cfg)
    text = report.render()
    print(text)
    assert report.exit_code == EXIT_OK, f"{text}\n{report.log_tails}"
    return report


@requires_node
async def test_short_chaos_run_3_nodes(tmp_path: Path) -> None:
    # A small snapshot threshold so that snapshots are taken (and restored on
    # restart) many times during the run.
    cfg = RunConfig(nodes=3, spares=1, duration=75.0, seed=SEED, workers=6, registers=300,
                    ops_per_key=120, base_dir=tmp_path, node_args=["--snapshot-threshold=200", "--snapshot-keep=20"])
    report = await _clean_run(cfg)
    assert report.ok > 0
    assert sum(report.faults.values()) >= 5
    assert not report.lost_write_keys and not report.divergent


@requires_node
async def test_short_chaos_run_with_tls_and_a_peer_secret(tmp_path: Path) -> None:
    # Every connection over TLS and every peer authenticated (python -m qcore.chaos --tls):
    # reconnections after kills, pauses and cut links all go through both handshakes.
    cfg = RunConfig(nodes=3, spares=1, duration=25.0, seed=SEED + 2, workers=4, registers=150,
                    ops_per_key=80, base_dir=tmp_path, tls=True)
    report = await _clean_run(cfg)
    assert report.ok > 0 and sum(report.faults.values()) >= 2
    assert not report.lost_write_keys and not report.divergent
    assert "--tls-cert-file" in (tmp_path / "node-1.log").read_text()


@requires_node
async def test_short_chaos_run_with_users_on(tmp_path: Path) -> None:
    # Users on (python -m qcore.chaos --users): every connection, after every kill, pause and
    # cut link, logs in again, and every write is checked against the roles where it is applied.
    cfg = RunConfig(nodes=3, spares=1, duration=25.0, seed=SEED + 3, workers=4, registers=150,
                    ops_per_key=80, base_dir=tmp_path, users=True)
    report = await _clean_run(cfg)
    assert report.ok > 0 and sum(report.faults.values()) >= 2
    assert not report.lost_write_keys and not report.divergent
    assert not any("permission denied" in e for e in report.errors)
    assert "users: UserAdd worker by admin" in (tmp_path / "node-1.log").read_text()


@requires_node
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("QCORE_SLOW") != "1", reason="long chaos run: set QCORE_SLOW=1")
async def test_long_chaos_run_5_nodes(tmp_path: Path) -> None:
    cfg = RunConfig(nodes=5, spares=1, duration=float(os.environ.get("QCORE_CHAOS_SECONDS", "600")),
                    seed=SEED + 1, workers=10, registers=2000, base_dir=tmp_path)
    await _clean_run(cfg)
