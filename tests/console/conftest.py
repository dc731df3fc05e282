"""The console's browser tests share one cluster per module: a failed test
shows the end of each node's log, as the node tests' fixture does."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("cluster") if rep.when == "call" and rep.failed else None
    for n in getattr(cluster, "nodes", ()):
        rep.sections.append((f"log node-{n.id}", n.log_tail(30)))
