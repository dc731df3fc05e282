"""The one asyncio task that owns the Raft core.

Everything that touches the `RawNode` goes through this task, in the order
the core's Ready contract demands (docs/ARCHITECTURE.md):

    inputs (peer messages, ticks, proposals, reads) -> step/tick/propose
    -> ready -> persist (write + fsync) -> send -> apply -> advance

While a round writes and fsyncs (on the loop: see `_persist`), new requests
and peer messages wait in the sockets; once read they pile up in plain
lists, and the next round drains them all at once, so concurrent client
writes share one log entry and one fsync (group commit) and concurrent
linearizable reads share one ReadIndex round, without any timer or batching
knob.

Callers (request handlers, the peer transport) never block the loop: they
append to an inbox and get a future.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from qcore.node.commit_notices import CommitNotices
from qcore.node.entries import Batch, encode_batch, encode_init, new_batch
from qcore.node.errors import NotLeader, OutcomeUnknown, RequestFailed
from qcore.node.options import NodeOptions
from qcore.node.own_snapshots import OwnSnapshots
from qcore.node.reads import ReadBatcher
from qcore.node.state_machine import StateMachine
from qcore.node.stats import NodeStats
from qcore.node.waiting import Deadlines, SettledNow
from qcore.protocol.errors import Kind
from qcore.raft import ProposalDropped, RawNode, Ready
from qcore.raft.types import ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot

log = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 512 * 1024
_PROP = MessageType.PROP
# How long a leader may hold a commit-only append (see commit_notices.py).
_COMMIT_NOTICE_DELAY = 0.002
_NOT_TAKEN = "the leader did not take the write (it changed, or is handing over); it was not applied"
_LOST = "leadership changed before the write committed; it was not applied"


@dataclass(slots=True)
class _Proposal:
    term: int
    seqs: list[int]
    data: bytes  # the entry's payload, and the batch it was encoded from:
    batch: Batch  # applying our own entry need not parse it again


@dataclass(slots=True)
class _Forwarded:
    """A batch of writes this follower handed to the leader of `term`."""

    term: int
    batch: int
    seqs: list[int]


class RaftDriver:
    def __init__(
        self,
        opts: NodeOptions,
        raw: RawNode,
        storage: Any,
        state_machine: StateMachine,
        send: Callable[[list[Message]], None],
        applied: int = 0,
        snapshot_index: int = 0,
        reachable: Callable[[int], bool] = lambda peer: True,
        stats: NodeStats | None = None,
    ) -> None:
        self._opts = opts
        self.stats = stats if stats is not None else NodeStats()  # read by /metrics
        self._raw = raw
        self._storage = storage
        self._sm = state_machine
        self._send = send
        self._reachable = reachable
        self._applied = applied
        self._snapshot_index = snapshot_index
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qcore-io-{opts.id}")
        self._wake = asyncio.Event()
        self._snapshots = OwnSnapshots(
            opts, raw, state_machine,
            save=lambda snap: self._loop.run_in_executor(self._io, self._storage.save_snapshot, snap),
            wake=self._wake.set,
            stats=self.stats,
        )
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        # Inputs, drained at the top of every round.
        self._inbox: list[Message] = []
        self._local: list[Callable[[], None]] = []
        self._pending_ticks = 0
        self._cmd_queue: list[tuple[Any, Any, asyncio.Future[Any]]] = []
        self._conf_queue: list[tuple[ConfChange, asyncio.Future[tuple[int, int]]]] = []
        self._read_queue: list[asyncio.Future[None]] = []
        # Outstanding work.
        self.origin = f"{opts.id}:{os.urandom(4).hex()}"
        self._seq = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._proposed: dict[int, _Proposal] = {}
        # Writes handed to the leader, oldest first (terms never decrease).
        self._forwarded: deque[_Forwarded] = deque()
        self._batch_ids = itertools.count(1)
        self._conf_proposed: dict[int, tuple[int, asyncio.Future[tuple[int, int]]]] = {}
        self._reads = ReadBatcher(raw.read_index, retry_ticks=opts.election_ticks)
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._deadlines = Deadlines(max(1, int(opts.request_timeout * 1000 / opts.tick_ms)), opts.request_timeout)
        self._local_cmds: dict[int, Any] = {}  # seq -> decoded command, so the proposer decodes once
        self._tick_count = 0
        self.persisted_index = 0
        self._durable_term_vote = (0, 0)  # as last written to storage
        self._last_role = ""
        self._last_leader = -1
        # Called once a Ready's entries are applied: the node flushes the
        # replies its `on_settled` callbacks queued (see waiting.SettledNow).
        self.after_apply: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        # Cached: asyncio.get_running_loop() makes a getpid() syscall per
        # call on Python 3.11, and every request asks for a future.
        self._loop = asyncio.get_running_loop()
        self._notices = CommitNotices(self._send, _COMMIT_NOTICE_DELAY, self._loop)
        self._task = asyncio.create_task(self._run(), name=f"raft-driver-{self._opts.id}")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"raft-ticker-{self._opts.id}")

    async def stop(self) -> None:
        """Stop the loop, fail whatever is still waiting, close storage."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        for task in (self._ticker, self._task, self._snapshots.task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._task is not None:
            self._notices.close()
        exc = RequestFailed("node is shutting down", Kind.SHUTTING_DOWN)
        for fut in itertools.chain(
            self._waiters.values(),
            (f for _, _, f in self._cmd_queue),
            (f for _, f in self._conf_queue),
            self._read_queue,
            (f for _, f in self._conf_proposed.values()),
            self._reads.pending(),
            (f for _, f in self._watchers),
        ):
            if not fut.done():
                fut.set_exception(exc)
        await asyncio.get_running_loop().run_in_executor(self._io, self._storage.close)
        self._io.shutdown(wait=True)
        self._snapshots.shutdown()

    # ------------------------------------------------------------ observers
    @property
    def raw(self) -> RawNode:
        """For read-only inspection (status); never mutate outside this task."""
        return self._raw

    @property
    def applied(self) -> int:
        return self._applied

    @property
    def snapshot_index(self) -> int:
        return self._snapshot_index

    @property
    def tick_count(self) -> int:
        return self._tick_count

    def note_durable_hard_state(self, hs: HardState) -> None:
        """The hard state storage recovered (what is already on disk)."""
        self._durable_term_vote = (hs.term, hs.vote)

    def status(self) -> Any:
        return self._raw.status()

    def is_leader(self) -> bool:
        return self._raw.is_leader

    def leader_id(self) -> int:
        return self._raw.leader_id

    def conf_state(self) -> ConfState:
        return self._raw.conf_state

    def initialised(self) -> bool:
        cs = self._raw.conf_state
        return bool(cs.voters or cs.learners or cs.voters_outgoing) or self.persisted_index > 0

    def removed(self) -> bool:
        """Was this node part of the cluster and has since been removed?"""
        cs = self._raw.conf_state
        members = (*cs.voters, *cs.voters_outgoing, *cs.learners)
        return bool(members) and self._opts.id not in members

    def address_of(self, node_id: int) -> str | None:
        return self._raw.conf_state.addresses.get(node_id)

    # --------------------------------------------------------------- inputs
    def step(self, msg: Message) -> None:
        self._inbox.append(msg)
        self._wake.set()

    def report_unreachable(self, to: int) -> None:
        self._local.append(lambda: self._raw.report_unreachable(to))
        self._wake.set()

    def report_snapshot(self, to: int, ok: bool) -> None:
        self._local.append(lambda: self._raw.report_snapshot(to, ok))
        self._wake.set()

    def bootstrap(
        self, addresses: dict[int, str], load_config_json: Any, at: tuple[int, int] | None = None
    ) -> asyncio.Future[None]:
        """Init: write the initial configuration and the config-file entry
        (stamped `at`, or now; every member of an --initial-cluster writes
        the same entries, so they pass the same `at`)."""
        fut: asyncio.Future[None] = self._loop.create_future()

        def do() -> None:
            if self.initialised():
                fut.set_exception(RequestFailed("already initialised", Kind.INVALID))
                return
            try:
                self._raw.bootstrap(addresses, [encode_init(load_config_json, at)])
            except Exception as exc:  # the core refuses: report, don't crash
                fut.set_exception(RequestFailed(f"cannot initialise: {exc}", Kind.INVALID))
                return
            log.info("bootstrapped cluster with members %s", addresses)
            fut.set_result(None)

        self._local.append(do)
        self._wake.set()
        return fut

    def propose_command(
        self,
        command_json: Any,
        command: Any = None,
        on_settled: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> asyncio.Future[Any]:
        """A write: resolves with the command's response JSON once applied
        here, or fails with OutcomeUnknown after the request timeout.

        On a follower the write is handed to the leader in a PROP message and
        answered when this node applies it; NotLeader if no leader is known or
        reachable (the caller may then forward it some other way).

        `command` is the already-decoded form of `command_json`, if the caller
        has it: the proposer then applies it without decoding it again.
        `on_settled(fut)` is called as soon as the future is settled, inside
        the driver's round (not a loop iteration later, as done-callbacks are).
        """
        fut: asyncio.Future[Any] = (
            self._loop.create_future() if on_settled is None else SettledNow(self._loop, on_settled)
        )
        self._cmd_queue.append((command_json, command, fut))
        self._deadline(fut, "the write was proposed but not applied in time; outcome unknown")
        self._wake.set()
        return fut

    def _deadline(self, fut: asyncio.Future[Any], why: str) -> None:
        self._deadlines.add(fut, why, self._tick_count)

    def propose_conf_change(self, cc: ConfChange) -> asyncio.Future[tuple[int, int]]:
        """Resolves with (term, index) once the change is applied (not just committed)."""
        fut: asyncio.Future[tuple[int, int]] = self._loop.create_future()
        self._conf_queue.append((cc, fut))
        self._deadline(fut, "the membership change was proposed but not applied in time; outcome unknown")
        self._wake.set()
        return fut

    def read_barrier(self) -> asyncio.Future[None]:
        """Resolves once local state is at least as new as the cluster's
        commit index at the time of the call (ReadIndex)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._read_queue.append(fut)
        self._deadline(fut, "could not confirm a linearizable read (no leader?)")
        self._wake.set()
        return fut

    def request_snapshot(self, min_index: int) -> "asyncio.Future[Snapshot]":
        """A snapshot of the state machine at `min_index` or later (for a backup)."""
        return self._snapshots.request(min_index)

    def campaign_if_sole_voter(self) -> None:
        """A cluster of one need not wait an election timeout to elect its
        only voter (at Init, and on every restart)."""

        def do() -> None:
            cs = self._raw.conf_state
            if tuple(cs.voters) == (self._opts.id,) and not cs.voters_outgoing and not self._raw.is_leader:
                self._raw.campaign()

        self._local.append(do)
        self._wake.set()

    def transfer_leader(self, to: int) -> None:
        self._local.append(lambda: self._raw.transfer_leader(to))
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (checked after every round)."""
        if predicate():
            return True
        fut: asyncio.Future[None] = self._loop.create_future()
        entry = (predicate, fut)
        self._watchers.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if entry in self._watchers:
                self._watchers.remove(entry)

    # ----------------------------------------------------------------- loop
    async def _tick_loop(self) -> None:
        interval = self._opts.tick_ms / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopped:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self._pending_ticks += 1
            self._wake.set()

    async def _run(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one round must not kill the node's only Raft task;
                # log loudly and keep going (state is unchanged by a failed step).
                log.exception("raft driver round failed")

    async def _round(self) -> None:
        self._drain()
        while self._raw.has_ready():
            rd = self._raw.ready()
            # A leader may replicate entries while it writes them to its own
            # disk (Raft thesis 10.2.1): it counts itself towards a commit
            # only once its own write is done, and none of its messages
            # promise anything about its disk — unless this Ready changes its
            # term or vote, which must be durable before anyone hears of it.
            early = (
                self._raw.is_leader
                and rd.snapshot is None
                and (rd.hard_state is None or (rd.hard_state.term, rd.hard_state.vote) == self._durable_term_vote)
            )
            # Messages carrying entries go out before anything else (the
            # followers' disks are the commit's critical path); messages
            # that only carry the commit index wait until the clients of
            # the newly committed entries have been answered.
            send_first = early and rd.messages and (
                not rd.committed_entries or any(m.entries for m in rd.messages)
            )
            if send_first:
                self._notices.send(rd.messages)
            restoring = rd.snapshot is not None and not rd.snapshot.is_empty()
            # Committed entries are already durable on a quorum, so they may
            # be applied (and their clients answered) before this Ready's new
            # entries reach the local disk, as etcd does. A follower does so
            # only when its own clients wait for them: otherwise its
            # acknowledgement, which a write on the leader waits for, goes first.
            apply_first = not restoring and (not rd.must_sync or self._raw.is_leader or bool(self._waiters))
            if apply_first:
                self._apply(rd)
                if rd.committed_entries and rd.must_sync and not self._raw.is_leader:
                    # The fsync below blocks the loop: let the replies just
                    # queued go out first.
                    await asyncio.sleep(0)
            if early and not send_first and rd.messages:
                self._notices.send(rd.messages)
            await self._persist(rd)
            if rd.hard_state is not None:
                self._durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)
            if not early and rd.messages:
                self._notices.send(rd.messages)
            if not apply_first:
                self._apply(rd)
            self._raw.advance(rd)
            self._resolve_conf_waiters()
            self._reads.serve(self._applied)
            self._deadlines.forget_settled()
            self._drain()
        self._observe_role()
        self._check_watchers()
        installed = await self._snapshots.step(self._applied, self._snapshot_index)
        if installed is not None:
            self._snapshot_index = installed

    def _drain(self) -> None:
        raw = self._raw
        if self._pending_ticks:
            n, self._pending_ticks = self._pending_ticks, 0
            for _ in range(n):
                raw.tick()
                self._tick_count += 1
            self._reads.retry_stale(self._tick_count)
            self._deadlines.expire(self._tick_count)
        if self._local:
            local, self._local = self._local, []
            for fn in local:
                try:
                    fn()
                except Exception:
                    log.exception("local raft input failed")
        if self._inbox:
            inbox, self._inbox = self._inbox, []
            for msg in inbox:
                if msg.type is _PROP:
                    self._on_forwarded(msg)
                    continue
                try:
                    raw.step(msg)
                except Exception:
                    log.exception("stepping %s from %d failed", msg.type.name, msg.frm)
        if self._cmd_queue:
            self._propose_commands()
        if self._conf_queue:
            self._propose_conf_changes()
        if self._read_queue:
            futs, self._read_queue = self._read_queue, []
            self._reads.issue(futs, self._tick_count)

    def _propose_commands(self) -> None:
        queue, self._cmd_queue = self._cmd_queue, []
        raw = self._raw
        if raw.is_leader:
            submit = self._propose_batch
        else:
            leader = raw.leader_id
            if not leader or leader == self._opts.id or not self._reachable(leader):
                err = self._not_leader()
                for _, _, fut in queue:
                    if not fut.done():
                        fut.set_exception(err)
                return
            submit = self._forward_batch
        batch: list[list[Any]] = []
        futs: list[tuple[int, asyncio.Future[Any]]] = []
        for command_json, command, fut in queue:
            if fut.done():  # caller gave up already
                continue
            seq = next(self._seq)
            batch.append([self.origin, seq, command_json])
            futs.append((seq, fut))
            if command is not None:
                self._local_cmds[seq] = command
            if len(batch) >= self._opts.max_batch_commands:
                self._split(submit, batch, futs)
                batch, futs = [], []
        if batch:
            self._split(submit, batch, futs)

    def _split(
        self,
        submit: Callable[[bytes, Batch, list[tuple[int, asyncio.Future[Any]]]], None],
        commands: list[list[Any]],
        futs: list[tuple[int, asyncio.Future[Any]]],
    ) -> None:
        """Encode a batch as one entry, halving it while the entry is too large."""
        batch = new_batch(commands)
        data = encode_batch(batch)
        if len(data) > _MAX_BATCH_BYTES and len(commands) > 1:
            half = len(commands) // 2
            self._split(submit, commands[:half], futs[:half])
            self._split(submit, commands[half:], futs[half:])
            return
        submit(data, batch, futs)

    def _propose_batch(self, data: bytes, batch: Batch, futs: list[tuple[int, asyncio.Future[Any]]]) -> None:
        try:
            term, index = self._raw.propose(data)
        except ProposalDropped:
            err = self._not_leader()
            for seq, fut in futs:
                self._local_cmds.pop(seq, None)
                if not fut.done():
                    fut.set_exception(err)
            return
        for seq, fut in futs:
            self._waiters[seq] = fut
        self._proposed[index] = _Proposal(term, [seq for seq, _ in futs], data, batch)
        self.stats.proposals += 1
        self.stats.proposed_commands += len(futs)

    # ---------------------------------------------------- forwarded writes
    # A follower hands a batch to the leader as a PROP message naming the
    # term it believes the leader has. The leader appends it only if it is
    # leader in exactly that term, and otherwise answers with the PROP
    # rejected. So a batch can only ever sit in the log at that term, and
    # once this node applies any entry of a later term, every entry of the
    # batch's term that will ever commit has been applied (log matching):
    # a batch still unanswered then was not applied and never will be.
    # The follower answers its clients from its own apply: no reply travels
    # back from the leader.

    def _forward_batch(self, data: bytes, batch: Batch, futs: list[tuple[int, asyncio.Future[Any]]]) -> None:
        raw = self._raw
        batch_id, term = next(self._batch_ids), raw.term
        self._send([Message(
            _PROP, to=raw.leader_id, frm=self._opts.id, term=term, index=batch_id,
            entries=[Entry(0, 0, EntryType.NORMAL, data)],
        )])
        seqs = []
        for seq, fut in futs:
            self._waiters[seq] = fut
            seqs.append(seq)
        self._forwarded.append(_Forwarded(term, batch_id, seqs))

    def _on_forwarded(self, msg: Message) -> None:
        """A PROP from a follower, or the leader's rejection of ours."""
        if msg.reject:
            for fwd in self._forwarded:
                if fwd.batch == msg.index:
                    self._forwarded.remove(fwd)
                    self._fail_seqs(fwd.seqs, RequestFailed(_NOT_TAKEN))
                    break
            return
        raw = self._raw
        if raw.is_leader and raw.term == msg.term and len(msg.entries) == 1:
            try:
                _, index = raw.propose(msg.entries[0].data)
                self._notices.note_forwarded(msg.frm, index)
                self.stats.proposals += 1
                return
            except ProposalDropped:
                pass
        self._send([Message(_PROP, to=msg.frm, frm=self._opts.id, term=msg.term, index=msg.index, reject=True)])

    def _fail_seqs(self, seqs: list[int], err: Exception) -> None:
        for seq in seqs:
            self._local_cmds.pop(seq, None)
            fut = self._waiters.pop(seq, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)

    def _settle_forwarded(self, lost_before: int) -> None:
        """Fail the batches of terms before `lost_before` (an entry of that
        term was applied, so they were lost); forget the answered ones."""
        fw = self._forwarded
        waiters = self._waiters
        while fw:
            head = fw[0]
            if head.term < lost_before:
                fw.popleft()
                self._fail_seqs(head.seqs, RequestFailed(_LOST))
            elif all((f := waiters.get(s)) is None or f.done() for s in head.seqs):
                fw.popleft()
                self._fail_seqs(head.seqs, RequestFailed(_LOST))  # only drops what timed out
            else:
                return

    def _propose_conf_changes(self) -> None:
        queue, self._conf_queue = self._conf_queue, []
        for cc, fut in queue:
            if fut.done():
                continue
            try:
                term, index = self._raw.propose_conf_change(cc)
            except ProposalDropped:
                fut.set_exception(self._not_leader())
                continue
            except Exception as exc:  # ConfChangeRejected and validation errors
                fut.set_exception(RequestFailed(str(exc)))
                continue
            self._conf_proposed[index] = (term, fut)

    def _not_leader(self) -> NotLeader:
        leader = self.leader_id()
        return NotLeader(leader, self.address_of(leader) if leader else None)

    # -------------------------------------------------------------- persist
    async def _persist(self, rd: Ready) -> None:
        snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        if rd.hard_state is None and not rd.entries and snap is None:
            return
        try:
            if snap is not None:
                await self._loop.run_in_executor(
                    self._io, self._storage.save, rd.hard_state, rd.entries, snap, True
                )
            else:
                # Entries are written and fsynced on the loop, by leader and
                # follower alike. While the loop waits, requests and acks
                # pile up in the sockets and make the next batch; a hand-off
                # to a thread costs two wake-ups and GIL switches, which on
                # the 2-core bench VM cost more CPU than the overlap saved.
                # Measured in alternating runs: 1 node, 64 clients ~20k ->
                # ~23k writes/s (leader 47 -> 40 µs a write); 3 nodes, 64
                # clients the same writes/s with ~10% less leader CPU; a
                # follower's fsync is on the commit's critical path, and at
                # 1 client a leader's took ~0.29 ms on the loop against
                # ~0.54 ms from hand-off to resumption through the thread.
                # Snapshots still go to the thread (above).
                t0 = time.perf_counter()
                self._storage.save(rd.hard_state, rd.entries, None, rd.must_sync)
                if rd.must_sync:
                    self.stats.fsync.observe(time.perf_counter() - t0)
        except Exception:
            # After a failed write or fsync nothing is known about what is on
            # disk (the kernel may have dropped the dirty pages), and Raft's
            # promises rest on it: stop at once, as etcd does, rather than
            # acknowledge anything more. A restart recovers from what is there.
            log.critical("persisting Raft state failed; stopping the node", exc_info=True)
            logging.shutdown()
            os._exit(70)
        if rd.entries:
            self.persisted_index = rd.entries[-1].index
        elif snap is not None:
            self.persisted_index = max(self.persisted_index, snap.meta.index)

    # ---------------------------------------------------------------- apply
    def _apply(self, rd: Ready) -> None:
        snap = rd.snapshot
        if snap is not None and not snap.is_empty() and snap.meta.index > self._applied:
            self._sm.restore(snap.data, snap.meta.index)
            self._applied = snap.meta.index
            self._snapshot_index = snap.meta.index
            self.stats.snapshots_installed += 1
            log.info("installed snapshot at index %d term %d", snap.meta.index, snap.meta.term)
            # Whether our forwarded writes are inside the snapshot is unknown.
            err = OutcomeUnknown("a snapshot was installed while the write was in flight; outcome unknown")
            while self._forwarded:
                self._fail_seqs(self._forwarded.popleft().seqs, err)
        for rs in rd.read_states:
            self._reads.on_read_state(rs.request_ctx, rs.index)
        forwarded = self._forwarded
        for entry in rd.committed_entries:
            if entry.index <= self._applied:
                continue
            if forwarded and entry.term > forwarded[0].term:
                self._settle_forwarded(entry.term)
            prop = self._proposed.pop(entry.index, None)
            if entry.type == EntryType.NORMAL and entry.data:
                own = prop.batch if prop is not None and prop.data is entry.data else None
                for seq, response in self._sm.apply_entry(entry.index, entry.data, self.origin, self._local_cmds, own):
                    fut = self._waiters.pop(seq, None)
                    if fut is not None and not fut.done():
                        fut.set_result(response)
            self._applied = entry.index
            if prop is not None and prop.term != entry.term:
                self._fail_seqs(prop.seqs, RequestFailed(_LOST))
        if forwarded:
            self._settle_forwarded(0)
        if rd.committed_entries:
            self.after_apply()

    def _resolve_conf_waiters(self) -> None:
        """Conf changes take effect when advanced past; answer after that."""
        if not self._conf_proposed:
            return
        for index in [i for i in self._conf_proposed if i <= self._applied]:
            term, fut = self._conf_proposed.pop(index)
            if fut.done():
                continue
            if self._term_at(index) in (term, None):
                fut.set_result((term, index))
            else:
                fut.set_exception(RequestFailed("leadership changed before the membership change committed"))

    def _term_at(self, index: int) -> int | None:
        return self._raw.term_at(index)

    def _check_watchers(self) -> None:
        if not self._watchers:
            return
        for predicate, fut in list(self._watchers):
            if fut.done():
                continue
            try:
                if predicate():
                    fut.set_result(None)
            except Exception as exc:
                fut.set_exception(exc)

    def _observe_role(self) -> None:
        raw = self._raw
        if raw.is_leader == (self._last_role == "Leader") and raw.leader_id == self._last_leader:
            return
        st = raw.status()
        if st.role != self._last_role or st.leader_id != self._last_leader:
            log.info("role=%s term=%d leader=%d commit=%d applied=%d", st.role, st.term, st.leader_id, st.commit, self._applied)
            if st.leader_id and st.leader_id != self._last_leader:
                self.stats.leader_changes += 1
            self._last_role, self._last_leader = st.role, st.leader_id
            if st.role != "Leader" and self._proposed:
                # Our uncommitted proposals may still commit under the new
                # leader, or be overwritten; the apply path tells which.
                log.info("stepped down with %d proposals in flight", len(self._proposed))
