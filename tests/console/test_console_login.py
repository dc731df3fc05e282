"""The web console with users on (SPEC 8.3, 10): a real headless Chromium
against a real node started with an admin password. The page asks for a
login before anything else, shows a refused password in the form, keeps the
user name (never the password) in the tab's storage, logs in again by itself
after the node restarts, disables what the node refused the user, and logs
out."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from qcore.client import Client
from tests.console.browser import COUNT_AND_HIDE, DESKTOP, Recorded, screenshot
from tests.node.harness import NodeProc, wait_serving

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_PASSWORD = "console-admin-secret"
BOB_PASSWORD = "console-bob-secret"
SAM_PASSWORD = "console-sam-secret"
DORA_PASSWORD = "console-dora-secret"
SENSOR = "Sensor$12"
# The browser itself logs a WebSocket that cannot connect (the node is restarting) as an error.
RECONNECT_ERROR = re.compile(r"^console: WebSocket connection to 'ws://[^']+' failed")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeProc]:
    work: Path = tmp_path_factory.mktemp("console-login")
    secret = work / "admin-password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    secret.chmod(0o600)
    n = NodeProc(1, work, "--init", "--admin-password-file", str(secret))
    try:
        n.start()
        await wait_serving(n)
        async with Client([n.addr], user="admin", password=ADMIN_PASSWORD) as c:
            await c.role_add("viewer", ["*.*=read", "Sensor.Reading=read,write"])
            await c.user_add("bob", BOB_PASSWORD, roles=["viewer"], entity="User$4")
            await c.role_add("sensor-reader", ["Sensor.*=read"])  # not Device, its parent type
            await c.user_add("sam", SAM_PASSWORD, roles=["sensor-reader"])
        yield n
    finally:
        n.kill9()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(node: NodeProc, browser: Browser, recorded: Recorded) -> AsyncIterator[Page]:
    p = recorded.watch(await browser.new_page(viewport=DESKTOP))
    await p.goto(f"http://{node.addr}/#{SENSOR}")
    try:
        yield p
    finally:
        await p.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(node: NodeProc) -> AsyncIterator[Client]:
    async with Client([node.addr], user="admin", password=ADMIN_PASSWORD) as c:
        yield c


async def log_in(page: Page, user: str, password: str) -> None:
    login = page.locator("dialog.login")
    await expect(login).to_be_visible()
    await login.locator("#login-user").fill(user)
    await login.locator("#login-password").fill(password)
    await login.get_by_role("button", name="Log in").click()


async def test_a_login_comes_first_and_a_wrong_password_says_so(page: Page) -> None:
    login = page.locator("dialog.login")
    await expect(login).to_be_visible()
    await expect(page.locator("#tree")).to_contain_text("authentication required")  # nothing shown without it
    await screenshot(page, "login")
    await log_in(page, "bob", "not the password")
    await expect(login.locator(".error")).to_contain_text("invalid user or password")
    await expect(login).to_be_visible()
    await log_in(page, "bob", BOB_PASSWORD)
    await expect(login).to_be_hidden()
    await expect(page.locator("#user")).to_contain_text("bob (viewer)")
    await expect(page.locator("#entity .entity-id")).to_have_text(SENSOR)
    await expect(page.locator('li[data-entity="Root$1"]')).to_contain_text("Root")
    # The cluster's metrics are for admins: the panel says so instead of a table.
    await expect(page.locator("#cluster .panel-status")).to_contain_text("permission denied: bob may not")
    # The tab keeps the user's name; the password is in no storage.
    storage = await page.evaluate("() => JSON.stringify([{...sessionStorage}, {...localStorage}])")
    assert "bob" in storage and BOB_PASSWORD not in storage


async def test_what_the_node_refuses_is_disabled(page: Page, admin: Client) -> None:
    unit = page.locator('#entity tr[data-field="Unit"]')
    await unit.locator("button.edit").click()
    await unit.locator(".editor-input").fill("K")
    await unit.locator("form.edit button[type=submit]").click()
    await expect(unit.locator("form.edit .error")).to_contain_text("permission denied: bob may not write Sensor.Unit")
    await unit.get_by_role("button", name="Cancel").click()
    await expect(unit.locator("button.edit")).to_be_disabled()
    await expect(unit.locator("button.edit")).to_have_attribute("title", re.compile("permission denied"))
    assert await admin.read_value(SENSOR, "Unit") == "C"
    reading = page.locator('#entity tr[data-field="Reading"]')
    await reading.locator("button.edit").click()
    await reading.locator(".editor-input").fill("12.5")
    await reading.locator("form.edit button[type=submit]").click()
    await expect(reading.locator("td.value")).to_have_text("12.5")
    await expect(reading.locator("td.writer")).to_have_text("User$4")  # the node records bob's entity
    assert await admin.read_value(SENSOR, "Reading") == 12.5


async def test_a_refused_delete_disables_the_delete_button(page: Page, admin: Client) -> None:
    """bob may not delete a Sensor: the dialog says so, and once it is closed the
    entity's Delete button is disabled with the node's text, as a refused write's Edit is."""
    delete = page.locator("#entity .actions").get_by_role("button", name="Delete")
    await delete.click()
    dialog = page.locator("dialog[open]")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(dialog.locator(".error")).to_contain_text("permission denied: bob may not delete Sensor")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(delete).to_be_disabled()
    await expect(delete).to_have_attribute("title", re.compile("permission denied: bob may not delete Sensor"))
    assert await admin.entity_exists(SENSOR)


async def test_after_a_restart_the_page_logs_in_again_by_itself(node: NodeProc, page: Page, admin: Client) -> None:
    assert node.terminate() == 0
    await expect(page.locator("#conn-status")).to_contain_text("disconnected")
    node.start()
    await wait_serving(node)
    await expect(page.locator("#conn-status")).to_contain_text("connected to node 1", timeout=15_000)
    await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
    await expect(page.locator("dialog.login")).to_be_hidden()
    await admin.write(SENSOR, "Reading", 13.25)
    await expect(page.locator('#entity tr[data-field="Reading"] td.value')).to_have_text("13.25", timeout=1000)


async def test_a_reload_asks_for_the_password_with_the_name_filled_in(page: Page) -> None:
    await page.reload()
    login = page.locator("dialog.login")
    await expect(login).to_be_visible()
    await expect(login.locator("#login-user")).to_have_value("bob")
    await expect(login.locator("#login-password")).to_have_value("")
    await log_in(page, "bob", BOB_PASSWORD)
    await expect(page.locator("#entity .entity-id")).to_have_text(SENSOR)


async def test_log_out(page: Page) -> None:
    await page.locator("#user").get_by_role("button", name="Log out").click()
    await expect(page.locator("dialog.login")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.length") == 0


async def test_a_user_who_may_read_only_the_entity_type_sees_the_entity(node: NodeProc, browser: Browser,
                                                                        recorded: Recorded) -> None:
    """sam may read Sensor but not the schema of Device, its parent type: the
    inheritance line stops there, and the fields are shown all the same."""
    page = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await page.goto(f"http://{node.addr}/#{SENSOR}")
        await log_in(page, "sam", SAM_PASSWORD)
        await expect(page.locator("#entity .entity-id")).to_have_text(SENSOR)
        await expect(page.locator("#entity")).to_contain_text("type Sensor ← Device ← … · in Folder$10")
        await expect(page.locator('#entity tr[data-field="Unit"] td.value')).to_have_text("C")
        await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
    finally:
        await page.close()


async def test_a_deleted_users_page_stops_claiming_to_be_live(node: NodeProc, browser: Browser, recorded: Recorded,
                                                             admin: Client) -> None:
    """The node drops a deleted user's rights without a word (its notifications
    just stop): the page finds out at its next request, says the entity is no
    longer followed and asks for a login, instead of claiming to be live."""
    await admin.user_add("dora", DORA_PASSWORD, roles=["viewer"])
    page = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await page.goto(f"http://{node.addr}/#{SENSOR}")
        await log_in(page, "dora", DORA_PASSWORD)
        live = page.locator("#entity .live")
        await expect(live).to_have_text("live: following 13 fields")
        await admin.user_delete("dora")
        await admin.write(SENSOR, "Reading", 99.5)
        await expect(page.locator("dialog.login")).to_be_visible(timeout=15_000)
        await expect(live).to_have_text("not following changes: authentication required (auth_required)")
        await expect(page.locator('#entity tr[data-field="Reading"] td.value')).not_to_have_text("99.5")
    finally:
        await page.close()


async def test_a_hidden_page_checks_its_session_only_once_shown(node: NodeProc, browser: Browser,
                                                               recorded: Recorded) -> None:
    """The session check (a GetMetrics every 3 s while logged in) is a periodic request
    too: a hidden page sends none, however long hidden, and one at once when shown again.
    The page's clock is Playwright's: paused once the page is up, moved on by the test."""
    tab = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await tab.add_init_script(COUNT_AND_HIDE)
        await tab.clock.install()
        await tab.goto(f"http://{node.addr}/#{SENSOR}")
        await log_in(tab, "bob", BOB_PASSWORD)
        await expect(tab.locator("#entity .live")).to_have_text("live: following 13 fields")
        await tab.clock.pause_at(dt.datetime.now() + dt.timedelta(seconds=5))
        await tab.clock.run_for(4000)
        before = await tab.evaluate("() => { window.__setHidden(true); return { ...window.__sent }; }")
        for _ in range(10):  # 60 s of the page's time, in steps: a check answered meanwhile comes due again
            await tab.clock.run_for(6000)
            await expect(tab.locator("#entity .live")).to_have_text("live: following 13 fields")
        sent = await tab.evaluate("() => window.__sent")
        assert sent["GetMetrics"] == before["GetMetrics"], "checked the session while hidden"
        shown = await tab.evaluate("() => { window.__setHidden(false); return { ...window.__sent }; }")
        assert shown["GetMetrics"] == sent["GetMetrics"] + 1, "no session check when shown"
    finally:
        await tab.close()


async def test_no_request_to_another_host_and_no_errors(node: NodeProc, recorded: Recorded) -> None:
    assert recorded.off_host(node.addr) == []
    assert [e for e in recorded.errors if not RECONNECT_ERROR.match(e)] == []
