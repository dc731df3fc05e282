"""Plain HTTP on the node's WebSocket port (SPEC 9).

websockets hands every opening request to `process_request` before the
handshake. A request that asks to upgrade to WebSocket goes on to the
handshake untouched, whatever its path (clients, peers on /raft, forwards
on /forward); any other GET is answered here from a route table and the
connection is closed. So HTTP shares the port, and whatever TLS the server
gets, with the WebSocket protocol, and adds nothing to a request's path
once the WebSocket is open.

Only GET is served (SPEC 9: anything else over HTTP is 404, so 404 rather
than 405): any other method gets 404 whatever its path, upgrade or not, and
a HEAD's 404 has no body. A request with two Host lines is 400 whatever
its method or path (RFC 9112 3.2). websockets 17 hands every method here; older
releases close such a connection without a reply before we see it.

Routes are exact paths or path prefixes (for a directory of static files):

    routes = HttpRoutes()
    routes.add("/health", lambda request: HttpReply.json(200, {"status": "ok"}))
    routes.add_prefix("/static/", serve_file)

A handler may be a plain function or a coroutine function. Paths with no
route get 404. An upgrade whose target does not parse as a URL is 400
(`unparsable_target`). `check_upgrade(check)` adds a check that may refuse a
WebSocket handshake with an HTTP reply (a peer of another cluster). The node's own routes (/health, /ready, /metrics) need no
authentication by design: probes and scrapers have no user.
"""

from __future__ import annotations

import http
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any) -> "HttpReply":
        return cls(status, orjson.dumps(obj) + b"\n", "application/json")

    @classmethod
    def text(cls, status: int, text: str) -> "HttpReply":
        return cls(status, text.encode())


Handler = Callable[[Request], "HttpReply | Awaitable[HttpReply]"]


def is_websocket_upgrade(request: Request) -> bool:
    return any(v.strip().lower() == "websocket" for h in request.headers.get_all("Upgrade") for v in h.split(","))


def unparsable_target(target: str) -> str | None:
    """Why urlsplit, which the peer paths' readers use on an upgrade's target, refuses it (None: it
    does not); e.g. `//[x`, taken for an IPv6 host. Such a handshake is refused here, before them."""
    try:
        urlsplit(target)
    except ValueError as exc:
        return f"cannot parse the request target {target!r}: {exc}"
    return None


class HttpRoutes:
    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []  # longest first
        self._upgrade_checks: list[Callable[[Request], HttpReply | None]] = []

    def add(self, path: str, handler: Handler) -> None:
        self._exact[path] = handler

    def add_prefix(self, prefix: str, handler: Handler) -> None:
        self._prefixes.append((prefix, handler))
        self._prefixes.sort(key=lambda p: -len(p[0]))

    def check_upgrade(self, check: Callable[[Request], HttpReply | None]) -> None:
        self._upgrade_checks.append(check)

    def route(self, path: str) -> Handler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, h in self._prefixes:
            if path.startswith(prefix):
                return h
        return None

    async def process_request(self, connection: Any, request: Request) -> Response | None:
        """websockets' hook: None lets a WebSocket handshake go on."""
        method = getattr(request, "method", "GET")  # websockets < 17 has no method: it takes only GETs
        if len(request.headers.get_all("Host")) > 1:
            return to_response(TWO_HOSTS, body=method != "HEAD")
        if method != "GET":
            return to_response(ONLY_GET, body=method != "HEAD")
        if is_websocket_upgrade(request):
            bad = unparsable_target(request.path)
            if bad is not None:
                return to_response(HttpReply.text(400, f"400 bad request: {bad}\n"))
            for check in self._upgrade_checks:
                refusal = check(request)
                if refusal is not None:
                    return to_response(refusal)
            return None
        path = request.path.partition("?")[0]  # origin-form; urlsplit would take //health for a host
        handler = self.route(path)
        if handler is None:
            reply = HttpReply.text(404, f"404 not found: {path}\n")
        else:
            try:
                result = handler(request)
                reply = await result if inspect.isawaitable(result) else result
            except Exception:
                log.exception("HTTP GET %s failed", path)
                reply = HttpReply.text(500, "500 internal error (see the node's log)\n")
        return to_response(reply)


ONLY_GET = HttpReply.text(404, "404 not found: only GET is served over HTTP here\n")
# RFC 9112 3.2: a request with more than one Host line MUST be answered 400 (which host would it be?).
TWO_HOSTS = HttpReply.text(400, "400 bad request: more than one Host header\n")


def to_response(reply: HttpReply, body: bool = True) -> Response:
    """`body` False: a reply to HEAD, sent without its body and without a
    Content-Length (which would have to be the length a GET would get,
    RFC 9110 8.6); Connection: close ends it all the same."""
    headers = Headers()
    headers["Content-Type"] = reply.content_type
    # A 304 has no body, and its length would be the 200's (RFC 9110 8.6).
    if reply.status != 304 and body:
        headers["Content-Length"] = str(len(reply.body))
    headers["Connection"] = "close"
    headers["Cache-Control"] = "no-store"
    # Bodies are what their Content-Type says (a 404 echoes the path as text): never sniffed into HTML.
    headers["X-Content-Type-Options"] = "nosniff"
    for k, v in reply.headers.items():
        if k in headers:
            del headers[k]  # Headers is a multidict: assigning would add a second value
        headers[k] = v
    return Response(reply.status, http.HTTPStatus(reply.status).phrase, headers, reply.body if body else b"")
