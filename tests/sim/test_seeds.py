"""Hundreds of simulated runs per CI build: 3-node, 5-node and any-size clusters.

`QCORE_SIM_SEEDS=N` runs N seeds per cluster size (default 120: 360 runs
in all), `QCORE_SIM_START=S` starts at seed S, so that seeds CI never saw
can be run locally, e.g.

    QCORE_SIM_SEEDS=5000 QCORE_SIM_START=100000 .venv/bin/pytest tests/sim/test_seeds.py

Seeds that once failed live on in test_regressions.py.
"""

from __future__ import annotations

import os

import pytest

from qcore.sim.runner import run_seed

SEEDS = int(os.environ.get("QCORE_SIM_SEEDS", "120"))
START = int(os.environ.get("QCORE_SIM_START", "0"))


@pytest.mark.parametrize("nodes", [3, 5, None], ids=["3-nodes", "5-nodes", "any-size"])
def test_seeds_run_clean(nodes: int | None) -> None:
    failures = []
    for seed in range(START, START + SEEDS):
        result = run_seed(seed, nodes=nodes)
        if not result.ok:
            cmd = f"python -m qcore.sim --seeds 1 --start {seed}" + (f" --nodes {nodes}" if nodes else "")
            failures.append(
                f"seed {seed} ({cmd}): {result.code.name} in the {result.phase} phase at tick {result.now}\n"
                f"{result.message}\n{result.trace}"
            )
    assert not failures, f"{len(failures)} of {SEEDS} seeds failed:\n\n" + "\n\n".join(failures[:3])


def test_a_seed_replays_exactly() -> None:
    """Determinism: the same seed gives the same run, event for event."""
    a = run_seed(7, nodes=3)
    b = run_seed(7, nodes=3)
    assert a.stats == b.stats and a.trace == b.trace and a.now == b.now


def test_a_seed_replays_exactly_in_another_process() -> None:
    """No hidden dependence on hash randomisation or the process: the full
    verbose trace of a seed is byte-identical under two PYTHONHASHSEEDs."""
    import subprocess
    import sys

    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-m", "qcore.sim", "--seeds", "1", "--start", "11", "--nodes", "3", "-v"],
            capture_output=True, text=True, env=env, timeout=300, check=True,
        )
        outputs.append([line for line in proc.stdout.splitlines() if " seeds in " not in line])
    assert len(outputs[0]) > 100 and outputs[0] == outputs[1]
