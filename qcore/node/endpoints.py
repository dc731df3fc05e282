"""The node's own HTTP routes: /health, /ready, /metrics (SPEC 9) and the
web console's files on / and /console/ (SPEC 10, qcore.node.console).

Unauthenticated by design, whatever users and TLS a node has: a liveness
probe, a readiness probe and a scraper have no user, and the console's
files hold no data (the page logs in over the WebSocket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qcore.node.console import ConsoleFiles, add_console_routes
from qcore.node.health import health, readiness
from qcore.node.http import HttpReply, HttpRoutes
from qcore.node.prometheus import CONTENT_TYPE_LATEST, Exposition

if TYPE_CHECKING:
    from qcore.node.server import Node


def node_routes(node: "Node", exposition: Exposition | None, console: ConsoleFiles | None) -> HttpRoutes:
    """`exposition` None (--no-metrics): /metrics answers 404 saying so; `console` None (--no-console): / too."""
    routes = HttpRoutes()
    routes.add("/health", lambda request: HttpReply.json(200, health(node)))

    def ready(request: object) -> HttpReply:
        ok, body = readiness(node)
        return HttpReply.json(200 if ok else 503, body)

    routes.add("/ready", ready)
    if exposition is not None:
        routes.add("/metrics", lambda request: HttpReply(200, exposition.render(), CONTENT_TYPE_LATEST))
    else:
        routes.add("/metrics", lambda request: HttpReply.text(404, "metrics are off on this node (--no-metrics)\n"))
    add_console_routes(routes, console)
    return routes
