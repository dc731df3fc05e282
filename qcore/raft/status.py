"""A read-only view of a node, for metrics (SPEC 2.1 GetMetrics) and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from .core import Role
from .types import ConfState

__all__ = ["Status", "ProgressStatus"]


@dataclass(slots=True)
class ProgressStatus:
    """The leader's view of one member's log."""

    match: int
    next: int
    state: str  # "probe" | "replicate" | "snapshot"
    is_learner: bool
    recent_active: bool
    inflight: int


@dataclass(slots=True)
class Status:
    id: int
    role: Role  # Role.LEARNER for a learner
    term: int
    vote: int
    leader_id: int
    last_log_index: int
    last_log_term: int
    commit: int
    applied: int
    snapshot_index: int
    snapshot_term: int
    first_index: int
    conf_state: ConfState
    # Log id of the entry that set conf_state (0, 0 before the first).
    conf_index: int = 0
    conf_term: int = 0
    # Leader only: every member's progress (including the leader's own).
    progress: dict[int, ProgressStatus] = field(default_factory=dict)
    # Leader only: ticks since a quorum of voters last answered.
    ticks_since_quorum_ack: int | None = None
    lead_transferee: int = 0
    # The highest index a leader said is committed (0: none heard since start); may pass
    # commit, which stops at our own last index while our log is behind (core.leader_commit).
    leader_commit: int = 0

    @property
    def purged(self) -> int:
        """Last index removed from the log by compaction (0 if none)."""
        return self.first_index - 1
