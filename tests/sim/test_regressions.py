"""Seeds that once found a bug (see docs/simulator-findings.md); each must stay clean."""

from __future__ import annotations

import pytest

from qcore.sim.runner import run_seed

# seed -> what it found
REGRESSIONS = {
    264: "bootstrap committed its initial data entries by fiat; a node holding only index 1 won an election",
    956: "FINDINGS 2: a demoted leader stepped down at once; the remaining voter never learned the commit",
    295: "FINDINGS 2: same, simple demotion of the leader",
    1768: "FINDINGS 2: same, removed leader with the longest log",
    10427: "FINDINGS 2: same, the removed leader crashed and restarted past the change",
    30272: "FINDINGS 3: without pre-vote, a slow node with the longest log never campaigned",
    100766: "FINDINGS 3: same, 4 nodes",
    2005181: "simulator: liveness bound too tight for one 64-byte APP in flight and 80-tick delays",
    2007024: "simulator: same, a new voter fetching 225 entries one at a time",
    1011450: "simulator: same, 8 nodes after membership changes",
    157: "FINDINGS 4: a ReadIndex answer to a round of the node's previous boot served a new round",
    102129: "FINDINGS 5: a ReadIndex round trip longer than the retry interval retried forever",
    102496: "FINDINGS 5: same, 4 nodes",
}


@pytest.mark.parametrize("seed", sorted(REGRESSIONS))
def test_regression_seed(seed: int) -> None:
    result = run_seed(seed)
    assert result.ok, f"{REGRESSIONS[seed]}\n{result.message}\n{result.trace}"


def test_regression_seed_73_three_nodes() -> None:
    """FINDINGS 3 as the CI first met it (test_seeds, 3-node group)."""
    result = run_seed(73, nodes=3)
    assert result.ok, f"{result.message}\n{result.trace}"
