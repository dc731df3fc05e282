"""The web console in a real headless Chromium against a real 3-node cluster
(SPEC 10, issue 22): one cluster and one browser for the whole module, a page
served by a follower, reads and writes from other nodes through the Python
client. The tests run in file order and share the page; the last ones kill
and restart the page's node, then kill a follower, and the module's end checks
that no request left for another host and that the browser logged no error
(but its own for a WebSocket that could not connect while the node was down)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from qcore.client import Client
from qcore.local_procs import free_ports
from qcore.store.types import EntityId, Timestamp
from tests.console.browser import COUNT_AND_HIDE, DESKTOP, PHONE, Recorded, screenshot
from tests.node.harness import Conn, NodeProc, node_metrics, wait_serving, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

PAGE = 100  # children per page in the tree (qcore/console/js/tree.js)
SENSOR = "Sensor$12"  # schemas.yaml's tree: Root$1 > Devices (Folder$10) > temp-1 (Sensor$12)
LIVE_MS = 1000  # a write elsewhere shows on the open page within this
# While the page's node is down, the browser itself logs each failed WebSocket attempt as an error.
RECONNECT_ERROR = re.compile(r"^console: WebSocket connection to 'ws://[^']+' failed")


class Cluster:
    def __init__(self, nodes: list[NodeProc]) -> None:
        self.nodes = nodes
        self.page_node: NodeProc = nodes[0]

    def by_id(self, node_id: int) -> NodeProc:
        return next(n for n in self.nodes if n.id == node_id)

    def others(self) -> list[NodeProc]:
        """The nodes other than the one that served the page."""
        return [n for n in self.nodes if n is not self.page_node and n.alive()]

    async def leader(self) -> int:
        c = await Conn.open(self.page_node.addr)
        try:
            reply = await c.call("GetClusterMetrics")
            return int(reply["GetClusterMetricsResponse"]["response"]["Ok"]["leader"] or 0)
        finally:
            await c.close()

    async def registrations(self, node: NodeProc) -> int:
        return int((await node_metrics(node))["notifications"]["registrations"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    work: Path = tmp_path_factory.mktemp("console")
    ports = free_ports(3)
    members = ",".join(f"{i}=127.0.0.1:{p}" for i, p in zip((1, 2, 3), ports))
    nodes = [NodeProc(i, work, "--initial-cluster", members, port=p) for i, p in zip((1, 2, 3), ports)]
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            await wait_serving(n)
        cl = Cluster(nodes)
        leader = await wait_until(cl.leader, what="a leader")
        cl.page_node = next(n for n in nodes if n.id != leader)  # a follower serves the page
        yield cl
    finally:
        for n in nodes:
            n.kill9()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(cluster: Cluster, browser: Browser, recorded: Recorded) -> AsyncIterator[Page]:
    p = recorded.watch(await browser.new_page(viewport=DESKTOP))
    await p.goto(f"http://{cluster.page_node.addr}/")
    await p.evaluate("() => { window.__notReloaded = true; }")  # gone if the page ever reloads
    try:
        yield p
    finally:
        await p.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(cluster: Cluster) -> AsyncIterator[Client]:
    """The Python client, on a node other than the page's."""
    async with Client([cluster.others()[0].addr]) as c:
        yield c


def field_row(page: Page, field: str) -> Any:
    return page.locator(f'#entity tr[data-field="{field}"]')


async def open_entity(page: Page, text_id: str) -> None:
    await page.fill("#open-id", text_id)
    await page.press("#open-id", "Enter")
    await expect(page.locator("#entity .entity-id")).to_have_text(text_id)
    await expect(page.locator("#entity .live")).to_contain_text("live: following")


async def edit(page: Page, field: str, how: Any) -> Any:
    """Open the field's editor, let `how(row)` fill it, save; returns the row."""
    row = field_row(page, field)
    await row.locator("button.edit").click()
    await how(row)
    await row.locator("form.edit button[type=submit]").click()
    return row


def typed(text: str) -> Any:
    """Fill a row's editor input with `text`."""
    return lambda row: row.locator(".editor-input").fill(text)


async def test_cluster_view_shows_every_member_and_the_leader(cluster: Cluster, page: Page) -> None:
    rows = page.locator("table.cluster tbody tr")
    await expect(rows).to_have_count(3)
    for n in cluster.nodes:
        row = page.locator(f'table.cluster tr[data-node-id="{n.id}"]')
        await expect(row).to_have_attribute("data-health", "ok")
        await expect(row).to_contain_text(n.addr)
    await expect(page.locator(f'table.cluster tr[data-node-id="{cluster.page_node.id}"]')).to_contain_text("this page")

    async def leader_shown() -> bool:
        leader = await cluster.leader()
        shown = await page.locator("table.cluster tr.leader").get_attribute("data-node-id")
        return leader != 0 and shown == str(leader)

    await wait_until(leader_shown, what="the page to mark the cluster's leader")
    await expect(page.locator("table.cluster tr.leader")).to_have_count(1)
    await screenshot(page.locator("#cluster"), "cluster")


async def test_cluster_view_shows_what_each_member_reports(cluster: Cluster, page: Page, client: Client) -> None:
    """Role, term, commit, applied and lag of every row are what that node's
    GetMetrics says, after a write has moved commit and applied on: the page
    polls once a second, so the two are compared until they agree (an idle
    cluster stands still once the write is applied everywhere)."""
    await client.write(SENSOR, "Uptime", 1)  # acknowledged: committed; the others apply it within a poll or two
    written = max([int((await node_metrics(n))["commit_index"]) for n in cluster.nodes])
    seen: list[Any] = []

    async def agree() -> bool:
        reported = {n.id: await node_metrics(n) for n in cluster.nodes}
        top = max(int(mt["commit_index"]) for mt in reported.values())
        expected = {}
        for node_id, mt in reported.items():
            applied = int(mt["last_applied"]["index"])
            leader = mt["state"] == "Leader"
            expected[str(node_id)] = [mt["state"], "★ Leader" if leader else mt["state"], str(mt["current_term"]),
                                      str(mt["commit_index"]), str(applied), str(top - applied)]
        shown = await page.locator("table.cluster tbody tr").evaluate_all("""rows => Object.fromEntries(rows.map(r =>
            [r.dataset.nodeId, [r.dataset.role, ...["role", "term", "commit", "applied", "lag"].map(
                c => r.querySelector(`td.${c}`).textContent)]]))""")
        seen[:] = [expected, shown]
        return top >= written and shown == expected

    try:
        await wait_until(agree, timeout=10, what="the cluster view to show what the members report")
    except AssertionError:
        raise AssertionError(f"reported vs shown: {seen}") from None


async def test_keyboard_expands_the_tree_down_to_a_nested_entity(page: Page) -> None:
    root = page.locator('li[data-entity="Root$1"]')
    await expect(root).to_contain_text("Root")
    await root.focus()
    await page.keyboard.press("ArrowRight")  # expand Root
    devices = page.locator('li[data-entity="Folder$10"]')
    await expect(devices).to_contain_text("Devices")
    for _ in range(4):  # Users, Groups, Roles, Devices
        await page.keyboard.press("ArrowDown")
    await expect(devices).to_be_focused()
    await page.keyboard.press("ArrowRight")  # expand Devices
    sensor = page.locator(f'li[data-entity="{SENSOR}"]')
    await expect(sensor).to_contain_text("temp-1")
    await page.keyboard.press("ArrowRight")  # to its first child, gateway-1
    await expect(page.locator('li[data-entity="Device$11"]')).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(sensor).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#entity .entity-id")).to_have_text(SENSOR)
    await expect(sensor).to_have_attribute("aria-selected", "true")
    await expect(field_row(page, "Reading").locator("td.value")).to_have_text("21.5")
    await page.keyboard.press("ArrowLeft")  # back up to the parent
    await expect(devices).to_be_focused()
    await page.keyboard.press("ArrowLeft")  # collapse it
    await expect(sensor).to_be_hidden()
    await page.keyboard.press("ArrowRight")
    await expect(sensor).to_be_visible()
    await screenshot(page.locator("#browse"), "tree")


async def test_editing_fields_changes_them_on_another_node(page: Page, client: Client) -> None:
    await open_entity(page, SENSOR)
    await expect(page.locator("#entity")).to_contain_text("type Sensor ← Device ← Object · in Folder$10")
    schema = page.locator("#entity details.schema")
    await schema.locator("summary").click()
    await expect(schema.locator("tr", has_text="Kind")).to_contain_text("0: Sensor, 1: Actuator, 2: Gateway")
    await expect(schema.locator("tr", has_text="Threshold")).to_contain_text("Float")
    await edit(page, "Reading", typed("42.25"))
    await expect(field_row(page, "Reading").locator("td.value")).to_have_text("42.25")
    assert await client.read_value(SENSOR, "Reading") == 42.25

    await edit(page, "Uptime", typed("7"))
    await edit(page, "Unit", typed("F"))
    await edit(page, "Online", lambda row: row.locator("input[type=checkbox]").check())
    await edit(page, "Kind", lambda row: row.locator("select").select_option(label="Actuator"))
    await edit(page, "Owner", typed("User$4"))
    await edit(page, "LastSeen", lambda row: row.locator("input[type=datetime-local]").fill("2026-11-25T17:58:21.123"))
    firmware = bytes([0, 1, 0xFF, 0x7F])
    await edit(page, "Firmware", lambda row: row.locator("input[type=file]").set_input_files(
        files=[{"name": "fw.bin", "mimeType": "application/octet-stream", "buffer": firmware}]))
    for field, shown in (("Uptime", "7"), ("Unit", "F"), ("Online", "true"), ("Kind", "Actuator"),
                         ("Owner", "User$4"), ("LastSeen", "2026-11-25 17:58:21.123 UTC"), ("Firmware", "4 bytes 00 01 ff 7f")):
        await expect(field_row(page, field).locator("td.value")).to_have_text(shown)
    # Each write was acknowledged before its editor closed: a linearizable read elsewhere sees it.
    assert await client.read_value(SENSOR, "Uptime") == 7
    assert await client.read_value(SENSOR, "Unit") == "F"
    assert await client.read_value(SENSOR, "Online") is True
    assert await client.read_value(SENSOR, "Kind") == "Actuator"
    assert await client.read_value(SENSOR, "Owner") == EntityId("User", 4)
    assert await client.read_value(SENSOR, "LastSeen") == dt.datetime(2026, 11, 25, 17, 58, 21, 123000, tzinfo=dt.timezone.utc)
    assert await client.read_value(SENSOR, "Firmware") == firmware
    async with page.expect_download() as download:
        await field_row(page, "Firmware").get_by_role("button", name="Download").click()
    assert Path(await (await download.value).path()).read_bytes() == firmware

    await open_entity(page, "Group$6")
    await edit(page, "Members", typed("User$4, User$3, User$4"))
    await expect(field_row(page, "Members").locator("td.value button")).to_have_text(["User$4", "User$3", "User$4"])
    assert await client.read_value("Group$6", "Members") == [EntityId("User", 4), EntityId("User", 3), EntityId("User", 4)]
    await open_entity(page, SENSOR)
    await screenshot(page.locator("#entity"), "entity")


class HeldAnswers:
    """A page's WebSocket through Playwright's routing: the node's answers to the requests
    `hold(what, request)` picks are held back until release(), and then sent in the order
    the node sent them; what the page sends is recorded by message (a Perform by its command)."""

    def __init__(self, hold: Callable[[str, dict[str, Any]], bool]) -> None:
        self.hold = hold
        self.ids: set[str] = set()
        self.held: list[str | bytes] = []
        self.sent: list[str] = []
        self.changed = asyncio.Event()  # something was sent or held
        self.page_side: WebSocketRoute | None = None

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.page_side = ws

        def from_page(message: str | bytes) -> None:
            msg = json.loads(message)
            tag = next(iter(msg))
            what = next(iter(msg[tag]["request"])) if tag == "Perform" else tag
            if self.hold(what, msg[tag]):
                self.ids.add(msg[tag]["id"])
            self.sent.append(what)
            self.changed.set()
            server.send(message)

        def from_node(message: str | bytes) -> None:
            body = next(iter(json.loads(message).values()))
            if isinstance(body, dict) and body.get("id") in self.ids:
                self.ids.discard(body["id"])
                self.held.append(message)
                self.changed.set()
            else:
                ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_node)

    def release(self) -> None:
        assert self.page_side is not None
        held, self.held = self.held, []
        for message in held:
            self.page_side.send(message)

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


async def test_an_entity_opened_while_the_page_loads_is_not_read_again_under_its_editor(
        cluster: Cluster, browser: Browser, recorded: Recorded, client: Client) -> None:
    """The user opens an entity and edits a field before the page's tree and type list
    have loaded (their answers held back here, as a loaded machine delays them): once
    they arrive, the page does not open the entity a second time, which would read it
    again and turn the open editor into a "kept, not saved yet" one (after its save
    went through, the save's own end is dropped); saving it saves."""
    ws = HeldAnswers(lambda what, _: what == "GetEntityTypes")
    page = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await page.route_web_socket(re.compile(r"^ws://"), ws.route)
        await page.goto(f"http://{cluster.page_node.addr}/")
        await ws.until(lambda: len(ws.held) == 2)  # the tree's (is there a Root type?) and the search's
        ws.hold = lambda what, _: False
        await open_entity(page, SENSOR)
        row = field_row(page, "Reading")
        await row.locator("button.edit").click()
        await row.locator(".editor-input").fill("43.75")
        await expect(page.locator('#tree li[data-entity="Root$1"]')).to_have_count(0)  # still loading

        at_release = len(ws.sent)  # the open's requests were all answered: none is in flight
        ws.release()
        # Both shown: the start-up's last step, opening the URL's entity or not, has run. The
        # tree's Reload then sends a FindEntities: what the page sent before it tells.
        await expect(page.locator('#tree li[data-entity="Root$1"]')).to_be_visible()
        await expect(page.locator("#search select option")).not_to_have_count(0)
        finds = ws.sent.count("FindEntities")
        await page.locator("#tree-reload").click()
        await ws.until(lambda: ws.sent.count("FindEntities") > finds)
        since = ws.sent[at_release:len(ws.sent) - 1 - ws.sent[::-1].index("FindEntities")]
        assert "UnregisterNotification" not in since and "EntityExists" not in since, since

        await expect(row.locator(".editor-input")).to_have_value("43.75")
        await expect(row.locator("form.edit .note")).to_be_hidden()
        await row.locator("form.edit button[type=submit]").click()
        await expect(row.locator("td.value")).to_have_text("43.75")
        assert await client.read_value(SENSOR, "Reading") == 43.75
    finally:
        await page.close()
    await client.write(SENSOR, "Reading", 42.25)


def is_write(what: str, request: dict[str, Any]) -> bool:
    return what == "UpdateEntity" and any("Write" in r for r in request["request"]["UpdateEntity"]["request"])


async def test_a_save_that_goes_through_while_the_entity_is_read_again_ends_its_editor(
        cluster: Cluster, browser: Browser, recorded: Recorded, client: Client) -> None:
    """Save, then Reload before the node answers the write: the editor, kept for the rows
    read again, ends once the write is acknowledged, as a save does, instead of staying
    open saying "your input is kept, not saved yet" for a value that is saved. Both
    orders: the answer after the editor is back in its row, and before."""
    ws = HeldAnswers(lambda what, _: False)
    page = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await page.route_web_socket(re.compile(r"^ws://"), ws.route)
        await page.goto(f"http://{cluster.page_node.addr}/")
        await expect(page.locator('#tree li[data-entity="Root$1"]')).to_be_visible()
        await open_entity(page, SENSOR)
        row = field_row(page, "Reading")
        reload = page.locator("#entity .panel-head button", has_text="Reload")

        # The write answered once the entity is read again and the editor is back in its row.
        await row.locator("button.edit").click()
        await row.locator(".editor-input").fill("44.5")
        ws.hold = is_write
        await row.locator("form.edit button[type=submit]").click()
        await ws.until(lambda: len(ws.held) == 1)
        ws.hold = lambda what, _: False
        await reload.click()
        await expect(row.locator("form.edit .note")).to_contain_text("your input is kept, not saved yet")
        await expect(page.locator("#entity .live")).to_contain_text("live: following")
        ws.release()
        await expect(row.locator("td.value")).to_have_text("44.5")
        assert await client.read_value(SENSOR, "Reading") == 44.5

        # The write answered while the entity is read again, before the editor is back.
        await row.locator("button.edit").click()
        await row.locator(".editor-input").fill("45.5")
        ws.hold = is_write
        await row.locator("form.edit button[type=submit]").click()
        await ws.until(lambda: len(ws.held) == 1)
        ws.hold = lambda what, _: what == "GetCompleteSchema"
        await reload.click()
        await ws.until(lambda: len(ws.held) == 2)  # the editor is kept by now; its row not rebuilt yet
        ws.hold = lambda what, _: False
        ws.release()  # the write's answer, then the schema's
        await expect(page.locator("#entity .live")).to_contain_text("live: following")
        await expect(row.locator("td.value")).to_have_text("45.5")
        assert await client.read_value(SENSOR, "Reading") == 45.5
    finally:
        await page.close()
    await client.write(SENSOR, "Reading", 42.25)


async def test_saving_an_unchanged_timestamp_keeps_its_nanoseconds(page: Page, client: Client) -> None:
    """The date-time input holds milliseconds; saved as it was shown, the value
    keeps the nanoseconds below them instead of being cut to the millisecond."""
    exact = Timestamp(1_795_629_501, 123_456_789)  # 2026-11-25 17:58:21.123456789 UTC
    await client.write(SENSOR, "LastSeen", exact)
    await open_entity(page, SENSOR)
    row = field_row(page, "LastSeen")
    await expect(row.locator("td.value")).to_have_text("2026-11-25 17:58:21.123 UTC")
    _, before, _ = await client.read(SENSOR, "LastSeen")
    await edit(page, "LastSeen", lambda row: asyncio.sleep(0))  # the input untouched
    await expect(row.locator("button.edit")).to_be_visible()  # the editor closed: the write was acknowledged
    value, after, _ = await client.read(SENSOR, "LastSeen")
    assert after != before  # it was written again
    assert value.v == exact


async def test_saving_an_unchanged_string_keeps_its_line_breaks(page: Page, client: Client) -> None:
    """A text area reads "\\r\\n" as "\\n" (and a text field drops line breaks):
    saved as it was shown, a String keeps its own, instead of being rewritten."""
    exact = "deg\r\nC\r"
    await client.write(SENSOR, "Unit", exact)
    await open_entity(page, SENSOR)
    _, before, _ = await client.read(SENSOR, "Unit")
    row = await edit(page, "Unit", lambda row: asyncio.sleep(0))  # the text area untouched
    await expect(row.locator("button.edit")).to_be_visible()  # the editor closed: the write was acknowledged
    value, after, _ = await client.read(SENSOR, "Unit")
    assert after != before  # it was written again
    assert value.v == exact
    await client.write(SENSOR, "Unit", "F")


async def test_shift_enter_starts_a_new_line_in_a_one_line_string(page: Page, client: Client) -> None:
    """A String without line breaks is edited in a text field, which holds one
    line: Shift+Enter turns it into a text area, with the line break at the caret."""
    await client.write(SENSOR, "Unit", "deg")
    await open_entity(page, "Folder$10")  # SENSOR opened afresh: its rows are not rebuilt under the test
    await open_entity(page, SENSOR)
    row = field_row(page, "Unit")
    await row.locator("button.edit").click()
    await expect(row.locator("input.editor-input")).to_have_value("deg")
    await row.locator(".editor-input").press("End")
    await row.locator(".editor-input").press("Shift+Enter")
    await expect(row.locator("textarea.editor-input")).to_be_focused()
    await page.keyboard.type("C")
    await page.keyboard.press("Control+Enter")
    await expect(row.locator("button.edit")).to_be_visible()  # the editor closed: the write was acknowledged
    assert await client.read_value(SENSOR, "Unit") == "deg\nC"
    await client.write(SENSOR, "Unit", "F")


async def test_a_long_string_is_shown_in_a_few_lines_that_scroll(page: Page, client: Client) -> None:
    """5,000 characters without a space: the value takes at most 8 lines of its
    cell (the rest scrolls within it), instead of making the table metres tall."""
    long = "x" * 5000
    await client.write(SENSOR, "Unit", long)
    await open_entity(page, "Folder$10")  # SENSOR opened afresh: its rows are not rebuilt under the test
    await open_entity(page, SENSOR)
    shown = field_row(page, "Unit").locator("td.value .string")
    await expect(shown).to_have_text(long)
    lines, scrolled = await shown.evaluate("""el => {
        const lh = parseFloat(getComputedStyle(el).lineHeight);
        return [el.getBoundingClientRect().height / lh, el.scrollHeight / lh]; }""")
    assert lines <= 8.01, f"{lines} lines tall"
    assert scrolled > 8, "the rest of the value is there to scroll to"
    await client.write(SENSOR, "Unit", "F")


async def test_a_long_name_keeps_the_page_its_width(page: Page, client: Client) -> None:
    """A name of 5,000 characters without a space: the heading shows what fits,
    on one line, instead of making the page tens of thousands of pixels wide."""
    long = await client.create("Group", "n" * 5000, parent="Folder$10")
    try:
        await open_entity(page, str(long))
        await expect(page.locator("#entity .entity-name")).to_have_text("n" * 5000)
        assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        await expect(page.get_by_role("button", name="Delete")).to_be_in_viewport()
    finally:
        await client.delete(long)


async def test_a_long_name_leaves_the_delete_dialog_its_buttons(page: Page, client: Client) -> None:
    """The delete confirmation names the entity on one line, cut with an ellipsis as the
    heading's name is (the full name in its tooltip): a name of thousands of characters,
    with spaces or without, neither overflows the dialog nor pushes its buttons off screen."""
    for name in ("long " * 1000, "n" * 5000):
        long = await client.create("Group", name, parent="Folder$10")
        try:
            await open_entity(page, str(long))
            await page.get_by_role("button", name="Delete").click()
            dialog = page.locator("dialog[open]")
            for button in ("Cancel", "Delete"):
                await expect(dialog.get_by_role("button", name=button)).to_be_in_viewport()
            assert await dialog.evaluate("d => d.scrollWidth <= d.clientWidth && d.scrollHeight <= d.clientHeight")
            shown = dialog.locator(".entity-name")
            await expect(shown).to_have_text(name)
            await expect(shown).to_have_attribute("title", name)
            await dialog.get_by_role("button", name="Cancel").click()
            await expect(dialog).to_have_count(0)
        finally:
            await client.delete(long)


async def test_a_wrong_value_shows_an_error_and_changes_nothing(page: Page, client: Client) -> None:
    await open_entity(page, SENSOR)
    before = await client.read(SENSOR, "Uptime")
    # Not an Int: refused in the page, nothing sent.
    row = await edit(page, "Uptime", typed("1.5"))
    await expect(row.locator("form.edit .error")).to_have_text("Int: enter a whole number, such as 42")
    await expect(row.locator("form.edit .error")).to_have_attribute("role", "alert")
    await row.get_by_role("button", name="Cancel").click()
    # Refused by the node: the page shows the node's own error where the user typed.
    parent_before = await client.read(SENSOR, "Parent")
    row = await edit(page, "Parent", typed("Folder$999"))
    await expect(row.locator("form.edit .error")).to_contain_text("Folder$999")
    await expect(row.locator("form.edit .error")).to_contain_text("(rejected)")
    await row.locator(".editor-input").press("Escape")
    await expect(row.locator("td.value")).to_have_text("Folder$10")
    assert await client.read(SENSOR, "Uptime") == before
    assert await client.read(SENSOR, "Parent") == parent_before


async def test_a_choice_saves_the_picked_name_after_its_choices_were_reordered(page: Page, client: Client) -> None:
    """The editor lists the choices read when the entity was opened and the node stores an
    index: after another user reordered them, saving stored the picked name's old index,
    which now named another choice. The picked name is saved, at its index of now; a
    name dropped meanwhile is refused in the row, which lists the choices as they are."""
    dimmer: dict[str, Any] = {"entity_type": "Dimmer", "inherit": "Object", "fields": {
        "Mode": {"default_value": {"Choice": 0}, "rank": 3, "choices": ["Off", "Auto", "Manual"]}}}

    async def set_choices(*choices: str) -> None:
        await client.set_schema({**dimmer, "fields": {"Mode": {**dimmer["fields"]["Mode"], "choices": list(choices)}}})

    await client.set_schema(dimmer)
    eid = await client.create("Dimmer", "hall")
    await open_entity(page, str(eid))
    row = field_row(page, "Mode")
    await row.locator("button.edit").click()
    await row.locator("select").select_option(label="Manual")
    await set_choices("Manual", "Off", "Auto")  # another user, while the editor is open
    await row.locator("form.edit button[type=submit]").click()
    await expect(row.locator("td.value")).to_have_text("Manual")
    assert await client.read_value(eid, "Mode") == "Manual"

    await row.locator("button.edit").click()
    await row.locator("select").select_option(label="Auto")
    await set_choices("Manual", "Off", "Dim")
    await row.locator("form.edit button[type=submit]").click()
    await expect(row.locator("form.edit .error")).to_contain_text('"Auto" is no longer one of the choices of Mode')
    await expect(row.locator("select option")).to_have_text(["Manual", "Off", "Dim"])
    assert await client.read_value(eid, "Mode") == "Manual"
    await row.locator("select").select_option(label="Dim")
    await row.locator("form.edit button[type=submit]").click()
    await expect(row.locator("td.value")).to_have_text("Dim")
    assert await client.read_value(eid, "Mode") == "Dim"


async def test_a_write_from_another_client_shows_live(page: Page, client: Client) -> None:
    await open_entity(page, SENSOR)
    value = field_row(page, "Reading").locator("td.value")
    for reading in (77.5, -3.25):
        await client.write(SENSOR, "Reading", reading)  # acknowledged: committed and applied
        await expect(value).to_have_text(str(reading), timeout=LIVE_MS)
    # The row's write time and writer are the ones the write stored (the node's clock, to the nanosecond).
    await client.write(SENSOR, "Reading", 12.5, writer_id="User$4")
    await expect(value).to_have_text("12.5", timeout=LIVE_MS)
    _, stamp, writer = await client.read(SENSOR, "Reading")
    assert writer == EntityId("User", 4)
    at = dt.datetime.fromtimestamp(stamp.secs, dt.timezone.utc)
    assert abs(at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)  # it is the time of this write
    shown = field_row(page, "Reading").locator("td.time time")
    await expect(shown).to_have_text(f"{at:%Y-%m-%d %H:%M:%S}.{stamp.nanos // 1_000_000:03d} UTC")
    await expect(shown).to_have_attribute("title", f"{at:%Y-%m-%d %H:%M:%S}.{stamp.nanos:09d} UTC")
    await expect(field_row(page, "Reading").locator("td.writer")).to_have_text("User$4")
    await client.write(SENSOR, "Name", "temp-one")
    await expect(page.locator("#entity .entity-name")).to_have_text("temp-one", timeout=LIVE_MS)
    await expect(page.locator(f'li[data-entity="{SENSOR}"] .tree-name')).to_have_text("temp-one", timeout=LIVE_MS)
    assert await page.evaluate("() => window.__notReloaded") is True


async def test_an_editor_left_open_stays_with_its_entity(page: Page, client: Client) -> None:
    """An editor open when the user opens another entity is not carried over to that
    entity's field of the same name (saving it there would write the other entity):
    the new entity's row shows its own value; the input is dropped with the entity left."""
    await open_entity(page, SENSOR)
    row = field_row(page, "Name")
    await row.locator("button.edit").click()
    await row.locator(".editor-input").fill("typed for the sensor")
    await open_entity(page, "Folder$10")
    await expect(row.locator("form.edit")).to_have_count(0)
    await expect(row.locator("td.value")).to_have_text(await client.read_value("Folder$10", "Name"))
    await expect(page.locator("#entity .error")).to_be_hidden()
    await open_entity(page, SENSOR)
    await expect(row.locator("form.edit")).to_have_count(0)
    await expect(row.locator("td.value")).to_have_text(await client.read_value(SENSOR, "Name"))


async def test_moving_on_unregisters_the_notifications(cluster: Cluster, page: Page) -> None:
    await open_entity(page, SENSOR)  # 13 fields and its parent's Children
    await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
    await wait_until(lambda: _registrations_are(cluster, 14), what="14 registrations")
    await open_entity(page, "Folder$10")  # Name, Parent, Children, Description and its parent's Children
    await wait_until(lambda: _registrations_are(cluster, 5), what="5 registrations")


async def _registrations_are(cluster: Cluster, n: int) -> bool:
    return await cluster.registrations(cluster.page_node) == n


async def test_a_large_folder_is_shown_a_page_at_a_time(page: Page, client: Client) -> None:
    folder = await client.create("Folder", "Many", parent="Root$1")
    await asyncio.gather(*(client.create("Device", f"d{i:03}", parent=folder) for i in range(PAGE + 20)))
    await page.locator("#tree-reload").click()
    many = page.locator(f'li[data-entity="{folder}"]')
    await page.locator('li[data-entity="Root$1"] .caret').click()
    await many.locator(".caret").click()
    await expect(many.locator(".tree-count").first).to_have_text(str(PAGE + 20))  # its number of children
    items = many.locator('ul[role=group] > li[role=treeitem]:not(.more)')
    await expect(items).to_have_count(PAGE)
    more = many.locator("li.more")
    await expect(more).to_have_text(f"show more ({PAGE} of {PAGE + 20} shown)")
    await more.click()
    await expect(items).to_have_count(PAGE + 20)
    await expect(more).to_have_count(0)
    await expect(items.nth(PAGE)).to_be_focused()  # the first of the new page
    await expect(items.nth(PAGE + 19)).to_contain_text(f"d{PAGE + 19:03}")  # in the folder's order


async def test_search_by_type_and_open(page: Page) -> None:
    await page.select_option("#search-type", "Sensor")
    await page.get_by_role("button", name="Find").click()
    result = page.locator("ul.results li", has_text=SENSOR)
    await expect(result).to_contain_text("temp-one")
    await expect(page.locator("#search .muted")).to_contain_text("Sensor: 1 of 1 shown")
    await result.get_by_role("button").click()
    await expect(page.locator("#entity .entity-id")).to_have_text(SENSOR)


async def test_a_name_cannot_reorder_the_text_beside_it(page: Page, client: Client) -> None:
    """A name ending in U+202E (right-to-left override) is shown as it is, but the
    entity id drawn after it still reads left to right: each name is its own
    bidirectional run, so a name cannot make another entity's id appear."""
    spoof = await client.create("Group", "evil\u202e", parent="Folder$10")
    try:
        await open_entity(page, str(spoof))
        await page.locator("#tree-reload").click()
        for folder in ("Root$1", "Folder$10"):
            await page.locator(f'li[data-entity="{folder}"] .caret').click()
        await page.select_option("#search-type", "Group")
        await page.get_by_role("button", name="Find").click()
        for shown in (page.locator("#entity .entity-id"), page.locator(f'li[data-entity="{spoof}"] .tree-id'),
                      page.locator("ul.results li", has_text=str(spoof)).locator(".tree-id")):
            await expect(shown).to_have_text(str(spoof))
            assert await shown.evaluate(LEFT_TO_RIGHT), f"{spoof} is drawn reversed"
    finally:
        await client.delete(spoof)


# Is the element's first character drawn left of its last one?
LEFT_TO_RIGHT = """el => {
    const text = el.firstChild, range = document.createRange(), left = (i) => {
        range.setStart(text, i); range.setEnd(text, i + 1); return range.getBoundingClientRect().left; };
    return left(0) < left(text.length - 1);
}"""


async def test_create_a_child_and_delete_it(page: Page, client: Client) -> None:
    await open_entity(page, "Folder$10")
    await page.get_by_role("button", name="New child").click()
    dialog = page.locator("dialog[open]")
    await dialog.locator("#new-type").select_option("Sensor")
    await dialog.locator("#new-name").fill("temp-2")
    await dialog.get_by_role("button", name="Create").click()
    await expect(dialog).to_have_count(0)
    await expect(page.locator("#entity .entity-name")).to_have_text("temp-2")
    text_id = await page.locator("#entity .entity-id").inner_text()
    created = EntityId.parse(text_id)
    assert created in await client.read_value("Folder$10", "Children")
    await expect(page.locator(f'li[data-entity="{text_id}"]')).to_contain_text("temp-2")
    await expect(page.locator(f'li[data-entity="{text_id}"]')).to_have_attribute("aria-selected", "true")

    await page.get_by_role("button", name="Delete").click()
    await expect(dialog).to_contain_text(f"Delete {text_id}")
    await dialog.get_by_role("button", name="Cancel").click()  # the safe default does nothing
    assert await client.entity_exists(created)
    await page.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(page.locator("#entity .entity-id")).to_have_text("Folder$10")  # back at its parent
    await expect(page.locator(f'li[data-entity="{text_id}"]')).to_have_count(0)
    assert not await client.entity_exists(created)


async def test_a_deleted_root_leaves_the_tree(page: Page, client: Client) -> None:
    """A root has no parent whose children could be read again: its own item goes."""
    other = await client.create("Root", "Second root")
    await page.locator("#tree-reload").click()
    item = page.locator(f'li[data-entity="{other}"]')
    await expect(item).to_contain_text("Second root")
    await item.locator(".tree-name").click()
    await expect(page.locator("#entity .entity-id")).to_have_text(str(other))
    await page.get_by_role("button", name="Delete").click()
    await page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    await expect(item).to_have_count(0)
    await expect(page.locator('li[data-entity="Root$1"]')).to_be_visible()
    assert not await client.entity_exists(other)


async def test_an_entity_deleted_elsewhere_says_so(page: Page, client: Client) -> None:
    doomed = await client.create("Sensor", "doomed", parent="Folder$10")
    await open_entity(page, str(doomed))
    await client.delete(doomed)
    await expect(page.locator("#entity .live")).to_have_text(f"{doomed} was deleted", timeout=LIVE_MS)
    await expect(page.get_by_role("button", name="Delete")).to_be_disabled()


async def test_a_root_deleted_elsewhere_says_so(page: Page, client: Client) -> None:
    """A root has no parent whose Children would tell of its deletion: the page
    notices it all the same, instead of following a deleted entity."""
    doomed = await client.create("Root", "doomed root")
    await open_entity(page, str(doomed))
    await client.delete(doomed)
    await expect(page.locator("#entity .live")).to_have_text(f"{doomed} was deleted", timeout=10_000)
    await expect(page.get_by_role("button", name="Delete")).to_be_disabled()


async def test_a_phone_sized_screen(cluster: Cluster, browser: Browser, recorded: Recorded) -> None:
    phone = recorded.watch(await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True))
    try:
        await phone.goto(f"http://{cluster.page_node.addr}/#{SENSOR}")
        await expect(phone.locator("#entity .entity-id")).to_have_text(SENSOR)
        await expect(phone.locator('li[data-entity="Root$1"]')).to_be_visible()
        await expect(phone.locator("table.cluster tbody tr")).to_have_count(3)
        await expect(phone.locator("table.cluster td.health").first).to_be_in_viewport(ratio=1)
        # Nothing wider than the screen: no sideways scrolling of the page.
        assert await phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        await phone.evaluate("() => window.scrollTo(0, 0)")
        await screenshot(phone, "phone")
        row = field_row(phone, "Threshold")
        await row.locator("button.edit").tap()
        await row.locator(".editor-input").fill("31.5")
        await row.locator("form.edit button[type=submit]").tap()
        await expect(row.locator("td.value")).to_have_text("31.5")
    finally:
        await phone.close()


POLLED = ("GetClusterMetrics", "EntityExists")  # the cluster view's poll, a root's deletion check


async def test_a_hidden_page_polls_nothing_and_catches_up_when_shown(
        cluster: Cluster, browser: Browser, recorded: Recorded) -> None:
    """A hidden page (a background tab) sends none of its periodic requests, however long
    it stays hidden, and sends them at once when it is shown again. The page's clock is
    Playwright's: paused once the page is up, and moved on only by the test."""
    tab = recorded.watch(await browser.new_page(viewport=DESKTOP))
    try:
        await tab.add_init_script(COUNT_AND_HIDE)
        await tab.clock.install()
        await tab.goto(f"http://{cluster.page_node.addr}/#Root$1")  # a root: checked with EntityExists
        await expect(tab.locator("#entity .live")).to_contain_text("live: following")
        await expect(tab.locator(f'table.cluster tr[data-node-id="{cluster.page_node.id}"]')).to_have_attribute(
            "data-health", "ok")
        await tab.clock.pause_at(dt.datetime.now() + dt.timedelta(seconds=5))
        await tab.clock.run_for(4000)  # both polls have run since the pause

        before = await tab.evaluate("() => { window.__setHidden(true); return { ...window.__sent }; }")
        for _ in range(10):  # 60 s of the page's time, in steps: a poll answered meanwhile comes due again
            await tab.clock.run_for(6000)
            await expect(tab.locator("#entity .live")).to_contain_text("live: following")
        sent = await tab.evaluate("() => window.__sent")
        assert {p: sent[p] - before[p] for p in POLLED} == {p: 0 for p in POLLED}, "polled while hidden"

        # Shown again: both polls go at once (in the visibilitychange event), the page's clock still paused.
        shown = await tab.evaluate("() => { window.__setHidden(false); return { ...window.__sent }; }")
        assert {p: shown[p] - sent[p] for p in POLLED} == {p: 1 for p in POLLED}, "no catching up when shown"
        await expect(tab.locator("#entity .live")).to_contain_text("live: following")
    finally:
        await tab.close()


async def test_when_the_pages_node_is_down_no_row_claims_anything(cluster: Cluster, page: Page) -> None:
    """The page's own node killed: the cluster view cannot know any member's
    state, so no row is left saying Leader or ok, and the open entity no longer
    claims to be followed (its registrations ended with the connection); once the
    node is back, the page reconnects by itself and shows every member again."""
    await open_entity(page, SENSOR)
    cluster.page_node.kill9()
    await expect(page.locator("#conn-status")).to_contain_text("disconnected")
    await expect(page.locator("#entity .live")).to_have_text(
        "not following changes: the connection to the node was lost (unavailable)")
    rows = page.locator("table.cluster tbody tr")
    await expect(page.locator("table.cluster tr[data-health=unknown]")).to_have_count(3)
    await expect(page.locator("table.cluster tr.leader")).to_have_count(0)
    await expect(rows.locator("td.role")).to_have_text(["—", "—", "—"])
    await expect(page.locator("#cluster .panel-status")).to_have_text("not connected to the node")
    cluster.page_node.start()
    await wait_serving(cluster.page_node)
    await expect(page.locator("table.cluster tr[data-health=ok]")).to_have_count(3, timeout=15_000)
    await expect(page.locator("table.cluster tr.leader")).to_have_count(1)
    await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
    assert await page.evaluate("() => window.__notReloaded") is True


async def test_an_edit_outlives_a_reconnect(cluster: Cluster, page: Page, client: Client) -> None:
    """Input typed into an editor, then the page's node restarts: the page reads the
    entity again on reconnecting, and the input comes back in the editor, saying
    it is not saved yet, instead of being dropped without a word."""
    await open_entity(page, "Folder$10")  # SENSOR opened afresh: its rows are not rebuilt under the test
    await open_entity(page, SENSOR)
    row = field_row(page, "Unit")
    await row.locator("button.edit").click()
    await row.locator(".editor-input").fill("typed before the restart")
    cluster.page_node.kill9()
    await expect(page.locator("#conn-status")).to_contain_text("disconnected")
    cluster.page_node.start()
    await wait_serving(cluster.page_node)
    await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields", timeout=15_000)
    await expect(row.locator(".editor-input")).to_have_value("typed before the restart")
    await expect(row.locator("form.edit .note")).to_contain_text("not saved yet")
    await expect(row.locator(".editor-input")).to_be_focused()
    await row.locator("form.edit button[type=submit]").click()
    await expect(row.locator("td.value")).to_have_text("typed before the restart")
    assert await client.read_value(SENSOR, "Unit") == "typed before the restart"
    await client.write(SENSOR, "Unit", "F")


async def test_when_the_pages_node_hangs_no_row_claims_anything(cluster: Cluster, page: Page) -> None:
    """The page's node stopped (SIGSTOP: its connection stays open, nothing is
    answered): the rows stop claiming the roles and health they showed well
    before the request's own 15 s timeout, and come back once it runs again."""
    await expect(page.locator("table.cluster tr[data-health=ok]")).to_have_count(3)
    assert cluster.page_node.proc is not None
    cluster.page_node.proc.send_signal(signal.SIGSTOP)
    try:
        await expect(page.locator("#cluster .panel-status")).to_have_text(
            "no answer from the node this page talks to for 5 s", timeout=10_000)
        await expect(page.locator("table.cluster tr[data-health=unknown]")).to_have_count(3)
        await expect(page.locator("table.cluster tr.leader")).to_have_count(0)
    finally:
        cluster.page_node.proc.send_signal(signal.SIGCONT)
    await expect(page.locator("table.cluster tr[data-health=ok]")).to_have_count(3, timeout=15_000)


async def test_killing_a_follower_shows_it_down(cluster: Cluster, page: Page) -> None:
    await page.locator("#tree-reload").click()  # as it opened: for the screenshot
    for folder in ("Root$1", "Folder$10"):
        await page.locator(f'li[data-entity="{folder}"] .caret').click()
    await open_entity(page, SENSOR)
    await page.evaluate("() => window.scrollTo(0, 0)")
    leader = await cluster.leader()
    victim = next(n for n in cluster.others() if n.id != leader)
    victim.kill9()
    row = page.locator(f'table.cluster tr[data-node-id="{victim.id}"]')
    await expect(row).to_have_attribute("data-health", "down", timeout=15_000)
    await expect(row.locator("td.health")).to_contain_text("down: unreachable")
    await expect(page.locator("table.cluster tr[data-health=ok]")).to_have_count(2)
    await screenshot(page, "console")


async def test_an_entity_that_failed_to_load_can_be_reloaded(cluster: Cluster, page: Page) -> None:
    """A follower is down since the previous test; with the leader down too, the
    page's node has no quorum and opening an entity fails. Once the cluster is
    back, the entity panel's Reload opens it, without going through the tree."""
    cluster.by_id(await cluster.leader()).kill9()
    down = [n for n in cluster.nodes if not n.alive()]
    await page.fill("#open-id", "Device$11")
    await page.press("#open-id", "Enter")
    entity = page.locator("#entity")
    await expect(entity.locator(".entity-id")).to_have_count(0)
    # no_leader, or unavailable if the page's node still took the dead leader for alive (a read barrier's 10 s)
    await expect(entity.locator("p.error")).to_contain_text("no leader", timeout=15_000)
    for n in down:
        n.start()
    for n in down:
        await wait_serving(n)
    await wait_until(cluster.leader, what="a leader again")
    await entity.get_by_role("button", name="Reload").click()
    await expect(entity.locator(".entity-id")).to_have_text("Device$11")
    await expect(field_row(page, "Name").locator("td.value")).to_have_text("gateway-1")


async def test_what_failed_for_want_of_a_leader_is_read_again_by_itself(cluster: Cluster, page: Page) -> None:
    """The whole cluster killed, the page's node back first and alone: the page
    reconnects to a node without a leader, so reading the tree and the open entity
    fails. Once the others are back, both are read again without a click."""
    await open_entity(page, SENSOR)
    others = cluster.others()
    for n in [cluster.page_node, *others]:
        n.kill9()
    await expect(page.locator("#conn-status")).to_contain_text("disconnected")
    cluster.page_node.start()
    await wait_serving(cluster.page_node)
    await expect(page.locator("#tree li.error")).to_contain_text("no leader", timeout=15_000)
    await expect(page.locator("#entity p.error")).to_contain_text("no leader")
    for n in others:
        n.start()
    for n in others:
        await wait_serving(n)
    await expect(page.locator('li[data-entity="Root$1"]')).to_be_visible(timeout=15_000)
    await expect(page.locator("#tree li.error")).to_have_count(0)
    await expect(page.locator("#entity .live")).to_have_text("live: following 13 fields")
    await expect(page.locator("#search-type option")).not_to_have_count(0)


async def test_a_learner_says_so_once(cluster: Cluster, page: Page) -> None:
    """A fourth node joins as a learner: its role cell reads "Learner", once."""
    learner = NodeProc(4, cluster.nodes[0].data_dir.parent, port=free_ports(1)[0])
    cluster.nodes.append(learner)  # the fixture kills it with the others
    learner.start()
    await wait_serving(learner)
    leader = await wait_until(cluster.leader, what="a leader")
    c = await Conn.open(cluster.by_id(leader).addr)
    try:
        reply = await c.call("AddLearner", node_id=learner.id, node_addr=learner.addr, timeout=60)
        assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    finally:
        await c.close()
    row = page.locator(f'table.cluster tr[data-node-id="{learner.id}"]')
    await expect(row).to_have_attribute("data-role", "Learner", timeout=15_000)
    await expect(row.locator("td.role")).to_have_text("Learner")


async def test_nothing_left_for_another_host_and_no_errors(cluster: Cluster, recorded: Recorded) -> None:
    """Over every page of this module: each request went to the node that served it."""
    assert any(u.startswith("ws://") for u in recorded.urls), recorded.urls
    assert recorded.off_host(cluster.page_node.addr) == []
    assert [e for e in recorded.errors if not RECONNECT_ERROR.match(e)] == []

