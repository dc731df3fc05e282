"""How a node uses CPython's cyclic garbage collector.

A node's heap can hold millions of objects that live as long as the
process (the store's before it became columnar; the notification window's
and the log's still). The collector's older generations rescan every object
in them, with the loop (and so heartbeats and acknowledgements) stopped
meanwhile — at a million entities for longer than an election timeout
(docs/benchmarks.md).

So objects that survive a generation-1 collection are frozen (`gc.freeze`):
moved where the collector never looks again. Reference counting still
frees them as usual; what is given up is reclaiming *cycles* among them
that become garbage later. The store holds no cycles (entities refer to
each other by id), and neither do Raft log entries; a connection's objects
are released when its tasks finish. Young objects, where nearly all cyclic
garbage is (exceptions and their tracebacks, finished tasks), are still
collected, in pauses bounded by the thresholds below.
"""

from __future__ import annotations

import gc
from typing import Any

# Collect generation 0 after 100k net allocations (the default of 700
# would rescan young objects every few hundred allocations of a busy node);
# generation 1 after 5 of those (at most ~500k objects to scan).
THRESHOLDS = (100_000, 5, 1_000)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()


def install() -> None:
    """Apply the policy to this process (once, at start-up)."""
    gc.set_threshold(*THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)
