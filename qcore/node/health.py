"""What /health and /ready answer (SPEC 9), read off the node's state.

`/health` says the process serves. `/ready` says this node can serve a
linearizable request now: it is initialised and still a member, knows a
leader, and has applied everything it knows to be committed. A load
balancer or an orchestrator's readiness probe takes it out of rotation
while any of that is false; the JSON `reason` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qcore import build

if TYPE_CHECKING:
    from qcore.node.server import Node
    from qcore.raft.status import Status


def health(node: "Node") -> dict[str, Any]:
    return {"status": "ok", "id": node.opts.id, "addr": node.opts.ws_addr, "version": build.version()}


@dataclass(frozen=True, slots=True)
class ReadinessFacts:
    """What /ready decides from, read off the node at one moment."""

    stopping: bool
    initialised: bool
    removed: bool
    leader_id: int  # 0: none known
    term: int
    role: str
    refusals: tuple[str, ...]  # peers of another cluster refused lately (cluster_identity)
    applied: int
    commit: int  # the most it knows to be committed: its own commit or, past it, what its leader said
    removed_why: str | None = None  # a peer's word, for a node removed while it was down (removal.py)
    formed: bool = True  # its log holds an entry of some leader (of term >= 2): the cluster has had one
    voters: tuple[int, ...] = ()


def readiness(node: "Node") -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body): `reason` is set exactly when not ready."""
    driver = node.driver
    st = driver.status()
    body: dict[str, Any] = {
        "id": node.opts.id,
        "role": st.role,
        "term": st.term,
        "leader": st.leader_id or None,
        "commit": st.commit,
        "applied": driver.applied,
    }
    facts = ReadinessFacts(
        stopping=node.stopping, initialised=driver.initialised(), removed=driver.removed(),
        leader_id=st.leader_id, term=st.term, role=str(st.role),
        refusals=() if st.leader_id else tuple(node.cluster_identity.refusals()),
        applied=driver.applied, commit=known_committed(st), removed_why=driver.removal.reason(driver.applied),
        # The entries a cluster starts from (Init, --initial-cluster, a restore's snapshot) are of
        # term 1; every leader appends one of its own term (>= 2) when elected.
        formed=st.last_log_term >= 2, voters=tuple(st.conf_state.voters),
    )
    reason = not_ready_because(facts)
    if reason is None:
        return True, {"status": "ready", **body}
    return False, {"status": "not ready", "reason": reason, **body}


def known_committed(st: Status) -> int:
    """How far this node knows the log is committed: a restarted follower's own commit stops
    at its last index until the entries (or the snapshot) it lacks arrive; its leader's word does not."""
    return max(st.commit, st.leader_commit)


def not_ready_because(f: ReadinessFacts) -> str | None:
    """Why a node with these facts is not ready, the first reason that holds; None if it is."""
    if f.stopping:
        return "shutting down"
    if not f.initialised:
        return "not initialised: send Init, start with --initial-cluster or --join, or add it to a cluster"
    if f.removed:
        return "removed from the cluster" + (f" ({f.removed_why})" if f.removed_why else "")
    if not f.leader_id:
        if f.refusals:
            return "no leader known; " + "; ".join(f.refusals)
        if not f.formed:
            return (f"no leader known (term {f.term}, role {f.role}): the cluster has not formed yet (no leader "
                    f"elected that this node knows of); it needs {len(f.voters) // 2 + 1} of its voters "
                    f"{', '.join(map(str, f.voters))} up and reaching each other")
        return f"no leader known (term {f.term}, role {f.role}): the cluster may have lost its quorum"
    if f.applied < f.commit:
        return f"catching up: applied {f.applied} of {f.commit} known to be committed"
    return None
