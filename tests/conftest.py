"""Shared fixtures: real node processes (tests/node/harness.py) for the node,
notification and other multi-process tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from tests.node.harness import NodeProc


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Callable[..., NodeProc]]:
    """Factory of node processes; every one is killed at the end, and the
    logs of all are printed if the test failed."""
    made: list[NodeProc] = []

    def make(node_id: int, *extra: str, port: int | None = None, **where: Any) -> NodeProc:
        """``where``: NodeProc's ``config_file`` (None: no --config-file), ``cwd`` and ``ssl``."""
        n = NodeProc(node_id, tmp_path, *extra, port=port, **where)
        made.append(n)
        return n

    yield make
    for n in made:
        n.kill9()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "tmp_path" in item.funcargs:
        logs = sorted(Path(item.funcargs["tmp_path"]).glob("node-*.log"))
        for p in logs:
            tail = "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            rep.sections.append((f"log {p.name}", tail))
