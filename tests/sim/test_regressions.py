"""Seeds that once found a bug (see qcore/sim/FINDINGS.md); each must stay clean."""

from __future__ import annotations

import pytest

from qcore.sim.runner import run_seed

# seed -> what it found
REGRESSIONS = {
    264: "bootstrap committed its initial data entries by fiat; a node holding only index 1 won an election",
}


@pytest.mark.parametrize("seed", sorted(REGRESSIONS))
def test_regression_seed(seed: int) -> None:
    result = run_seed(seed)
    assert result.ok, f"{REGRESSIONS[seed]}\n{result.message}\n{result.trace}"
