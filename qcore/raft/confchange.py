"""Membership changes: validate on a copy, then hand back the new ConfState.

The live configuration is never edited in place: every function here takes
the current `ConfState`, builds the new one in plain sets, checks it, and
returns a fresh value (or raises `ConfChangeError` leaving nothing changed).

Three kinds of transition (Raft thesis 4.3; etcd-raft's confchange/):

* simple  - at most one voter added or removed; the old and new majorities
            always overlap, so the change can be made in one step.
* enter joint - C_old becomes the outgoing half, C_new the incoming one;
            decisions need both majorities until the joint config is left.
            Voters that are being demoted to learners wait in
            `learners_next` (they still vote in the outgoing half).
* leave joint - drop the outgoing half; `learners_next` become learners.

The very first configuration of a cluster (the bootstrap entry) is built
from nothing in one step, whatever the number of voters.

Addresses travel with the configuration: a change merges the addresses it
brings, and an address is dropped when its node leaves every role.
"""

from __future__ import annotations

from .types import ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfState

__all__ = ["ConfChangeError", "apply_conf_change", "enters_joint", "is_leave_joint"]


class ConfChangeError(ValueError):
    """The change is not valid against the configuration it is applied to."""


def enters_joint(cc: ConfChange) -> bool:
    """Whether `cc` needs joint consensus (etcd's ConfChangeV2.EnterJoint)."""
    return bool(cc.changes) and (cc.transition != ConfChangeTransition.AUTO or len(cc.changes) > 1)


def is_leave_joint(cc: ConfChange) -> bool:
    return not cc.changes


class _Working:
    """A mutable copy of a ConfState, in sets."""

    def __init__(self, cs: ConfState) -> None:
        self.voters = set(cs.voters)
        self.outgoing = set(cs.voters_outgoing)
        self.learners = set(cs.learners)
        self.learners_next = set(cs.learners_next)
        self.auto_leave = cs.auto_leave
        self.addresses = dict(cs.addresses)

    def freeze(self) -> ConfState:
        members = self.voters | self.outgoing | self.learners | self.learners_next
        return ConfState(
            voters=tuple(sorted(self.voters)),
            voters_outgoing=tuple(sorted(self.outgoing)),
            learners=tuple(sorted(self.learners)),
            learners_next=tuple(sorted(self.learners_next)),
            auto_leave=self.auto_leave,
            addresses={k: v for k, v in sorted(self.addresses.items()) if k in members},
        )

    def check(self) -> None:
        """The invariants every configuration must satisfy."""
        if self.learners & (self.voters | self.outgoing):
            raise ConfChangeError(f"nodes {sorted(self.learners & (self.voters | self.outgoing))} are both voter and learner")
        if not self.learners_next <= self.outgoing:
            raise ConfChangeError("learners_next must be outgoing voters")
        if self.learners_next & self.voters:
            raise ConfChangeError("learners_next must not be incoming voters")
        if not self.outgoing and (self.learners_next or self.auto_leave):
            raise ConfChangeError("learners_next/auto_leave set outside a joint configuration")

    def apply(self, changes: tuple[ConfChangeSingle, ...]) -> None:
        for c in changes:
            if c.node_id <= 0:
                raise ConfChangeError(f"invalid node id {c.node_id}")
            if c.type == ConfChangeType.ADD_NODE:
                self.voters.add(c.node_id)
                self.learners.discard(c.node_id)
                self.learners_next.discard(c.node_id)
            elif c.type == ConfChangeType.ADD_LEARNER:
                if c.node_id in self.learners:
                    continue
                self.voters.discard(c.node_id)
                # A voter of the outgoing half keeps voting there until the
                # joint configuration is left, then becomes a learner.
                if c.node_id in self.outgoing:
                    self.learners_next.add(c.node_id)
                else:
                    self.learners.add(c.node_id)
            elif c.type == ConfChangeType.REMOVE_NODE:
                members = self.voters | self.outgoing | self.learners
                if c.node_id not in members:
                    raise ConfChangeError(f"node {c.node_id} is not a member")
                self.voters.discard(c.node_id)
                self.learners.discard(c.node_id)
                self.learners_next.discard(c.node_id)
            else:  # pragma: no cover - enum is closed
                raise ConfChangeError(f"unknown change type {c.type}")
        if not self.voters:
            raise ConfChangeError("removed all voters")


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after `cc`, or ConfChangeError if `cc` is invalid."""
    w = _Working(cs)
    if not (w.voters or w.outgoing or w.learners):
        # The very first configuration (bootstrap): nothing to overlap with.
        w.addresses.update(cc.addresses)
        w.apply(cc.changes)
    elif is_leave_joint(cc):
        if not w.outgoing:
            raise ConfChangeError("cannot leave a joint configuration: not in one")
        w.learners |= w.learners_next
        w.learners_next.clear()
        w.outgoing.clear()
        w.auto_leave = False
    elif enters_joint(cc):
        if w.outgoing:
            raise ConfChangeError("configuration is already joint")
        if not w.voters:
            raise ConfChangeError("cannot make a zero-voter configuration joint")
        w.outgoing = set(w.voters)
        w.addresses.update(cc.addresses)
        w.apply(cc.changes)
        w.auto_leave = cc.transition in (ConfChangeTransition.AUTO, ConfChangeTransition.JOINT_IMPLICIT)
    else:
        if w.outgoing:
            raise ConfChangeError("cannot make a simple change in a joint configuration")
        before = set(w.voters)
        w.addresses.update(cc.addresses)
        w.apply(cc.changes)
        if len(before ^ w.voters) > 1:
            raise ConfChangeError("more than one voter changed without entering a joint configuration")
    w.check()
    return w.freeze()
