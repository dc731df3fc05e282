"""Plain counters the node's hot paths bump, read by /metrics at scrape time.

The event loop is the only writer, so a counter is an `int` attribute and a
histogram a list of bucket counts: an update is an integer add (and a
bisect for a histogram), no lock and no allocation. `qcore.node.prometheus`
turns them into Prometheus metric families when scraped; nothing here knows
the exposition format.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from qcore.protocol import messages as m

_PERFORM_RESPONSE = m.PerformResponse

# Request and fsync latencies, in seconds (50 µs .. 10 s).
LATENCY_BOUNDS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Snapshot builds take milliseconds to tens of seconds.
SNAPSHOT_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Writing one to the data dir (write, fsync, rename, a checkpoint segment): a millisecond up.
SNAPSHOT_SAVE_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Bucket counts with Prometheus' `le` semantics: `counts[i]` holds the
    observations v with bounds[i-1] < v <= bounds[i]; the last one is +Inf."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, count of observations <= le), ..., ("+Inf", total)]."""
        out, total = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts):
            total += count
            out.append((bound, total))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


class RequestStats:
    """One message type's requests: how long they took and how they ended."""

    __slots__ = ("duration", "ok", "rejected", "error")

    def __init__(self) -> None:
        self.duration = Histogram(LATENCY_BOUNDS)
        self.ok = 0  # served
        self.rejected = 0  # served, and the store or membership refused it (error inside the response)
        self.error = 0  # not served: an Error frame or {"Err": ...}


class NodeStats:
    """Everything a node counts for /metrics that it cannot read off its state."""

    def __init__(self) -> None:
        self.requests: dict[str, RequestStats] = {}
        self.invalid_frames = 0  # frames that were not a request of a type a node serves
        self.fsync = Histogram(LATENCY_BOUNDS)
        self.proposals = 0  # log entries this node appended as leader (group-committed batches)
        self.proposed_commands = 0  # commands in them
        self.leader_changes = 0  # times this node saw a new leader (not "no leader")
        self.snapshots = 0  # own snapshots taken
        self.snapshot_bytes = 0  # size of the latest one
        self.snapshot_build = Histogram(SNAPSHOT_BOUNDS)  # serialising the store, on its thread
        self.snapshot_save = Histogram(SNAPSHOT_SAVE_BOUNDS)  # writing one, taken or received, to the data dir
        self.snapshots_installed = 0  # snapshots received from a leader and installed

    def request_done(self, tag: str, seconds: float, reply: Any) -> None:
        """Count one answered request of type `tag` that took `seconds`."""
        st = self.requests.get(tag)
        if st is None:
            st = self.requests[tag] = RequestStats()
        h = st.duration  # Histogram.observe, inlined: this runs for every request
        h.counts[bisect_left(h.bounds, seconds)] += 1
        h.sum += seconds
        if reply.__class__ is _PERFORM_RESPONSE:  # the common case, classified inline
            for inner in reply.response.values():
                if inner.__class__ is dict and inner.get("error") is not None:
                    st.rejected += 1
                    return
            st.ok += 1
            return
        outcome = classify(reply)
        if outcome == 0:
            st.ok += 1
        elif outcome == 1:
            st.rejected += 1
        else:
            st.error += 1


def classify(reply: Any) -> int:
    """0 ok, 1 rejected (the command's own error), 2 error (not served)."""
    cls = reply.__class__
    if cls is m.Error:
        return 2
    frame = getattr(reply, "frame", None)  # a reply relayed from the leader as it came
    if frame is not None:
        if "Error" in frame:
            return 2
        body = next(iter(frame.values()), None)
        response = body.get("response") if type(body) is dict else None
    else:
        response = getattr(reply, "response", None)
    if type(response) is dict and len(response) == 1:
        if "Err" in response:
            return 2
        (inner,) = response.values()
        if type(inner) is dict and inner.get("error") is not None:
            return 1
    return 0
