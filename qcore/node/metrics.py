"""GetMetrics: the node's view, with openraft's `RaftMetrics` field names.

A log id is `{"leader_id": {"term": T, "node_id": N}, "index": I}`. The Raft
core does not remember which node led a past term, so `node_id` in a log id
is the current leader for the current term and 0 when unknown; `term` and
`index` are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from qcore.raft import Role
from qcore.raft.types import ConfState

if TYPE_CHECKING:
    from qcore.node.cluster_identity import ClusterIdentity
    from qcore.node.driver import RaftDriver
    from qcore.node.notify import NotificationHub
    from qcore.node.options import NodeOptions


class MetricsSource(Protocol):
    """What GetMetrics reads (a `qcore.node.server.Node` is one)."""

    opts: "NodeOptions"
    driver: "RaftDriver"
    stopping: bool
    notifications: "NotificationHub"
    cluster_identity: "ClusterIdentity"


def log_id(term: int, index: int, node_id: int = 0) -> dict[str, Any] | None:
    if index == 0:
        return None
    return {"leader_id": {"term": term, "node_id": node_id}, "index": index}


def membership_json(cs: ConfState) -> dict[str, Any]:
    configs = [sorted(cs.voters)]
    if cs.voters_outgoing:
        configs.append(sorted(cs.voters_outgoing))
    return {
        "configs": configs,
        "nodes": {str(k): v for k, v in sorted(cs.addresses.items())},
        "learners": sorted(cs.learners),
    }


def _term_at(node: MetricsSource, index: int) -> int:
    try:
        term = node.driver.raw.term_at(index)
    except Exception:
        return 0
    return term or 0


def build_metrics(node: MetricsSource) -> dict[str, Any]:
    driver = node.driver
    st = driver.status()
    leader = st.leader_id
    term_leader = lambda t: leader if t == st.term else 0  # noqa: E731
    applied = driver.applied
    applied_term = _term_at(node, applied)
    snap_index = driver.snapshot_index
    snap_term = _term_at(node, snap_index) if snap_index else 0
    purged_index = max(0, st.first_index - 1)
    purged_term = _term_at(node, purged_index) if purged_index else 0
    role = Role.CANDIDATE if st.role == Role.PRE_CANDIDATE else st.role
    cs = st.conf_state
    if role == Role.FOLLOWER and node.opts.id in cs.learners:
        role = Role.LEARNER
    replication = None
    if st.role == Role.LEADER and st.progress:
        replication = {
            str(pid): log_id(_term_at(node, pr.match), pr.match, term_leader(_term_at(node, pr.match)))
            for pid, pr in sorted(st.progress.items())
            if pid != node.opts.id
        }
    ticks = st.ticks_since_quorum_ack
    identity = node.cluster_identity.current
    return {
        "running_state": {"Ok": None},
        "id": node.opts.id,
        "state": "Shutdown" if node.stopping else str(role),
        "current_term": st.term,
        "vote": {"leader_id": {"term": st.term, "node_id": st.vote}, "committed": st.role == Role.LEADER},
        "last_log_index": st.last_log_index,
        "last_applied": log_id(applied_term, applied, term_leader(applied_term)),
        "snapshot": log_id(snap_term, snap_index, term_leader(snap_term)),
        "purged": log_id(purged_term, purged_index, term_leader(purged_term)),
        "current_leader": leader or None,
        "millis_since_quorum_ack": (ticks * node.opts.tick_ms) if (st.role == Role.LEADER and ticks is not None) else None,
        "membership_config": {
            "log_id": log_id(st.conf_term, st.conf_index, term_leader(st.conf_term)),
            "membership": membership_json(cs),
        },
        "replication": replication,
        "commit_index": st.commit,
        "initialised": driver.initialised(),
        "notifications": node.notifications.stats(),
        "addr": node.opts.ws_addr,
        "cluster_id": identity.cluster_id if identity is not None else None,
    }
