"""Fixtures of the console's browser tests: one headless Chromium and one
record of requests and errors per test module (module scope, each module's
own event loop); a failed test shows the end of each node's log, as the
node tests' fixture does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.console.browser import Recorded, launch


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await launch(pw)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Every request and error of the module's pages (Recorded.watch each page)."""
    return Recorded()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    failed = rep.when == "call" and rep.failed
    funcargs = getattr(item, "funcargs", {})
    nodes = getattr(funcargs.get("cluster"), "nodes", ()) if failed else ()
    if failed and "node" in funcargs:
        nodes = (funcargs["node"],)
    for n in nodes:
        rep.sections.append((f"log node-{n.id}", n.log_tail(30)))
