"""The one asyncio task that runs the node's runtime core.

`qcore.node.replica.Replica` decides everything about a round — what to
send, persist, apply and answer, and in what order. This module is its glue
to asyncio: it turns requests into futures, wakes a round when inputs
arrive, ticks the clock, writes and fsyncs on the loop (snapshots on a
storage thread), builds snapshots on a thread of their own, fires the
replica's timers, and stops the process when storage or the core fails.

While a round writes and fsyncs, new requests and peer messages wait in
the sockets; once read they queue in the replica, and the next round takes
them all at once, so concurrent writes share one log entry and one fsync
(group commit) and concurrent reads one ReadIndex round, with no timer or
batching knob.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from qcore.node import malloc_policy, snapshot_child
from qcore.node.errors import RequestFailed
from qcore.node.options import NodeOptions
from qcore.node.own_snapshots import Builder, MakeBuilder
from qcore.node.replica import Replica, ReplicaOptions, Send
from qcore.node.removal import RemovalNotice
from qcore.node.state_machine import StateMachine
from qcore.node.stats import NodeStats
from qcore.node.entries import ENTRY_LEVEL, LevelUnsupported, encode_init, proposal_level
from qcore.raft import RawNode, Ready, Status
from qcore.raft.types import ConfChange, ConfState, HardState, Snapshot
from qcore.protocol.errors import Kind
from qcore.protocol.raft_codec import PeerMessage
from qcore.storage import FileStorage, Storage, StorageError

log = logging.getLogger(__name__)

#: Exit codes when the node stops itself (docs/operations.md).
EXIT_BROKEN_INVARIANT = 70  # EX_SOFTWARE: an exception inside a round
EXIT_STORAGE_FAILED = 74  # EX_IOERR: a write or fsync of Raft state failed
EXIT_NEEDS_UPGRADE = 78  # EX_CONFIG: a committed entry needs a newer qcore (qcore.node.entries)
# How long a leader may hold a commit-only append (see commit_notices.py).
_COMMIT_NOTICE_DELAY = 0.002
# asyncio may run a timer up to its clock resolution early.
_TIMER_SLACK = 0.0001


def stop_process(code: int, what: str, trace: bool = True) -> None:
    """Log `what` (with the exception being handled, if `trace`) and exit at
    once, as etcd panics: nothing more may be promised, and a restart
    recovers from what is durable."""
    log.critical("%s; stopping the node (exit %d)", what, code, exc_info=trace)
    logging.shutdown()
    os._exit(code)


def _retrieve_exception(fut: "asyncio.Future[Any]") -> None:
    """Mark a failed future's exception as seen (whoever still awaits it gets it all the same)."""
    if not fut.cancelled():
        fut.exception()


class SettledNow(asyncio.Future[Any]):
    """A future that calls `on_settled` the moment it is settled, inside the
    round that settles it, rather than a loop iteration later as asyncio's
    done-callbacks run (after whatever I/O arrived meanwhile): a write's
    reply leaves in the round that applies it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_settled: Callable[[asyncio.Future[Any]], None]) -> None:
        super().__init__(loop=loop)
        self._on_settled = on_settled

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._settled()

    def set_exception(self, exception: Any) -> None:
        super().set_exception(exception)
        self._settled()

    def _settled(self) -> None:
        try:
            self._on_settled(self)
        except Exception:
            # The caller's bug must not stop the apply that settled us.
            log.exception("write reply callback failed")


def replica_options(opts: NodeOptions) -> ReplicaOptions:
    return ReplicaOptions(
        id=opts.id,
        timeout_ticks=opts.ticks(opts.request_timeout),
        timeout_s=opts.request_timeout,
        read_retry_ticks=opts.election_ticks,
        no_leader_ticks=opts.no_leader_ticks(),
        max_batch_commands=opts.max_batch_commands,
        snapshot_threshold=opts.snapshot_threshold,
        snapshot_keep=opts.snapshot_keep,
        snapshot_threshold_bytes=opts.snapshot_threshold_bytes,
        snapshot_keep_bytes=opts.snapshot_keep_bytes,
        notice_delay=_COMMIT_NOTICE_DELAY,
    )


class RaftDriver:
    def __init__(
        self,
        opts: NodeOptions,
        raw: RawNode,
        storage: Storage,
        state_machine: StateMachine,
        send: Send,
        applied: int = 0,
        snapshot_index: int = 0,
        reachable: Callable[[int], bool] = lambda peer: True,
        declared_level: Callable[[int], int | None] = lambda peer: None,
        persisted_index: int = 0,
        durable: HardState | None = None,
        stats: NodeStats | None = None,
    ) -> None:
        self._opts = opts
        self._storage = storage
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qcore-io-{opts.id}")
        # Serialising the store: its own thread, so that storage work never queues behind it.
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qcore-snap-{opts.id}")
        self._build_task: asyncio.Task[None] | None = None
        self._child: snapshot_child.ChildBuild | None = None  # a snapshot build's child process
        self.replica = Replica(
            replica_options(opts), raw, storage, state_machine, send,
            origin=f"{opts.id}:{os.urandom(4).hex()}",
            clock=lambda: self._loop.time(),
            start_build=self._start_build,
            reachable=reachable,
            declared_level=declared_level,
            applied=applied,
            snapshot_index=snapshot_index,
            persisted_index=persisted_index,
            durable=durable,
            stats=stats,
        )
        self.stats = self.replica.stats  # read by /metrics
        self.removal = RemovalNotice()  # peers saying this node was removed while it was down
        self._wake = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        # Cached: asyncio.get_running_loop() makes a getpid() syscall per
        # call on Python 3.11, and every request asks for a future.
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"raft-driver-{self._opts.id}")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"raft-ticker-{self._opts.id}")

    async def stop(self) -> None:
        """Stop the loop, fail whatever is still waiting, close storage."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        if self._child is not None:  # a build in progress is dropped, its child process with it
            self._child.kill()
        for task in (self._ticker, self._task, self._build_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._timer is not None:
            self._timer.cancel()
        exc = RequestFailed("node is shutting down", Kind.SHUTTING_DOWN)
        self.replica.close(exc)
        for _, fut in self._watchers:
            if not fut.done():
                fut.set_exception(exc)
        await asyncio.get_running_loop().run_in_executor(self._io, self._storage.close)
        self._io.shutdown(wait=True)
        self._builder.shutdown(wait=False)  # a build in progress is simply dropped

    # ------------------------------------------------------------ observers
    @property
    def raw(self) -> RawNode:
        """For read-only inspection (status); never mutate outside the round."""
        return self.replica.raw

    @property
    def applied(self) -> int:
        return self.replica.applied

    @property
    def snapshot_index(self) -> int:
        return self.replica.snapshot_index

    @property
    def persisted_index(self) -> int:
        return self.replica.persisted_index

    @property
    def tick_count(self) -> int:
        return self.replica.tick_count

    @property
    def after_apply(self) -> Callable[[], None]:
        return self.replica.after_apply

    @after_apply.setter
    def after_apply(self, fn: Callable[[], None]) -> None:
        """Called once a Ready's entries are applied: the node flushes the
        replies its `on_settled` callbacks queued."""
        self.replica.after_apply = fn

    def status(self) -> Status:
        return self.replica.status()

    def disk_bytes(self) -> tuple[int, int] | None:
        """(log, snapshot) file sizes in the data dir; None with --in-memory."""
        storage = self._storage
        return storage.disk_bytes() if isinstance(storage, FileStorage) else None

    def is_leader(self) -> bool:
        return self.replica.is_leader()

    def leader_id(self) -> int:
        return self.replica.leader_id()

    def conf_state(self) -> ConfState:
        return self.replica.conf_state()

    def entry_level(self) -> int:
        """The semantics level this node proposes at (Replica.entry_level)."""
        return self.replica.entry_level

    def initialised(self) -> bool:
        return self.replica.initialised()

    def removed(self) -> bool:
        """Removed by a configuration this node applied, or, as peers say, by one it never received."""
        return self.replica.removed() or self.removal.reason(self.replica.applied) is not None

    def address_of(self, node_id: int) -> str | None:
        return self.replica.address_of(node_id)

    # --------------------------------------------------------------- inputs
    def step(self, msg: PeerMessage) -> None:
        self.replica.step(msg)
        self._wake.set()

    def report_unreachable(self, to: int) -> None:
        self.replica.report_unreachable(to)
        self._wake.set()

    def report_snapshot(self, to: int, ok: bool) -> None:
        self.replica.report_snapshot(to, ok)
        self._wake.set()

    def report_link_down(self, peer: int) -> None:
        self.replica.report_link_down(peer)
        self._wake.set()

    def transfer_leader(self, to: int) -> None:
        self.replica.transfer_leader(to)
        self._wake.set()

    def campaign_if_sole_voter(self) -> None:
        self.replica.campaign_if_sole_voter()
        self._wake.set()

    def bootstrap(
        self, addresses: dict[int, str], load_config_json: Any, at: tuple[int, int] | None = None,
        auth: Any = None,
    ) -> asyncio.Future[None]:
        """Init: write the initial configuration and the config-file entry
        (stamped `at`, or now; every member of an --initial-cluster writes
        the same entries, so they pass the same `at`); `auth` starts users on.
        The config-file entry's level is the proposal level with no member heard from
        yet (entries.proposal_level): this build's alone, 1 with other members, the same
        on every member of an --initial-cluster whatever has connected already."""
        fut: asyncio.Future[None] = self._loop.create_future()
        got = proposal_level(ENTRY_LEVEL, self._opts.id, self._opts.id, addresses, lambda peer: None)
        level = ENTRY_LEVEL if got is None else got[0]
        self.replica.bootstrap(addresses, [encode_init(load_config_json, at, auth, level)], fut)
        self._wake.set()
        return fut

    def propose_command(
        self,
        command_json: Any,
        command: Any = None,
        on_settled: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> asyncio.Future[Any]:
        """A write (see `Replica.propose_command`). `on_settled(fut)` is
        called as soon as the future is settled, inside the round."""
        fut: asyncio.Future[Any] = (
            self._loop.create_future() if on_settled is None else SettledNow(self._loop, on_settled)
        )
        self.replica.propose_command(command_json, command, fut)
        self._wake.set()
        return fut

    def propose_conf_change(self, cc: ConfChange) -> asyncio.Future[tuple[int, int]]:
        """Resolves with (term, index) once the change is applied (not just committed)."""
        fut: asyncio.Future[tuple[int, int]] = self._loop.create_future()
        self.replica.propose_conf_change(cc, fut)
        self._wake.set()
        return fut

    def request_snapshot(self, min_index: int) -> "asyncio.Future[Snapshot]":
        """A snapshot of the state machine at `min_index` or later (for a backup)."""
        fut: asyncio.Future[Snapshot] = self._loop.create_future()
        self.replica.request_snapshot(min_index, fut)
        self._wake.set()
        return fut

    def read_barrier(self) -> asyncio.Future[int]:
        """Resolves (with the read index) once local state is at least as
        new as the cluster's commit index at the time of the call."""
        fut: asyncio.Future[int] = self._loop.create_future()
        self.replica.read_barrier(fut)
        self._wake.set()
        return fut

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (checked after every round)."""
        if predicate():
            return True
        fut: asyncio.Future[None] = self._loop.create_future()
        # A waiter cancelled (the node stopping) stops listening before stop() fails its future:
        # retrieve the exception, or asyncio logs "Future exception was never retrieved" at ERROR.
        fut.add_done_callback(_retrieve_exception)
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
        # A random phase: nodes started together do not tick in step, so timers
        # drawn in ticks (elections, the early campaign) differ within a tick too.
        next_at = loop.time() - random.uniform(0, interval)
        while not self._stopped:
            next_at += interval
            late = loop.time() - next_at
            if late > interval:
                # Held up past more than a tick (a stalled loop, SIGSTOP, a paused VM): the missed
                # ticks are dropped, as Go's time.Ticker drops them for etcd. Fired back to back they
                # would run election timeouts and request deadlines out before the messages that
                # came meanwhile are read. The phase is kept.
                next_at += late // interval * interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.replica.tick()
            self._wake.set()

    async def _run(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except LevelUnsupported as exc:
                # Applying it by older rules could diverge from the nodes that
                # know its level: stop before it, and again at each restart.
                stop_process(EXIT_NEEDS_UPGRADE, str(exc), trace=False)
            except Exception:
                # The core's state is unknown after a failed step (it may
                # have changed before raising): stop rather than go on.
                stop_process(EXIT_BROKEN_INVARIANT, "a Raft round failed (a broken invariant)")

    async def _round(self) -> None:
        replica = self.replica
        while (rd := replica.next_ready()) is not None:
            if replica.before_persist(rd):
                await asyncio.sleep(0)  # the write below blocks the loop: let the queued replies out first
            await self._save(rd)
            replica.after_persist(rd)
        snap = replica.end_round()
        if snap is not None:
            try:
                t0 = time.perf_counter()
                await self._loop.run_in_executor(self._io, self._storage.save_snapshot, snap)
                self.stats.snapshot_save.observe(time.perf_counter() - t0)
            except StorageError:
                # A write that failed (a full disk): Raft state, as for the log in _save; any
                # other exception is a snapshot that does not fit the log, a broken invariant.
                stop_process(EXIT_STORAGE_FAILED, "persisting a snapshot failed")
            replica.snapshot_saved(snap)
            malloc_policy.trim()  # the log behind the snapshot and the build's buffers are free now
        self._check_watchers()
        if self._timer is None:
            due = replica.timer_due_at()
            if due is not None:
                self._timer = self._loop.call_at(due, self._on_timer)

    async def _save(self, rd: Ready) -> None:
        """Write (and fsync) a Ready: entries on the loop, a snapshot on the
        storage thread. Entries are written on the loop, by leader and
        follower alike: a hand-off to a thread costs more wake-ups and GIL
        switches than the overlap saves (docs/benchmarks.md)."""
        try:
            if rd.snapshot is not None and not rd.snapshot.is_empty():  # one received from the leader
                t0 = time.perf_counter()
                await self._loop.run_in_executor(self._io, self.replica.save, rd)
                self.stats.snapshot_save.observe(time.perf_counter() - t0)
            elif rd.must_sync:
                t0 = time.perf_counter()
                self.replica.save(rd)
                self.stats.fsync.observe(time.perf_counter() - t0)
            else:
                self.replica.save(rd)
        except Exception:
            # After a failed write or fsync nothing is known about what is on
            # disk (the kernel may have dropped the dirty pages), and Raft's
            # promises rest on it.
            stop_process(EXIT_STORAGE_FAILED, "persisting Raft state failed")

    def _on_timer(self) -> None:
        self._timer = None
        replica = self.replica
        replica.on_timer(self._loop.time() + _TIMER_SLACK)
        due = replica.timer_due_at()
        if due is not None and not self._stopped:
            self._timer = self._loop.call_at(due, self._on_timer)

    def _start_build(self, index: int, make_builder: MakeBuilder) -> None:
        """Within the round: fork the build's child now (it sees the state at
        `index`), or take a builder holding a copy for the builder thread."""
        child = None
        if self._opts.snapshot_build == "process" and snapshot_child.available():
            try:
                child = snapshot_child.ChildBuild.start(make_builder(False))
            except OSError:
                log.exception("could not fork a process to build the snapshot at index %d; using a thread", index)
        run: Builder
        if child is not None:
            self._child = child
            run, where = child.collect, "in a child process"
        else:
            run, where = make_builder(True), "on a thread"
        self._build_task = asyncio.create_task(self._build(index, run, where), name=f"snapshot-{self._opts.id}")

    async def _build(self, index: int, run: Builder, where: str) -> None:
        data: bytes | None = None
        try:
            t0 = time.perf_counter()
            data = await self._loop.run_in_executor(self._builder, run)
            took = time.perf_counter() - t0
            self.stats.snapshot_build.observe(took)
            log.info("serialised the snapshot at index %d in %.2f s (%s)", index, took, where)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("building a snapshot at index %d failed", index)
        finally:
            self._child = None
        self._build_task = None
        self.replica.snapshot_built(index, data)
        self._wake.set()

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
