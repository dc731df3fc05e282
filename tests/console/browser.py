"""A real headless Chromium for the console's tests: Debian's /usr/bin/chromium
driven by Playwright for Python (never a browser download), a page that
records every request it makes and every error it logs, and screenshots for
docs/console.md when QCORE_SCREENSHOTS names a directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Locator, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (CI runs as root), and none of Chromium's own traffic
# (updates, sync, field trials): on a closed network it would only log failures.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# In the page before its scripts: counts every request it sends, by message (a Perform by its
# command), and lets the test hide and show the page as a background tab is hidden and shown.
COUNT_AND_HIDE = """(() => {
    window.__sent = {};
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        const msg = JSON.parse(data), tag = Object.keys(msg)[0];
        const what = tag === "Perform" ? Object.keys(msg[tag].request)[0] : tag;
        window.__sent[what] = (window.__sent[what] || 0) + 1;
        return send.call(this, data);
    };
    let hidden = false;
    Object.defineProperty(Document.prototype, "visibilityState", { get: () => (hidden ? "hidden" : "visible") });
    Object.defineProperty(Document.prototype, "hidden", { get: () => hidden });
    window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event("visibilitychange")); };
})()"""


async def launch(pw: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@dataclass
class Recorded:
    """What the pages of a test module did: every URL requested, every error logged."""

    urls: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        return page

    def off_host(self, addr: str) -> list[str]:
        """The URLs that went anywhere but `addr` (a blob: URL counts as its origin)."""
        out = []
        for url in self.urls:
            inner = url[len("blob:"):] if url.startswith("blob:") else url
            parts = urlsplit(inner)
            if parts.scheme not in ("http", "ws") or parts.netloc != addr:
                out.append(url)
        return out


async def screenshot(target: Page | Locator, name: str, **options: Any) -> None:
    """Save `name`.png in $QCORE_SCREENSHOTS (for docs/console.md); nothing when it is unset."""
    where = os.environ.get("QCORE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        await target.screenshot(path=str(Path(where) / f"{name}.png"), animations="disabled", **options)
