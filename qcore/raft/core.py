"""The Raft state machine: one `step()` for every event, per-role handlers.

This is etcd-raft's `raft.go` in Python. Everything that happens to a node is
a `Message`: peer messages, and local events (HUP when the election timer
fires, BEAT when the heartbeat timer fires, CHECK_QUORUM, UNREACHABLE,
SNAP_STATUS, LINK_DOWN, a local READ_INDEX or TRANSFER_LEADER). `step()` does, in order:

1. term handling, the same for every role (paper 5.1): a message from a
   higher term makes us a follower of that term (with leader stickiness and
   pre-vote exceptions); a message from a lower term is dropped, or answered
   so that a stale leader or pre-candidate learns the current term;
2. what every role shares: HUP (start an election) and vote requests;
3. the handler of the current role (`_step_leader`, `_step_candidate` for
   candidates and pre-candidates, `_step_follower`), swapped by `_become_*`.

Outputs accumulate in `self.msgs` and `self.read_states`; the log records
what is unstable (to persist) and committed (to apply). `RawNode` turns them
into a `Ready`. Proposals are methods rather than messages because they
return the (term, index) they were given or raise.

Decisions that differ from, or choose among, etcd-raft's options:

* Configuration takes effect when its entry is *applied* (handed out in
  `Ready.committed_entries` and advanced past), as in etcd. Only one change
  may be pending (proposed and not yet applied) at a time.
* The leader counts itself towards a commit quorum only for entries it has
  persisted (advanced past in a Ready), so an entry is on a majority of
  disks before it is committed.
* Snapshots are sent whole in one SNAP message; chunking is the transport's
  job.
* ReadIndex uses the safe (heartbeat quorum) mode only, batched (see
  read_only.py).
* A follower told that its connection to the leader went down (LINK_DOWN)
  campaigns after `link_down_tick` ticks or so instead of an election
  timeout (`_tick_election`); it stops defending the leader's lease then.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
from collections.abc import Callable

from . import quorum
from .confchange import ConfChangeError, apply_conf_change
from .config import Config
from .errors import ConfChangeRejected, ProposalDropped
from .log import RaftLog
from .quorum import VoteResult
from .read_only import ReadOnly, ReadRound
from .tracker import Progress, ProgressState, ProgressTracker
from .types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMeta,
)

__all__ = ["Raft", "Role", "CAMPAIGN_TRANSFER"]

logger = logging.getLogger(__name__)

MT = MessageType

# Context of vote requests sent because of a leadership transfer: they must
# get through leader stickiness (the voters did hear from a leader recently:
# the one that asked for the transfer).
CAMPAIGN_TRANSFER = b"CampaignTransfer"

LOCAL_MESSAGES = frozenset(
    {MT.HUP, MT.BEAT, MT.PROP, MT.CHECK_QUORUM, MT.UNREACHABLE, MT.SNAP_STATUS, MT.LINK_DOWN}
)
_VOTE_TYPES = frozenset({MT.VOTE, MT.PRE_VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP})


class Role(enum.StrEnum):
    """A node's role. Its value is the name status and metrics report."""

    FOLLOWER = "Follower"
    PRE_CANDIDATE = "PreCandidate"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    # Reported only (Status, SoftState): the core runs a learner as a FOLLOWER.
    LEARNER = "Learner"


class Raft:
    def __init__(
        self,
        cfg: Config,
        rng: random.Random,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        cfg.validate()
        hs = hard_state or HardState()
        if snapshot is not None and snapshot.is_empty():
            snapshot = None
        self.id = cfg.id
        self.cfg = cfg
        self.rng = rng
        self.log = RaftLog(snapshot, entries)
        self.trk = ProgressTracker(cfg.max_inflight_msgs)
        # The latest snapshot (taken here or received): what a leader sends
        # to a follower that needs compacted entries.
        self.snapshot: Snapshot | None = snapshot
        # (index, term, configuration in effect after applying `index`), oldest
        # first, since the last compaction: the configuration of a snapshot
        # taken at an index below `applied`, and the log id of the entry that
        # set it (GetMetrics, snapshot metadata).
        self.conf_history: list[tuple[int, int, ConfState]] = []
        if snapshot is not None:
            self.trk.set_conf(snapshot.meta.conf_state, self.log.last_index() + 1)
            self._conf_from_snapshot(snapshot.meta)
        if hs.commit > self.log.last_index():
            logger.warning("node %d: stored commit %d beyond last index %d; clamping", self.id, hs.commit, self.log.last_index())
        self.log.committed = min(max(hs.commit, self.log.snap_index), self.log.last_index())

        self.term = hs.term
        self.vote = hs.vote
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.ticks = 0  # logical clock since this object was made
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = cfg.election_tick
        # The link to the leader went down (LINK_DOWN): campaign once this
        # many ticks pass without a word from it (0: not armed).
        self.link_down_timeout = 0
        self.link_down_elapsed = 0
        # This campaign began because the leader's link went down: a split
        # vote is retried after a short timeout, not an election timeout.
        self.campaign_fast = False
        self.lead_transferee = NONE
        # Index of the last conf change proposed by this leader; no new
        # change is accepted until it is applied.
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        # ReadIndex requests held until this leader commits an entry of its
        # own term (only then is its commit index known to be current).
        self.pending_read_index: list[Message] = []
        # A TIMEOUT_NOW arrived while a committed conf change was unapplied.
        self.campaign_after_apply = False
        # Proposals appended but not yet sent to the followers (see flush()).
        self.append_pending = False
        # The highest index a leader told us is committed (an APP's commit, a
        # HEARTBEAT's index, a SNAP's index), even past our own log, where our
        # commit stops: reported in Status only (readiness), never decides anything.
        self.leader_commit = 0
        self._step: Callable[[Message], None] = self._step_follower
        self.become_follower(self.term, NONE)

    # ------------------------------------------------------------------
    # Queries
    # ------------------------------------------------------------------

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def is_learner(self) -> bool:
        return self.id in self.trk.conf.learners

    def promotable(self) -> bool:
        """Can this node campaign? Only voters, and not while a received
        snapshot is still to be persisted."""
        return self.id in self.trk.voter_ids() and self.log.pending_snapshot is None

    def committed_entry_in_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def ticks_since_quorum_ack(self) -> int | None:
        """On the leader: ticks since a quorum of voters last answered."""
        if self.role != Role.LEADER:
            return None
        me = self.trk.progress.get(self.id)
        if me is not None:
            me.last_ack_tick = self.ticks
        t = self.trk.quorum_ack_tick()
        if t >= quorum.INFINITE:
            return 0
        return max(0, self.ticks - t)

    def conf_at(self, index: int) -> ConfState:
        return self.conf_entry_at(index)[2]

    def conf_entry_at(self, index: int) -> tuple[int, int, ConfState]:
        """(index, term of the entry that set it, configuration) in effect at `index`;
        (0, 0, empty) before the first."""
        entry: tuple[int, int, ConfState] = (0, 0, ConfState())
        for e in self.conf_history:
            if e[0] > index:
                break
            entry = e
        return entry

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        if m.frm == NONE:
            m.frm = self.id
        if m.type in _VOTE_TYPES:
            # Vote traffic carries the term it is about (a pre-vote asks
            # about our future term), set explicitly by the caller.
            assert m.term != 0, "vote messages must carry a term"
        elif m.type != MT.READ_INDEX:
            # A forwarded READ_INDEX keeps term 0: the leader treats it like
            # a local request (as etcd does).
            m.term = self.term
        assert m.to != self.id, f"node {self.id} sending {m.type.name} to itself"
        self.msgs.append(m)

    def _send_append(self, to: int) -> None:
        self._maybe_send_append(to, send_if_empty=True)

    def _maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send `to` the entries it is missing, or a snapshot; False if
        nothing was sent (paused, or nothing to send)."""
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        if not send_if_empty and pr.next > self.log.last_index():
            return False  # up to date, the usual case: skip the lookups below
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        ents = self.log.entries_from(pr.next, self.cfg.max_size_per_msg)
        if prev_term is None or ents is None:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            Message(MT.APP, to=to, index=prev, log_term=prev_term, entries=ents, commit=self.log.committed)
        )
        pr.sent_entries(ents[-1].index if ents else None)
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            # Do not ship a snapshot to a peer that is probably down.
            return False
        snap = self.snapshot
        if snap is None:
            logger.warning("node %d: peer %d needs compacted entries but there is no snapshot", self.id, to)
            return False
        pr.become_snapshot(snap.meta.index)
        logger.debug("node %d: sending snapshot %d to %d", self.id, snap.meta.index, to)
        self._send(Message(MT.SNAP, to=to, snapshot=snap))
        return True

    def _bcast_append(self) -> None:
        for nid in list(self.trk.peers(self.id)):
            self._send_append(nid)

    def _bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for nid in list(self.trk.peers(self.id)):
            pr = self.trk.progress[nid]
            # Never tell a follower to commit past what it is known to have.
            commit = min(pr.match, self.log.committed)
            # `index` tells it how far the log is committed, for its status only.
            self._send(Message(MT.HEARTBEAT, to=nid, index=self.log.committed, commit=commit, context=ctx))

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(MT.TIMEOUT_NOW, to=to))

    # ------------------------------------------------------------------
    # Role changes
    # ------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(self.cfg.election_tick)
        self.link_down_timeout = 0
        self.lead_transferee = NONE
        self.trk.reset_votes()
        self.trk.reset_progress(self.log.last_index() + 1, self.id, self.log.stable, self.ticks)
        self.pending_conf_index = 0
        self.campaign_after_apply = False
        # Reads not yet answered are dropped: their callers time out and retry.
        self.read_only = ReadOnly(first_round=self.read_only.next_round_seq)
        self.pending_read_index = []

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.campaign_fast = False
        self.lead = lead
        self.role = Role.FOLLOWER
        self._step = self._step_follower
        logger.debug("node %d: follower at term %d (leader %d)", self.id, term, lead)

    def _become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        if self.campaign_fast:
            self.randomized_election_timeout = self._link_down_timeout()
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step = self._step_candidate
        logger.debug("node %d: candidate at term %d", self.id, self.term)

    def _become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become pre-candidate"
        # No term change, no vote change: a pre-vote disturbs nobody.
        self.trk.reset_votes()
        self.link_down_timeout = 0
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE
        self._step = self._step_candidate
        logger.debug("node %d: pre-candidate at term %d", self.id, self.term)

    def _become_leader(self) -> None:
        assert self.role != Role.FOLLOWER, "follower cannot become leader directly"
        self._reset(self.term)
        self.campaign_fast = False
        self.lead = self.id
        self.role = Role.LEADER
        self._step = self._step_leader
        self.trk.progress[self.id].become_replicate()
        # Conservatively treat every entry already in the log as a possible
        # pending conf change: no new change until all of them are applied.
        self.pending_conf_index = self.log.last_index()
        # Commit an entry of our own term (paper 5.4.2 / 8: this also
        # establishes our commit index for ReadIndex).
        self._append_entries([(EntryType.NORMAL, b"")])
        logger.info("node %d: leader at term %d", self.id, self.term)

    # ------------------------------------------------------------------
    # Clock
    # ------------------------------------------------------------------

    def tick(self) -> None:
        self.ticks += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.link_down_timeout:
            self.link_down_elapsed += 1
            if self.link_down_elapsed >= self.link_down_timeout:
                self.link_down_timeout = 0
                if self.promotable():
                    logger.info("node %d: no word from leader %d since its link went down; campaigning", self.id, self.lead)
                    self.campaign_fast = True
                    self.election_elapsed = 0
                    self.step(Message(MT.HUP, frm=self.id))
                    if self.role == Role.FOLLOWER:  # it could not campaign (an unapplied conf change)
                        self.campaign_fast = False
                return
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            if self.campaign_fast and self.role == Role.PRE_CANDIDATE:
                # A fast pre-vote that did not win in time: the others still
                # hear a leader, or cannot be reached. Back to the normal pace.
                self.campaign_fast = False
                self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(self.cfg.election_tick)
            self.step(Message(MT.HUP, frm=self.id))

    def _link_down_timeout(self) -> int:
        """Randomised in [g, 2g] ticks (g = link_down_tick), so that followers
        that lost the leader together seldom campaign at the same moment; when
        they do, the lower id wins the pre-vote (`_handle_vote_request`)."""
        g = self.cfg.link_down_tick
        return g + self.rng.randrange(g + 1)

    def _on_link_down(self, m: Message) -> None:
        """A follower's connection to its leader went down: arm the early campaign."""
        cfg = self.cfg
        if m.frm != self.lead or self.lead == NONE or self.link_down_timeout:
            return
        if not (cfg.link_down_tick and cfg.pre_vote and cfg.check_quorum):
            return
        self.link_down_timeout = self._link_down_timeout()
        self.link_down_elapsed = 0
        logger.debug("node %d: link to leader %d down; campaigning in %d ticks unless it speaks", self.id, self.lead, self.link_down_timeout)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, frm=self.id))
            # A transfer that did not finish within an election timeout is
            # abandoned so that proposals are accepted again.
            if self.role == Role.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, frm=self.id))

    # ------------------------------------------------------------------
    # Step
    # ------------------------------------------------------------------

    def step(self, m: Message) -> None:
        # 1. Term handling (paper 5.1, thesis 9.6 pre-vote, 6.2 stickiness).
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                # A follower that lost its link to the leader (and has not
                # heard from it since) no longer vouches for it.
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_tick
                    and not self.link_down_timeout
                )
                if not force and in_lease:
                    # We heard from a live leader within the minimum election
                    # timeout: do not let this (pre)candidate depose it.
                    logger.debug("node %d: ignoring %s from %d at term %d: leader %d in lease", self.id, m.type.name, m.frm, m.term, self.lead)
                    return
            if m.type == MT.PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                # Granted pre-votes carry the future term; we adopt it only
                # when we win the pre-election and become a candidate.
                pass
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            elif m.type == MT.VOTE and not self.log.is_up_to_date(m.index, m.log_term):
                # Paper Figure 2: only granting a vote restarts the election
                # timer. A candidate with a stale log that we will refuse must
                # not keep us (maybe the only electable node) from campaigning
                # (simulator seeds 30272, 73 --nodes 3, 100766: no pre-vote).
                elapsed = self.election_elapsed
                self.become_follower(m.term, NONE)
                self.election_elapsed = elapsed
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A leader partitioned away may still think it leads. Tell it
                # the current term so that it steps down; otherwise, with
                # pre-vote or check-quorum, it could keep the cluster's other
                # side from electing itself (etcd issue 5451 / 6174).
                self._send(Message(MT.APP_RESP, to=m.frm))
            elif m.type == MT.PRE_VOTE:
                self._send(Message(MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return

        if m.reject and m.commit and m.type in (MT.VOTE_RESP, MT.PRE_VOTE_RESP):
            self._learn_commit(m.commit, m.log_term)

        # 2. What every role shares.
        if m.type == MT.HUP:
            self._hup(transfer=False)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            # 3. The current role's handler.
            self._step(m)

    def _handle_vote_request(self, m: Message) -> None:
        resp_type = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        can_vote = (
            self.vote == m.frm  # repeated request (our answer may have been lost)
            or (self.vote == NONE and self.lead == NONE)  # have not voted, no leader this term
            or (m.type == MT.PRE_VOTE and m.term > self.term)  # pre-vote for a future term
        )
        # Learners answer too: one may have been promoted without knowing yet
        # (its answer counts only if the candidate sees it as a voter).
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # Answer with the term of the request: for a pre-vote that is a
            # future term, which the pre-candidate recognises as granted.
            self._send(Message(resp_type, to=m.frm, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
            elif self.campaign_fast and self.role == Role.PRE_CANDIDATE and m.term == self.term + 1 and m.frm < self.id:
                self._give_way(m.frm)
        else:
            # Tell the candidate how far we know the log is committed. A
            # candidate still counting us (its configuration change is
            # committed but not known so to it) can then apply the change
            # and stop needing our vote; see _learn_commit().
            commit = self.log.committed
            self._send(
                Message(
                    resp_type,
                    to=m.frm,
                    term=self.term,
                    reject=True,
                    commit=commit,
                    log_term=self.log.term(commit) or 0,
                )
            )

    def _give_way(self, other: int) -> None:
        """Two followers that lost the leader together pre-vote for the same
        term at once: each grants the other (pre-votes bind nobody), both would
        become candidates and split the vote. The one with the higher id
        withdraws; if the other does not follow up with a vote request, it
        campaigns again a tick or two later. Pre-votes change no term and no
        vote, so this decides only who goes first, never safety."""
        logger.debug("node %d: giving way to %d's campaign", self.id, other)
        self.become_follower(self.term, NONE)
        self.link_down_timeout = self._link_down_timeout()
        self.link_down_elapsed = 0

    def _learn_commit(self, index: int, term: int) -> None:
        """Another node says entry (index, term) is committed.

        If our log has that very entry, everything up to it is committed here
        too (Log Matching: same index and term means the same prefix).
        Without this, a voter that alone remains after its peers were
        removed, but that never learned the removal committed, would keep
        asking them for votes they refuse because their logs are longer:
        a deadlock the simulator found (a removed leader with a longer log).
        """
        if self.role != Role.LEADER and index > self.log.committed and self.log.match_term(index, term):
            logger.debug("node %d: learned commit %d from a vote answer", self.id, index)
            self.log.commit_to(index)

    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER:
            return
        if not self.promotable():
            return
        # A committed but unapplied conf change could change who may vote;
        # campaign only once it has taken effect.
        if self._unapplied_conf_change():
            logger.debug("node %d: not campaigning: unapplied conf change", self.id)
            return
        self._campaign(pre=self.cfg.pre_vote and not transfer, transfer=transfer)

    def _unapplied_conf_change(self) -> bool:
        pending = self.log.slice(self.log.applied + 1, self.log.committed + 1)
        return pending is None or any(e.type == EntryType.CONF_CHANGE for e in pending)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if not self.promotable():
            return
        if pre:
            self._become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MT.VOTE, self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # A single-voter configuration wins at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for nid in sorted(self.trk.voter_ids()):
            if nid == self.id:
                continue
            self._send(
                Message(vote_type, to=nid, term=term, index=self.log.last_index(), log_term=self.log.last_term(), context=ctx)
            )

    def _poll(self, nid: int, granted: bool) -> VoteResult:
        self.trk.record_vote(nid, granted)
        return self.trk.tally()[2]

    # ------------------------------------------------------------------
    # Leader
    # ------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.BEAT:
            if self.read_only.has_waiting():
                self._start_read_round()
            else:
                self._bcast_heartbeat(self.read_only.last_ctx())
            return
        if t == MT.CHECK_QUORUM:
            if not self.trk.quorum_active(self.id):
                logger.info("node %d: stepping down at term %d: no quorum heard within an election timeout", self.id, self.term)
                self.become_follower(self.term, NONE)
                return
            for nid, other in self.trk.progress.items():
                if nid != self.id:
                    other.recent_active = False
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return

        pr = self.trk.progress.get(m.frm)
        if pr is None:
            return  # not (or no longer) a member
        if t == MT.APP_RESP:
            self._leader_append_resp(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.last_ack_tick = self.ticks
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                # The follower answers but our window is full: the APPs in it
                # may have been lost. Let one more through; if they were
                # lost, the follower's answer (a rejection) repairs the
                # stream; if they were only slow, on an ordered link (the
                # real transport) the extra APP is simply accepted.
                pr.inflights.free_first()
            if pr.match < self.log.last_index() or pr.state == ProgressState.PROBE:
                self._send_append(m.frm)
            if m.context:
                self._read_ack(m.frm, m.context)
        elif t == MT.SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for the follower's next answer (or a heartbeat response)
            # before probing, so a failed snapshot is not retried in a loop.
            pr.probe_sent = True
        elif t in (MT.UNREACHABLE, MT.LINK_DOWN):
            # Optimistic streaming to a peer we cannot reach only piles up
            # lost messages: fall back to one probe at a time.
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
        elif t == MT.TRANSFER_LEADER:
            self._leader_transfer(m.frm, pr)

    def _leader_append_resp(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_ack_tick = self.ticks
        if m.reject:
            # Fast back-off (paper 5.3): the follower's hint names the last
            # (index, term) where our logs may agree.
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
            # The follower has installed the snapshot (or caught up some
            # other way): resume normal replication.
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif old_paused:
            self._send_append(m.frm)
        # Fill the pipeline with whatever is left to send.
        while self._maybe_send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.frm)

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a (joint) quorum has; only an
        entry of the current term is committed by counting (paper 5.4.2)."""
        if not self.log.maybe_commit(self.trk.committed(), self.term):
            return False
        if self.pending_read_index and self.committed_entry_in_current_term():
            held, self.pending_read_index = self.pending_read_index, []
            for rm in held:
                self._leader_read_index(rm)
        return True

    def _leader_transfer(self, transferee: int, pr: Progress) -> None:
        if pr.is_learner:
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return
            self.lead_transferee = NONE
        if transferee == self.id:
            return
        logger.info("node %d: transferring leadership to %d", self.id, transferee)
        # The transfer must finish within an election timeout (see tick).
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self._send_timeout_now(transferee)
        else:
            self._send_append(transferee)

    # -- ReadIndex -------------------------------------------------------

    def _leader_read_index(self, m: Message) -> None:
        if not self.committed_entry_in_current_term():
            # Our commit index may lag the previous leader's (thesis 6.4,
            # step 1): wait for our first entry to commit.
            self.pending_read_index.append(m)
            return
        if self.trk.is_singleton():
            self._respond_read(m, self.log.committed)
            return
        # The round starts in flush(), so that reads arriving together share it.
        self.read_only.add_request(m)

    def _start_read_round(self) -> None:
        rnd = self.read_only.start_round(self.log.committed)
        if rnd is None:
            return
        self._finish_reads(self.read_only.recv_ack(self.id, rnd.ctx, self._has_quorum))
        self._bcast_heartbeat(rnd.ctx)

    def _has_quorum(self, acks: set[int]) -> bool:
        return self.trk.vote_result_of({a: True for a in acks}) == VoteResult.WON

    def _read_ack(self, frm: int, ctx: bytes) -> None:
        self._finish_reads(self.read_only.recv_ack(frm, ctx, self._has_quorum))
        if self.read_only.has_waiting() and not self.read_only.in_flight():
            self._start_read_round()

    def _finish_reads(self, rounds: list[ReadRound]) -> None:
        for rnd in rounds:
            for req in rnd.requests:
                self._respond_read(req, rnd.index)

    def _respond_read(self, req: Message, index: int) -> None:
        if req.frm in (NONE, self.id):
            self.read_states.append(ReadState(index=index, request_ctx=req.context))
        else:
            self._send(Message(MT.READ_INDEX_RESP, to=req.frm, index=index, context=req.context))

    # ------------------------------------------------------------------
    # Candidate / pre-candidate
    # ------------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        my_resp = MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MT.VOTE_RESP
        t = m.type
        if t == MT.APP:
            self.become_follower(m.term, m.frm)
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t == my_resp:
            result = self._poll(m.frm, not m.reject)
            if result == VoteResult.WON:
                if not self.promotable():
                    # Our own removal was applied since we started campaigning.
                    self.become_follower(self.term, NONE)
                elif self.role == Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result == VoteResult.LOST:
                # A rejection carrying a higher term already made us a
                # follower in step(); this is a loss at our own term.
                self.become_follower(self.term, NONE)
        # TIMEOUT_NOW, READ_INDEX, TRANSFER_LEADER: no leader to act for.

    # ------------------------------------------------------------------
    # Follower
    # ------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.APP:
            self._heard_leader(m.frm)
            self.leader_commit = max(self.leader_commit, m.commit)
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self._heard_leader(m.frm)
            self.leader_commit = max(self.leader_commit, m.index, m.commit)
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self._heard_leader(m.frm)
            if m.snapshot is not None:
                self.leader_commit = max(self.leader_commit, m.snapshot.meta.index)
            self._handle_snapshot(m)
        elif t == MT.LINK_DOWN:
            self._on_link_down(m)
        elif t == MT.TRANSFER_LEADER:
            if self.lead != NONE:
                # A copy: the caller (network, simulator) may still hold `m`.
                self._send(dataclasses.replace(m, to=self.lead))
        elif t == MT.TIMEOUT_NOW:
            # The leader asks us to campaign now, skipping pre-vote (thesis
            # 3.10): its followers will grant despite leader stickiness. If a
            # committed conf change is still to be applied here (typically:
            # the one that removed that leader, whose commit index arrived
            # just before), campaign as soon as it is applied.
            if self._unapplied_conf_change():
                self.campaign_after_apply = True
            else:
                self._hup(transfer=True)
        elif t == MT.READ_INDEX:
            if self.lead != NONE:
                self._send(dataclasses.replace(m, to=self.lead))
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    def _heard_leader(self, lead: int) -> None:
        self.election_elapsed = 0
        self.lead = lead
        self.link_down_timeout = 0  # it speaks: the link is back (or only flapped)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            # Everything up to our commit index matches any leader's log.
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(Message(MT.APP_RESP, to=m.frm, index=last_new))
            return
        # No match at (m.index, m.log_term): hint the largest (index, term)
        # of ours with index <= m.index and term <= m.log_term, so that the
        # leader can skip whole terms of mismatching entries.
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            Message(MT.APP_RESP, to=m.frm, index=m.index, reject=True, reject_hint=hint_index, log_term=hint_term)
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        if m.snapshot is not None and self._restore(m.snapshot):
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))

    def _restore(self, s: Snapshot) -> bool:
        """Install a snapshot from the leader; False if it brings nothing new."""
        idx, term = s.meta.index, s.meta.term
        if idx <= self.log.committed:
            return False
        if self.role != Role.FOLLOWER:
            # Only a leader of our term sends snapshots, and it makes us a
            # follower first; anything else is a bug elsewhere. Be safe.
            logger.error("node %d: snapshot received as %s; ignoring", self.id, self.role.value)
            self.become_follower(self.term + 1, NONE)
            return False
        if self.log.match_term(idx, term):
            # We already have the snapshot's entries: just commit them.
            self.log.commit_to(idx)
            return False
        # Note: unlike etcd we accept a snapshot whose configuration does not
        # name us: a node being added may get a snapshot taken before its
        # own conf change, which then arrives as a later log entry.
        logger.info("node %d: restoring snapshot at index %d term %d", self.id, idx, term)
        self.log.restore(s)
        self.snapshot = s
        self.trk.set_conf(s.meta.conf_state, self.log.last_index() + 1)
        self._conf_from_snapshot(s.meta)
        return True

    def _conf_from_snapshot(self, meta: SnapshotMeta) -> None:
        index, term = meta.conf_log_id()
        self.conf_history = [(index, term, meta.conf_state)]

    # ------------------------------------------------------------------
    # Proposals, configuration, persistence and apply feedback
    # ------------------------------------------------------------------

    def _append_entries(self, items: list[tuple[EntryType, bytes]]) -> int:
        li = self.log.last_index()
        ents = [Entry(term=self.term, index=li + 1 + i, type=t, data=d) for i, (t, d) in enumerate(items)]
        return self.log.append(ents)

    def propose(self, etype: EntryType, data: bytes) -> tuple[int, int]:
        if self.role != Role.LEADER:
            raise ProposalDropped(self.lead)
        if self.id not in self.trk.progress:
            raise ProposalDropped(NONE, "this node was removed from the cluster")
        if self.lead_transferee != NONE:
            raise ProposalDropped(NONE, f"leadership transfer to {self.lead_transferee} in progress")
        if etype == EntryType.CONF_CHANGE:
            self._check_conf_change(ConfChange.decode(data))
        index = self._append_entries([(etype, data)])
        if etype == EntryType.CONF_CHANGE:
            self.pending_conf_index = index
        # Sending is deferred to flush() (called when the runtime asks for a
        # Ready), so that proposals made back to back travel together: many
        # entries per APP message.
        self.append_pending = True
        return self.term, index

    def flush(self) -> None:
        """Send what was deferred to batch it: the entries proposed and the
        ReadIndex round for the reads requested since the last flush."""
        if self.role != Role.LEADER:
            self.append_pending = False
            return
        if self.append_pending:
            self.append_pending = False
            for nid in list(self.trk.peers(self.id)):
                while self._maybe_send_append(nid, send_if_empty=False):
                    pass
        if self.read_only.has_waiting() and not self.read_only.in_flight():
            self._start_read_round()

    def _check_conf_change(self, cc: ConfChange) -> None:
        if self.pending_conf_index > self.log.applied:
            raise ConfChangeRejected(
                f"a configuration change (index {self.pending_conf_index}) is not applied yet (applied {self.log.applied})"
            )
        joint = self.trk.is_joint()
        if joint and cc.changes:
            raise ConfChangeRejected("the configuration is joint: it must be left first")
        try:
            apply_conf_change(self.trk.conf, cc)
        except ConfChangeError as e:
            raise ConfChangeRejected(str(e)) from None

    def apply_conf_change(self, index: int, cc: ConfChange) -> None:
        """A committed conf change entry has been applied: switch to it."""
        try:
            new = apply_conf_change(self.trk.conf, cc)
        except ConfChangeError as e:
            # Cannot happen for changes validated at proposal time; every
            # node sees the same configuration here, so skipping is
            # deterministic cluster-wide.
            logger.error("node %d: skipping invalid conf change at index %d: %s", self.id, index, e)
            return
        logger.info("node %d: configuration at index %d: %s", self.id, index, new.to_json())
        before = set(self.trk.progress)
        self.trk.set_conf(new, self.log.last_index() + 1)
        self.conf_history.append((index, self.log.term(index) or 0, new))
        if self.role != Role.LEADER:
            return
        if self.id not in self.trk.voter_ids():
            self._step_down_removed()
            return
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.voter_ids():
            self.lead_transferee = NONE
        if self._maybe_commit():
            # The new quorum may have committed more (e.g. a slow voter left).
            self._bcast_append()
        else:
            # Probe the members just added at once.
            for nid in sorted(set(self.trk.progress) - before):
                self._send_append(nid)

    def _step_down_removed(self) -> None:
        """The leader applied a configuration it is not a voter of."""
        logger.info("node %d: removed from the voters; stepping down at term %d", self.id, self.term)
        # Tell everyone the commit index so that the remaining voters apply
        # the change (and so use the new configuration to elect a leader)...
        self._bcast_heartbeat()
        # ...and hand over to the most up-to-date remaining voter at once.
        best = max(
            ((self.trk.progress[n].match, n) for n in self.trk.voter_ids() if n in self.trk.progress and n != self.id),
            default=None,
        )
        if best is not None and best[0] == self.log.last_index():
            self._send_timeout_now(best[1])
        self.become_follower(self.term, NONE)

    def on_persisted(self, entries: list[Entry], snapshot: Snapshot | None) -> None:
        """The runtime made a Ready's snapshot and entries durable."""
        if snapshot is not None:
            self.log.stable_snapshot(snapshot.meta.index)
        if entries:
            last = entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role == Role.LEADER:
                me = self.trk.progress.get(self.id)
                if me is not None and me.maybe_update(self.log.stable) and self._maybe_commit():
                    self._bcast_append()

    def on_applied(self, committed: list[Entry]) -> None:
        """The runtime applied a Ready's committed entries."""
        for e in committed:
            if e.index <= self.log.applied:
                continue  # overtaken by a snapshot restored meanwhile
            if e.type == EntryType.CONF_CHANGE:
                self.apply_conf_change(e.index, ConfChange.decode(e.data))
            self.log.applied_to(e.index)
        if self.campaign_after_apply and not self._unapplied_conf_change():
            self.campaign_after_apply = False
            if self.role == Role.FOLLOWER:
                self._hup(transfer=True)
        if (
            self.role == Role.LEADER
            and self.trk.conf.auto_leave
            and self.log.applied >= self.pending_conf_index
        ):
            # Joint consensus, second phase: leave C_old,new automatically
            # once entering it has taken effect here.
            index = self._append_entries([(EntryType.CONF_CHANGE, ConfChange().encode())])
            self.pending_conf_index = index
            logger.info("node %d: proposing to leave the joint configuration at index %d", self.id, index)
            self.append_pending = True  # sent by flush(), as proposals are

    def bootstrap(self, entries: list[Entry]) -> None:
        if self.log.last_index() != 0 or self.snapshot is not None:
            raise RuntimeError("bootstrap is only possible on a node with an empty log")
        # A fresh node may already have heard (pre)votes from some other
        # cluster and moved its term on; with an empty log that is harmless:
        # the term-1 entries below are older than its term, as Raft allows.
        self.become_follower(max(self.term, 1), NONE)
        self.log.append(entries)
        # Only the configuration entry (index 1) is committed by fiat: a node
        # can campaign only once it holds it, so every future leader has it.
        # The entries after it are NOT safe to commit here: a node that has
        # received index 1 but not 2 could win an election with votes of
        # empty nodes (simulator seed 264). They commit the normal way, with
        # the first leader's term-2 entry.
        self.log.commit_to(1)

    def create_snapshot(self, index: int, data: bytes) -> Snapshot:
        if index > self.log.applied:
            raise ValueError(f"snapshot index {index} is beyond applied index {self.log.applied}")
        if self.snapshot is not None and index <= self.snapshot.meta.index:
            raise ValueError(f"snapshot index {index} is not newer than the current snapshot {self.snapshot.meta.index}")
        term = self.log.term(index)
        if term is None:
            raise ValueError(f"snapshot index {index} is compacted")
        conf_index, conf_term, conf = self.conf_entry_at(index)
        meta = SnapshotMeta(index=index, term=term, conf_state=conf, conf_index=conf_index, conf_term=conf_term)
        snap = Snapshot(meta=meta, data=data)
        self.snapshot = snap
        return snap

    def compact(self, index: int) -> None:
        if self.snapshot is None or index > self.snapshot.meta.index:
            raise ValueError("compact only up to a snapshot's index")
        self.log.compact(index)
        # Keep the configuration in effect at `index` and every later one.
        keep = [i for i, (ci, _, _) in enumerate(self.conf_history) if ci <= index]
        if keep:
            del self.conf_history[: keep[-1]]
