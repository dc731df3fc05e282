"""The web console's files on the node's port (SPEC 10): `GET /` and `/console/...`.

The console is static HTML, CSS and JavaScript shipped in the package
(`qcore/console/`); the page talks to the node over the ordinary WebSocket
protocol, so this layer only hands out files. They are read once, at start,
into memory: a request can only ever get one of those files (no path from a
request reaches the file system), each with its content type, an ETag for
revalidation and a Content-Security-Policy that lets the page load nothing
and connect nowhere but the node that served it.

The files hold no data, so they are served without authentication, like
/health; everything the page shows comes over the WebSocket, which asks
for a login when users are on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from websockets.http11 import Request

from qcore.node.http import HttpReply, HttpRoutes

log = logging.getLogger(__name__)

PREFIX = "/console/"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# A host header we may repeat inside the policy (a name or address and a port).
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def content_security_policy(host: str | None) -> str:
    """Same-origin only. `connect-src` names the page's own host for ws:/wss:
    too, where the request's Host header allows it: CSP3 lets 'self' cover
    them, older browsers need them spelled out."""
    connect = "'self'"
    if host is not None and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def load_files(root: Traversable) -> dict[str, StaticFile]:
    """Every file under `root` with a known content type, by its path under it ("js/app.js")."""
    out: dict[str, StaticFile] = {}

    def walk(d: Traversable, prefix: str) -> None:
        for entry in sorted(d.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            ctype = CONTENT_TYPES.get(suffix)
            if ctype is None:
                continue
            body = entry.read_bytes()
            out[prefix + entry.name] = StaticFile(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    walk(root, "")
    return out


class ConsoleFiles:
    """The console's files, and the handler that serves them."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self.files = files

    @classmethod
    def packaged(cls) -> "ConsoleFiles":
        root = resources.files("qcore").joinpath("console")
        files = load_files(root) if root.is_dir() else {}
        if "index.html" not in files:
            log.warning("the web console's files are missing from the package: GET / answers 404")
        return cls(files)

    def serve(self, request: Request) -> HttpReply:
        path = request.path.split("?", 1)[0]
        name = "index.html" if path == "/" else path[len(PREFIX):] if path.startswith(PREFIX) else ""
        f = self.files.get(name)
        if f is None:
            return HttpReply.text(404, f"404 not found: {path}\n")
        headers = {
            # Revalidate every time (a node upgrade changes the files), answered by a 304 when unchanged.
            "Cache-Control": "no-cache",
            "ETag": f.etag,
            "Content-Security-Policy": content_security_policy(request.headers.get("Host")),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
        # A list header may come on several lines (RFC 9110 5.3): they are one list.
        if f.etag in (t.strip() for h in request.headers.get_all("If-None-Match") for t in h.split(",")):
            return HttpReply(304, b"", f.content_type, headers)
        return HttpReply(200, f.body, f.content_type, headers)


def add_console_routes(routes: HttpRoutes, console: ConsoleFiles | None) -> None:
    """`console` None (--no-console): / answers 404 saying so."""
    if console is None:
        off = HttpReply.text(404, "the web console is off on this node (--no-console)\n")
        routes.add("/", lambda request: off)
        routes.add_prefix(PREFIX, lambda request: off)
        return
    routes.add("/", console.serve)
    routes.add_prefix(PREFIX, console.serve)
