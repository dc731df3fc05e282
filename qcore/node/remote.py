"""Naming the other end of a connection in log lines."""

from __future__ import annotations

from typing import Any


def remote_of(ws: Any) -> str:
    """``host:port`` of the connection's other end, or ``?``."""
    try:
        host, port = ws.remote_address[:2]
        return f"{host}:{port}"
    except (AttributeError, TypeError, ValueError):
        return "?"
