"""Telling a node that it was removed from the cluster while it was down
(etcd answers such a member's peer connections with 410 "member removed").

A node removed while it was down never receives the change that removed it:
after a restart it still counts itself a member, campaigns in vain, and
would tell clients "no leader". Its peer connections therefore declare how
far it has applied and whether it is a member there (`&applied=N&member=1`).
A peer that has applied further, in a configuration without it, refuses the
connection with HTTP 410 and its own applied index (`X-Qcore-Applied`).

Configurations change in log order, so a configuration at a later index
that lacks the node means it was removed after the index it declared. The
refused node then says "removed" (/ready, and every request) while it has
applied less than that index and peers keep saying so (a notice lapses after
a minute without a new refusal). A node that was added back later still
applies that change once the leader reaches it, and the notice no longer
holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from qcore.raft.types import ConfState

STATUS = 410
APPLIED_HEADER = "X-Qcore-Applied"
_REMEMBER = 60.0  # seconds a peer's refusal counts


def declaration(applied: int, conf: ConfState, me: int) -> str:
    """What a node's peer connections add to their path (`&applied=...&member=...`)."""
    return f"&applied={applied}&member={int(me in conf.members())}"


def declared(path: str) -> tuple[int, bool] | None:
    """``(applied, member)`` a peer's connection declares, if it does."""
    query = parse_qs(urlsplit(path).query)
    try:
        return int(query["applied"][0]), query["member"][0] == "1"
    except (KeyError, IndexError, ValueError):
        return None


def refusal(me: int, peer: int, theirs: tuple[int, bool] | None, applied: int, conf: ConfState) -> str | None:
    """Why ``peer``'s connection is refused as a removed node's, or None.

    Only a peer that counts itself a member at an index below ours, while our
    configuration (in effect at our applied index) lacks it: then it was
    removed in between. A joining node (no configuration yet, or one that
    includes it at a later index than ours) is never refused here."""
    if theirs is None or not (conf.voters or conf.voters_outgoing):
        return None
    their_applied, member = theirs
    if not member or their_applied >= applied or peer in conf.members():
        return None
    return (f"node {peer} was removed from the cluster: node {me}'s configuration at applied index "
            f"{applied} does not include it (node {peer} has applied only up to {their_applied})")


class RemovalNotice:
    """The refusals this node got from peers for having been removed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heard: dict[int, tuple[float, int, str]] = {}  # peer -> (when, its applied index, why)

    def heard(self, peer: int, index: int, why: str) -> None:
        """(Logged by the transport with every other refusal: ClusterIdentity.note_refused_by.)"""
        self._heard[peer] = (self._clock(), index, why)

    def reason(self, applied: int) -> str | None:
        """Why this node counts as removed, having applied up to ``applied``; None if it does not."""
        if not self._heard:
            return None
        now = self._clock()
        for when, index, why in self._heard.values():
            if now - when < _REMEMBER and index > applied:
                return why
        return None
