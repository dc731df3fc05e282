"""What /health and /ready answer (SPEC 9), read off the node's state.

`/health` says the process serves. `/ready` says this node can serve a
linearizable request now: it is initialised and still a member, knows a
leader, and has applied everything it knows to be committed. A load
balancer or an orchestrator's readiness probe takes it out of rotation
while any of that is false; the JSON `reason` says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qcore.node.server import Node


def health(node: "Node") -> dict[str, Any]:
    return {"status": "ok", "id": node.opts.id, "addr": node.opts.ws_addr}


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
    reason = _not_ready_because(node, st)
    if reason is None:
        return True, {"status": "ready", **body}
    return False, {"status": "not ready", "reason": reason, **body}


def _not_ready_because(node: "Node", st: Any) -> str | None:
    driver = node.driver
    if node.stopping:
        return "shutting down"
    if not driver.initialised():
        return "not initialised: send Init, start with --initial-cluster or --join, or add it to a cluster"
    if driver.removed():
        return "removed from the cluster"
    if not st.leader_id:
        refused = node.cluster_identity.refusals()
        if refused:
            return "no leader known; " + "; ".join(refused)
        return f"no leader known (term {st.term}, role {st.role}): the cluster may have lost its quorum"
    if driver.applied < st.commit:
        return f"catching up: applied {driver.applied} of {st.commit} known to be committed"
    return None
