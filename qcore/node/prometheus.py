"""GET /metrics: the node's state and counters as Prometheus metric families.

A custom `prometheus_client` collector reads the Raft core's status, the
store and the plain counters of `qcore.node.stats` when scraped, so the
request path never touches a prometheus_client object (their updates take
a lock each). The exposition itself is prometheus_client's
(`generate_latest`). Every metric of ours is named `qcore_*`; the library's
standard `process_*` metrics (CPU, memory, file descriptors) come along.
docs/operations.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from qcore import build
from qcore.node.health import readiness
from qcore.node.stats import Histogram, NodeStats

if TYPE_CHECKING:
    from qcore.node.server import Node

__all__ = ["Exposition", "CONTENT_TYPE_LATEST"]


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=h.cumulative(), sum_value=h.sum)


class NodeCollector(Collector):
    """Reads one node at scrape time (on the event loop, like everything else)."""

    def __init__(self, node: "Node", stats: NodeStats) -> None:
        self._node = node
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        node, stats = self._node, self._stats
        driver = node.driver
        st = driver.status()
        info = GaugeMetricFamily("qcore_node_info", "This node: its id and address (always 1).", labels=["id", "addr"])
        info.add_metric([str(node.opts.id), node.opts.ws_addr], 1)
        yield info
        built = GaugeMetricFamily("qcore_build_info", "This node's qcore version and the highest log entry "
                                  "semantics level it applies (always 1).", labels=["version", "entry_level"])
        built.add_metric([build.version(), str(build.entry_level())], 1)
        yield built
        yield _gauge("qcore_node_ready", "1 when GET /ready answers 200.", 1 if readiness(node)[0] else 0)
        yield _gauge("qcore_raft_term", "Current Raft term.", st.term)
        yield _gauge("qcore_raft_commit_index", "Highest log index known to be committed.", st.commit)
        yield _gauge("qcore_raft_applied_index", "Highest log index applied to the store.", driver.applied)
        yield _gauge("qcore_raft_last_log_index", "Index of the last entry in the log.", st.last_log_index)
        yield _gauge("qcore_raft_snapshot_index", "Index of the latest snapshot.", driver.snapshot_index)
        yield _gauge("qcore_raft_is_leader", "1 if this node is the leader.", 1 if st.role == "Leader" else 0)
        yield _gauge("qcore_raft_has_leader", "1 if this node knows a leader.", 1 if st.leader_id else 0)
        yield _counter("qcore_raft_leader_changes", "Times this node saw a new leader.", stats.leader_changes)
        yield _counter("qcore_raft_proposals", "Log entries this node proposed as leader.", stats.proposals)
        yield _counter(
            "qcore_raft_proposed_commands", "Commands in the entries this node proposed as leader.",
            stats.proposed_commands,
        )
        yield _gauge("qcore_entry_level", "The semantics level of the log entries this node proposes: the lowest "
                     "its members declared (qcore.node.entries); 0 until it first knows a leader.",
                     driver.entry_level())
        cs = st.conf_state
        members = GaugeMetricFamily("qcore_raft_members", "Cluster members by kind.", labels=["kind"])
        members.add_metric(["voter"], len(set(cs.voters) | set(cs.voters_outgoing)))
        members.add_metric(["learner"], len(cs.learners))
        yield members
        if st.role == "Leader" and st.progress:
            lag = GaugeMetricFamily(
                "qcore_raft_follower_lag_entries", "Leader only: entries a member lacks (last index - match).",
                labels=["member"],
            )
            for pid, pr in sorted(st.progress.items()):
                if pid != node.opts.id:
                    lag.add_metric([str(pid)], max(0, st.last_log_index - pr.match))
            yield lag
        yield _histogram("qcore_wal_fsync_duration_seconds", "Time to write and fsync the log.", stats.fsync)
        durations = HistogramMetricFamily(
            "qcore_request_duration_seconds", "Time from a request's arrival to its reply, by message type.",
            labels=["type"],
        )
        requests = CounterMetricFamily(
            "qcore_requests", "Requests answered, by message type and outcome (ok; rejected: the command's "
            "own error; error: not served).", labels=["type", "outcome"],
        )
        for tag, rs in sorted(stats.requests.items()):
            durations.add_metric([tag], rs.duration.cumulative(), rs.duration.sum)
            requests.add_metric([tag, "ok"], rs.ok)
            requests.add_metric([tag, "rejected"], rs.rejected)
            requests.add_metric([tag, "error"], rs.error)
        yield durations
        yield requests
        yield _counter("qcore_invalid_frames", "Frames that were not a request of a type a node serves (answered with Error).",
                       stats.invalid_frames)
        yield _gauge("qcore_connections", "Open WebSocket connections (clients and peers).", node.connection_count())
        bp = node.backpressure
        yield _counter("qcore_connections_paused", "Times a connection stopped being read: its replies were not "
                       "read, its requests in flight were too large, or all output was over --max-output.", bp.pauses)
        yield _counter("qcore_connections_closed_stuck", "Connections closed because their replies did not drain "
                       "within --stuck-timeout (or they sent too much while paused).", bp.closed)
        yield _counter("qcore_turn_waits", "Times a connection's requests waited for the next loop iteration "
                       "because this one had spent its serving budget.", bp.turn_waits)
        hub = node.notifications.stats()
        yield _counter("qcore_notifications_sent", "Notifications pushed to clients.", hub["delivered"])
        yield _counter("qcore_notifications_caught_up", "Times a connection's notification queue was full and "
                       "its registrations caught up from the retained window.", hub["caught_up"])
        yield _counter("qcore_notifications_cut_off", "Notification connections closed because they fell behind "
                       "the retained window.", hub["cut_off"])
        yield _gauge("qcore_notification_registrations", "Notification registrations.", hub["registrations"])
        yield _gauge("qcore_store_entities", "Entities in the store.", node.state_machine.store.entity_count())
        yield _counter("qcore_snapshots", "Snapshots this node took of its store.", stats.snapshots)
        yield _counter("qcore_snapshots_installed", "Snapshots received from a leader and installed.",
                       stats.snapshots_installed)
        yield _gauge("qcore_snapshot_size_bytes", "Size of the latest snapshot this node took.", stats.snapshot_bytes)
        yield _histogram("qcore_snapshot_duration_seconds", "Time to serialise the store for a snapshot.",
                         stats.snapshot_build)
        yield _histogram("qcore_snapshot_save_duration_seconds", "Time to write a snapshot (taken here or "
                         "received from a leader) to the data dir, fsyncs included.", stats.snapshot_save)
        disk = driver.disk_bytes()
        if disk is not None:  # not with --in-memory
            yield _gauge("qcore_storage_log_bytes", "Size of the log's segment files in the data dir.", disk[0])
            yield _gauge("qcore_storage_snapshot_bytes", "Size of the snapshot file in the data dir.", disk[1])


class Exposition:
    """The registry /metrics renders: this node's collector plus process metrics."""

    def __init__(self, node: "Node", stats: NodeStats) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node, stats))
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
