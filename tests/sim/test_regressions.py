"""Seeds that once found a bug (see qcore/sim/FINDINGS.md); each must stay clean."""

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
}


@pytest.mark.parametrize("seed", sorted(REGRESSIONS))
def test_regression_seed(seed: int) -> None:
    result = run_seed(seed)
    assert result.ok, f"{REGRESSIONS[seed]}\n{result.message}\n{result.trace}"


# Open core bugs (FINDINGS.md): these seeds fail on the core they were found
# on. Not strict: an unrelated core change may steer a seed away from the bug.
KNOWN_BUGS = {
    30272: "FINDINGS 3: without pre-vote, a slow node with the longest log never campaigns",
}


@pytest.mark.parametrize("seed", sorted(KNOWN_BUGS))
@pytest.mark.xfail(strict=False, reason="open core bug, see qcore/sim/FINDINGS.md")
def test_known_bug_seed(seed: int) -> None:
    result = run_seed(seed)
    assert result.ok, f"{KNOWN_BUGS[seed]}\n{result.message}"
