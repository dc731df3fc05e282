"""The cluster's members at a glance, from ``GetClusterMetrics`` (qcore.protocol.ops).

:func:`member_rows` turns the node's answer into one row per member (role, term,
commit, applied, lag, health), as ``qcore-cli status`` prints them and the web
console shows them. :func:`until_formed` is how ``Client.init`` waits for a new
cluster: ``Init`` is answered once the configuration is on the receiving node's
disk, and the other members learn of the cluster only from its first leader, an
election timeout later (they say ``not initialised`` until then).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from qcore.client.errors import QcoreError, RequestTimeout, ServerError
from qcore.client.session import Session
from qcore.protocol import messages as m
from qcore.protocol import ops

__all__ = ["Formation", "cluster_metrics", "member_rows", "until_formed"]

# How often until_formed asks again: another process's state, no event to await.
_POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class Formation:
    """How a newly initialised cluster stood when ``Client.init`` returned.

    ``not_in``: each member that is not in yet, with its health (``not initialised``,
    ``no leader``, ``catching up``, ``unreachable: ...``); empty once every member is in.
    Both are empty (``leader`` None) when the node would not say (a refusal: users on
    and no login; after an Init with ``admin_password``, no admin login by the deadline).
    """

    leader: int | None = None
    not_in: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every member was in (health ``ok``), as far as the node said."""
        return not self.not_in


def _index(x: Any) -> int | None:
    if isinstance(x, dict):
        x = x.get("index")
    return x if isinstance(x, int) else None


def member_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per member from a GetClusterMetrics answer, lag against the highest commit seen."""
    members = view.get("members") or []
    commits = [mt.get("commit_index") for e in members if (mt := e.get("metrics")) and isinstance(mt.get("commit_index"), int)]
    top = max(commits, default=0)
    rows = []
    for e in members:
        mt = e.get("metrics")
        row: dict[str, Any] = {"id": e.get("id"), "addr": e.get("addr"), "kind": e.get("kind")}
        if not mt:
            row.update(role="-", term=None, commit=None, applied=None, lag=None, health=e.get("error") or "unreachable")
        else:
            applied = _index(mt.get("last_applied")) or 0
            role = mt.get("state")
            health = "ok"
            if not mt.get("initialised", True):
                health = "not initialised"
            elif mt.get("current_leader") is None:
                health = "no leader"
            elif applied < (mt.get("commit_index") or 0):
                health = "catching up"
            row.update(role=role, term=mt.get("current_term"), commit=mt.get("commit_index"), applied=applied,
                       lag=max(0, top - applied), health=health)
        rows.append(row)
    return rows


async def cluster_metrics(c: Session) -> dict[str, Any]:
    """The node's GetClusterMetrics answer (every member's metrics, or why not); ServerError if refused."""
    request: Any = ops.GetClusterMetrics(c.next_id())  # an ops message: not in m.Message's union
    reply = await c.request(request)
    ok, view = m.result_of(reply.response)  # type: ignore[union-attr]
    if not ok:
        raise ServerError(str(view))
    return view


async def until_formed(c: Session, deadline: float) -> Formation:
    """Ask the node for every member until each is in (health ``ok``) or the loop's clock
    passes ``deadline``; how it stood then. A refusal (users on and this connection not
    logged in, a node without the ops messages) ends the wait: ``Formation()``, nothing known."""
    loop = asyncio.get_running_loop()
    last = Formation()
    while True:
        try:
            view = await cluster_metrics(c)
        except RequestTimeout:  # the deadline came during this one: as it stood at the last answer
            return last
        except QcoreError:
            return Formation()
        rows = member_rows(view)
        leader = view.get("leader")
        last = Formation(leader if isinstance(leader, int) else None,
                         {int(r["id"]): str(r["health"]) for r in rows if r["health"] != "ok"})
        if (rows and last.complete) or loop.time() >= deadline:
            return last
        await asyncio.sleep(_POLL_S)
