"""Whether the real node program can be started yet (it is built in parallel)."""

from __future__ import annotations

import importlib

import pytest


def node_skip_reason() -> str | None:
    """None when ``python -m qcore`` has what it needs to run, else why not."""
    for module in ("qcore.cli.node", "qcore.node.server", "qcore.store.config", "qcore.raft"):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any import failure means "not yet"
            return f"the node is not runnable yet: import {module} failed: {e!r}"
    raft = importlib.import_module("qcore.raft")
    if not hasattr(raft, "RawNode"):
        return "the node is not runnable yet: qcore.raft has no RawNode"
    return None


requires_node = pytest.mark.skipif(node_skip_reason() is not None, reason=str(node_skip_reason()))
