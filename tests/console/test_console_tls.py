"""The web console on a node that serves TLS (SPEC 8.1, 10): the page comes
over https:// and talks to the node over wss:// (its WebSocket address is
derived from the page's own), with a real headless Chromium and certificates
made at run time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from qcore.client import Client
from tests.console.browser import DESKTOP, Recorded
from tests.node.harness import NodeProc, wait_serving
from tests.node.http_get import http_get
from tests.node.tls_files import LocalTls, make_tls

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[NodeProc, LocalTls]]:
    work: Path = tmp_path_factory.mktemp("console-tls")
    tls = make_tls(work)
    n = NodeProc(1, work, "--init", *tls.node_args(secret=False), ssl=tls.client())
    try:
        n.start()
        await wait_serving(n)
        yield n, tls
    finally:
        n.kill9()


async def test_served_over_https_it_talks_wss(tls_node: tuple[NodeProc, LocalTls], browser: Browser,
                                              recorded: Recorded) -> None:
    node, tls = tls_node
    status, headers, _ = await http_get(node.addr, "/", ssl=tls.client())
    assert status == 200 and f"wss://{node.addr}" in headers["content-security-policy"]
    # The test CA is not the browser's: trust this node's certificate for this context only.
    context = await browser.new_context(viewport=DESKTOP, ignore_https_errors=True)
    try:
        page = recorded.watch(await context.new_page())
        await page.goto(f"https://{node.addr}/#Sensor$12")
        await expect(page.locator("table.cluster tr.leader")).to_have_attribute("data-node-id", "1")
        await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
        async with Client([node.addr], tls_ca=str(tls.ca)) as c:
            await c.write("Sensor$12", "Reading", 64.5)
        await expect(page.locator('#entity tr[data-field="Reading"] td.value')).to_have_text("64.5", timeout=1000)
    finally:
        await context.close()
    assert [u for u in recorded.urls if u.startswith("ws")] == [f"wss://{node.addr}/"]
    assert all(u.startswith((f"https://{node.addr}/", f"wss://{node.addr}/")) for u in recorded.urls), recorded.urls
    assert recorded.errors == []
