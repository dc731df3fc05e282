"""Server push of committed field changes (SPEC 6; user guide: docs/notifications.md).

Every node — followers too — applies the same log, so every node can serve
notifications: the driver calls :meth:`NotificationHub.publish` with the field
changes of each command of an applied entry as it is applied (so context reads
see the store as that command left it), in log order. The hub

* keeps the last ``retain`` changes in a ring (the *window*), so that a client
  that lost its connection can register again with ``from_index`` and get
  exactly what it missed, as etcd resumes a watch from a revision;
* indexes live registrations by ``(entity, field)`` and ``(field, entity
  type)``, so a change nobody listens to costs two dict misses;
* never blocks the driver: a matching change is encoded once (per distinct
  context) and queued on a bounded per-connection outbox that one sender
  task per connection drains, writing what has piled up in one go.

A registration is either *live* (publish queues its frames) or *catching up*
(it has a cursor into the window and its connection's sender reads the
window from there; publish leaves it alone). Replay from ``from_index`` is a
catch-up that starts at the first retained change of that index. A
connection whose outbox is full does not lose anything either: the
registration that found it full switches to catching up from the change it
could not queue — etcd's "unsynced watchers". Only when the window moves past
a catching-up cursor has the connection really fallen behind: it is sent an
``Error`` frame saying so and closed (code 1013); the client resumes with
``from_index`` on any node that still retains the changes.

Order: an accepted registration's response is queued on the same outbox,
ahead of its replay and live changes, so it is written first and the client
knows the token before the first notification arrives under it.

Exactness: ``register`` reads the window and installs the registration in one
synchronous step, publish runs synchronously in the driver task on the same
loop, and a catch-up turns live in the same step in which it finds the window
exhausted — so no change falls between "replayed" and "live", nor is in both.

What the hub reads from the store (a registration's target, type lineage,
context paths, the encoded body) is in :mod:`qcore.node.notify_reads`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Callable

import orjson
from websockets.exceptions import ConnectionClosed

from qcore.node.notify_reads import check_type, context_of, encode_change, resolve_entity, type_lineage
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error, refusal
from qcore.protocol.values import CodecError, decode_notify_config
from qcore.wsfast import send_frames
from qcore.store import Change, NotifyConfigEntityId, NotifyConfigEntityType, Store

log = logging.getLogger(__name__)

__all__ = ["NotificationHub", "OVERFLOW_CLOSE_CODE"]

#: Close code of a connection that fell behind the window (or whose stream a
#: snapshot install broke): RFC 6455 "Try Again Later" — reconnect and resume.
OVERFLOW_CLOSE_CODE = 1013
_YIELD_EVERY = 4096  # window records scanned by a catch-up before letting the loop run
_BATCH = 256  # frames written to a connection at once
_BATCH_BYTES = 1 << 20  # ... or fewer, once they add up to this many bytes

_FRAME_HEAD = b'{"Notification":{"token":'
_FRAME_MID = b',"notification":'
_FRAME_TAIL = b"}}"

# A retained change: (log index, change, approximate bytes it keeps alive, its
# entity type's lineage when it was applied: a later SetSchema may move the type,
# and a replay must match type registrations as the live stream did).
# Tuples: the window holds up to `retain` of them and this is the cheapest
# record Python has (the lineage tuples are shared, one per type and schema set).
Record = tuple[int, Change, int, tuple[str, ...]]


class _Registration:
    """One subscription of one connection.

    ``entity`` is the id number of the watched entity (ids are unique across
    types) for an EntityId registration, else None; ``entity_type`` is set for
    a type-wide one. ``field`` is a plain field name: a ``->`` path was
    resolved to its target when registering. ``min_index`` drops changes of
    entries older than the ``from_index`` asked for (a lagging node applies
    them after the registration). ``cursor`` is None while live, else the
    window sequence number of the next change to look at.
    """

    __slots__ = ("token", "token_json", "outbox", "entity", "entity_type", "field", "on_change", "context",
                 "min_index", "cursor", "active")

    def __init__(self, token: int, outbox: "_Outbox", entity: int | None, entity_type: str | None, field: str,
                 on_change: bool, context: tuple[str, ...], min_index: int) -> None:
        self.token = token
        self.token_json = orjson.dumps(token)
        self.outbox = outbox
        self.entity = entity
        self.entity_type = entity_type
        self.field = field
        self.on_change = on_change
        self.context = context
        self.min_index = min_index
        self.cursor: int | None = None
        self.active = True

    def frame(self, body: bytes) -> bytes:
        return _FRAME_HEAD + self.token_json + _FRAME_MID + body + _FRAME_TAIL


_CATCH_UP = object()  # queue marker: read the window from the registration's cursor


class _Frame:
    """A whole frame queued as is: a registration's response, which must leave
    ahead of the registration's first notification on the same queue."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Outbox:
    """What waits to be sent on one connection, and the task sending it.

    ``backlog`` counts queued frames and ``backlog_bytes`` their bodies
    (bounded by the hub's ``queue_limit`` and ``queue_bytes``); catch-up
    markers are not frames and do not count.
    """

    __slots__ = ("conn", "regs", "queue", "backlog", "backlog_bytes", "wake", "task", "closing")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.regs: dict[int, _Registration] = {}
        self.queue: deque[tuple[_Registration, Any]] = deque()
        self.backlog = 0
        self.backlog_bytes = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closing = False


class NotificationHub:
    """Registrations, the retained window, and delivery (see the module docstring).

    ``store()`` returns the live store (a snapshot install replaces it).
    ``retain``: changes kept for ``from_index`` and catch-up;
    ``max_per_conn``: registrations per connection; ``queue_limit`` and
    ``queue_bytes``: frames, and bytes of them, queued per connection before
    its registrations catch up from the window (a body is shared by every
    connection it goes to, but counts on each).
    ``retain_bytes`` also bounds the window by the approximate memory its
    records keep alive (old and new values: a large field rewritten often
    would otherwise pin ``retain`` copies of it).
    ``barrier``, if given, is awaited before a registration is validated —
    the node's linearizable-read barrier, so that a follower that has not yet
    applied an entity the client already saw created does not refuse it.
    ``viewer(conn)``, if given, says what a connection may see (SPEC 8.3:
    qcore.node.users.Viewer, or None for everything): a registration needs
    ``read`` on its field and context paths, and each change is checked
    again when it is sent, against the roles as they are then, so a revoke
    stops its notifications and nulls its context paths.
    """

    def __init__(self, retain: int, max_per_conn: int, queue_limit: int, store: Callable[[], Store],
                 *, retain_bytes: int = 128 << 20, queue_bytes: int = 16 << 20, close_timeout: float = 2.0,
                 barrier: Callable[[], Awaitable[None]] | None = None,
                 viewer: Callable[[Any], Any] | None = None) -> None:
        self._retain = max(0, retain)
        self._retain_bytes = retain_bytes
        self._max_per_conn = max_per_conn
        self._queue_limit = max(1, queue_limit)
        self._queue_bytes = max(1, queue_bytes)
        self._store = store
        self._close_timeout = close_timeout
        self._barrier = barrier
        self._viewer = viewer if viewer is not None else (lambda conn: None)
        # The window: change number s (counted from the last restore) is at
        # _ring[s % retain] while _oldest <= s < _total (and _total - _oldest <= retain).
        self._ring: list[Record | None] = [None] * self._retain
        self._total = 0
        self._oldest = 0
        self._bytes = 0  # approximate memory held by the window's records
        self._floor = 1  # every change of an entry with index >= _floor is in the window
        self._lineages: dict[str, tuple[str, ...]] = {}  # type -> lineage under _lineages_of
        self._lineages_of: object = None  # the store's schemas (catalog) _lineages was worked out from
        self._outboxes: dict[Any, _Outbox] = {}
        self._by_entity: dict[int, dict[str, list[_Registration]]] = {}
        self._by_type: dict[str, dict[str, list[_Registration]]] = {}  # field -> type -> regs
        self._lagging: set[_Registration] = set()  # registrations catching up
        self._count = 0
        self._next_token = 1
        self._closers: set[asyncio.Task[None]] = set()
        self.delivered = 0  # notifications written to connections (not the registrations' responses)
        self.caught_up = 0  # switches from live to catching up because an outbox was full
        self.cut_off = 0  # connections closed because they fell behind

    # ------------------------------------------------------------ connections
    def attach(self, conn: Any) -> None:
        """A connection opened (client or peer); it may register from now on."""
        if conn not in self._outboxes:
            self._outboxes[conn] = _Outbox(conn)

    def detach(self, conn: Any) -> None:
        """A connection closed: its registrations vanish with it."""
        box = self._outboxes.pop(conn, None)
        if box is None:
            return
        box.closing = True
        self._drop_all(box)
        if box.task is not None and not box.task.done():
            box.task.cancel()

    # ---------------------------------------------------------------- publish
    def publish(self, index: int, changes: list[Change]) -> None:
        """The changes one command of the log entry at ``index`` made were applied; the
        entry's next command is not yet (driver task; must not block)."""
        first = self._total
        retain = self._retain
        store = self._store()
        lineages = self._lineages_now(store)
        if retain:
            ring = self._ring
            for ch in changes:
                total = self._total
                if total - self._oldest >= retain:
                    self._evict()  # frees the slot this change goes into
                size = ch.approx_bytes()
                typ = ch.entity_id.typ
                lineage = lineages.get(typ)
                if lineage is None:
                    lineage = lineages[typ] = type_lineage(store, typ)
                ring[total % retain] = (index, ch, size, lineage)
                self._total = total + 1
                self._bytes += size
            while self._bytes > self._retain_bytes and self._oldest < self._total:
                self._evict()
            if self._lagging:
                self._cut_off_evicted()
        else:
            self._total += len(changes)
            self._floor = index + 1
        if not self._count:
            return
        by_entity = self._by_entity
        by_type = self._by_type
        for seq, ch in enumerate(changes, first):
            fields = by_entity.get(ch.entity_id.id)
            direct = fields.get(ch.field_type) if fields is not None else None
            typed = by_type.get(ch.field_type)
            if direct is None and typed is None:
                continue
            shared: dict[Any, bytes] = {}  # body by context paths (and user): encoded once per distinct context
            if direct is not None:
                for reg in direct:
                    self._offer(reg, seq, index, ch, store, shared)
            if typed is not None:
                typ = ch.entity_id.typ
                lineage = lineages.get(typ)
                if lineage is None:
                    lineage = lineages[typ] = type_lineage(store, typ)
                for t in lineage:
                    regs = typed.get(t)
                    if regs is not None:
                        for reg in regs:
                            self._offer(reg, seq, index, ch, store, shared)

    def _offer(self, reg: _Registration, seq: int, index: int, ch: Change, store: Store,
               shared: dict[Any, bytes]) -> None:
        if reg.cursor is not None or not reg.active:
            return  # catching up (it will read this change from the window), or cut off during this publish
        if index < reg.min_index or (reg.on_change and ch.old_value == ch.new_value):
            return
        box = reg.outbox
        view = self._viewer(box.conn)
        if view is not None and not view.may_read(ch.entity_id.typ, ch.field_type):
            return
        if box.backlog >= self._queue_limit or box.backlog_bytes >= self._queue_bytes:
            if not self._retain:
                self._cut_off(box, f"{box.backlog} notifications ({box.backlog_bytes} bytes) were waiting to be "
                                   f"sent (limit {self._queue_limit}, {self._queue_bytes} bytes) and no history "
                                   "is retained to catch up from")
                return
            self.caught_up += 1
            self._start_catch_up(reg, seq)
            return
        key = reg.context if view is None else (view.name, reg.context)  # what differs per user: the context
        body = shared.get(key)
        if body is None:
            body = shared[key] = encode_change(index, ch, self._context(view, store, ch, reg.context))
        box.backlog += 1
        box.backlog_bytes += len(body)
        box.queue.append((reg, body))
        box.wake.set()

    @staticmethod
    def _context(view: Any, store: Store, ch: Change, paths: tuple[str, ...]) -> dict[str, Any]:
        if not paths:
            return {}
        return context_of(store, ch, paths) if view is None else view.context(ch, paths)

    def on_restore(self, index: int) -> None:
        """The store was replaced by a snapshot at ``index``: the history before it is gone.

        Registrations would silently miss the changes the snapshot skipped,
        so their connections are cut off; they resume with ``from_index``
        (here from ``index + 1``, or on another node).
        """
        self._ring = [None] * self._retain
        self._total = self._oldest = self._bytes = 0
        self._floor = index + 1
        self._lagging.clear()
        for box in list(self._outboxes.values()):
            if box.regs:
                self._cut_off(box, f"this node installed a snapshot at log index {index}, so changes up to it "
                                   "cannot be notified from here")

    # ------------------------------------------------------------ requests
    async def register(self, msg: m.RegisterNotification, conn: Any) -> m.RegisterNotificationResponse | None:
        """Validate, replay the window from ``from_index`` and go live (no await in between).

        A refusal is returned for the caller to send. An accepted registration's
        response is queued on the connection's outbox instead, ahead of the
        registration's first notification, and None is returned: a client can
        only take the replay once it knows the token it comes under.
        """
        if self._barrier is not None:
            await self._barrier()  # a failure propagates: the server answers it with an Error frame
        box = self._outboxes.get(conn)
        if box is None:  # closed while we waited (attach() always comes before the first frame)
            return refusal(m.RegisterNotificationResponse, msg.id, Kind.SHUTTING_DOWN, "this connection is closed")
        refused = self._register(msg, box)
        if refused is None:
            return None
        kind, text = refused
        return refusal(m.RegisterNotificationResponse, msg.id, kind, text)

    def _register(self, msg: m.RegisterNotification, box: _Outbox) -> tuple[Kind, str] | None:
        """None once the registration and its response are queued, else why it is refused."""
        if box.closing:
            return Kind.SHUTTING_DOWN, "this connection is being closed"
        if len(box.regs) >= self._max_per_conn:
            return Kind.OVERLOADED, (f"too many notification registrations on this connection (limit "
                                     f"{self._max_per_conn}); unregister some or open another connection")
        try:
            cfg = decode_notify_config(msg.config)
        except CodecError as exc:
            return Kind.INVALID, f"config: {exc}"
        view = self._viewer(box.conn)
        if view is not None:  # before the store is asked: a refusal says nothing of what exists
            refused = view.refusal(cfg)
            if refused is not None:
                return refused
        store = self._store()
        try:
            target: Any = None
            if isinstance(cfg, NotifyConfigEntityId):
                target, fld = resolve_entity(store, cfg)
                entity_num, entity_type = target.id, None
            else:
                assert isinstance(cfg, NotifyConfigEntityType)
                fld = cfg.field_type
                entity_num, entity_type = None, check_type(store, cfg.entity_type, fld)
        except ValueError as exc:
            return Kind.INVALID, str(exc)
        if view is not None and target is not None:
            refused = view.context_refusal(cfg, target)
            if refused is not None:
                return refused
        start = 0
        if msg.from_index is not None:
            start = max(msg.from_index, 1)
            if start < self._floor:
                return Kind.COMPACTED, (
                    f"compacted: changes before log index {self._floor} are no longer retained on this node "
                    f"(asked from {msg.from_index}); re-read the state, then register without from_index"
                )
        assert isinstance(cfg, (NotifyConfigEntityId, NotifyConfigEntityType))
        reg = _Registration(self._next_token, box, entity_num, entity_type, fld, cfg.trigger_on_change,
                            tuple(cfg.context), start)
        self._next_token += 1
        self._install(reg)
        response = m.encode_message(m.RegisterNotificationResponse(msg.id, m.ok(reg.token)))
        box.backlog += 1
        box.backlog_bytes += len(response)
        box.queue.append((reg, _Frame(response)))
        if msg.from_index is not None:
            cursor = self._first_at(start)
            if cursor < self._total:
                self._start_catch_up(reg, cursor)
        box.wake.set()
        self._ensure_sender(box)
        return None

    async def unregister(self, msg: m.UnregisterNotification, conn: Any) -> m.UnregisterNotificationResponse:
        """Stop a registration; nothing more is sent for its token once this is answered."""
        box = self._outboxes.get(conn)
        token = msg.token
        reg = box.regs.get(token) if box is not None and type(token) is int else None
        if reg is None:
            return refusal(m.UnregisterNotificationResponse, msg.id, Kind.NOT_FOUND,
                           f"unknown notification token {token!r} on this connection")
        self._remove(reg)
        return m.UnregisterNotificationResponse(msg.id, m.ok(None))

    # ---------------------------------------------------------- introspection
    def stats(self) -> dict[str, int]:
        """Counters for metrics and benchmarks."""
        return {
            "registrations": self._count,
            "catching_up": len(self._lagging),
            "retained": self._total - self._oldest,
            "retained_bytes": self._bytes,
            "retained_from_index": self._floor,
            "delivered": self.delivered,
            "caught_up": self.caught_up,
            "cut_off": self.cut_off,
        }

    # ------------------------------------------------------------ the window
    def _first_at(self, start: int) -> int:
        """The window number of the first retained change with index >= start (or _total)."""
        ring, retain = self._ring, self._retain
        lo, hi = self._oldest, self._total
        while lo < hi:  # indexes never decrease along the window: bisect
            mid = (lo + hi) // 2
            if ring[mid % retain][0] < start:  # type: ignore[index]
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _start_catch_up(self, reg: _Registration, cursor: int) -> None:
        reg.cursor = cursor
        self._lagging.add(reg)
        box = reg.outbox
        box.queue.append((reg, _CATCH_UP))
        box.wake.set()

    def _evict(self) -> None:
        """Drop the oldest retained change (the window is full by count or by bytes)."""
        slot = self._oldest % self._retain
        index, _, size, _ = self._ring[slot]  # type: ignore[misc]
        self._ring[slot] = None
        self._bytes -= size
        self._oldest += 1
        self._floor = index + 1

    def _cut_off_evicted(self) -> None:
        oldest = self._oldest
        for reg in [r for r in self._lagging if r.cursor is not None and r.cursor < oldest]:
            self._cut_off(reg.outbox, f"it fell behind: changes it had not been sent yet left this node's window "
                                      f"(at most {self._retain} changes, about {self._retain_bytes >> 20} MiB)")

    def _lineages_now(self, store: Store) -> dict[str, tuple[str, ...]]:
        """Type -> lineage under the store's schemas as they are now (worked out again after a
        schema change or a restore: both replace the store's catalog)."""
        if store.catalog is not self._lineages_of:
            self._lineages_of = store.catalog
            self._lineages = {}
        return self._lineages

    def _matches(self, reg: _Registration, ch: Change, lineage: tuple[str, ...]) -> bool:
        """Does a retained change match ``reg``? ``lineage``: the change's type's when it was applied."""
        if ch.field_type != reg.field:
            return False
        if reg.entity is not None:
            if ch.entity_id.id != reg.entity:
                return False
        elif reg.entity_type not in lineage:
            return False
        return not (reg.on_change and ch.old_value == ch.new_value)

    # ------------------------------------------------------------- registry
    def _install(self, reg: _Registration) -> None:
        if reg.entity is not None:
            self._by_entity.setdefault(reg.entity, {}).setdefault(reg.field, []).append(reg)
        else:
            assert reg.entity_type is not None
            self._by_type.setdefault(reg.field, {}).setdefault(reg.entity_type, []).append(reg)
        reg.outbox.regs[reg.token] = reg
        self._count += 1

    def _remove(self, reg: _Registration) -> None:
        if not reg.active:
            return
        reg.active = False
        reg.outbox.regs.pop(reg.token, None)
        self._lagging.discard(reg)
        self._count -= 1
        outer: dict[Any, dict[Any, list[_Registration]]]
        key: Any
        inner: Any
        if reg.entity is not None:
            outer, key, inner = self._by_entity, reg.entity, reg.field
        else:
            outer, key, inner = self._by_type, reg.field, reg.entity_type
        d = outer.get(key)
        regs = d.get(inner) if d is not None else None
        if d is None or regs is None:
            return
        # Copy, not mutate: publish may be iterating this very list (a
        # connection cut off mid-publish removes its registrations).
        rest = [r for r in regs if r is not reg]
        if rest:
            d[inner] = rest
        else:
            del d[inner]
            if not d:
                del outer[key]

    def _drop_all(self, box: _Outbox) -> None:
        for reg in list(box.regs.values()):
            self._remove(reg)
        box.queue.clear()
        box.backlog = 0
        box.backlog_bytes = 0

    # -------------------------------------------------------------- sending
    def _ensure_sender(self, box: _Outbox) -> None:
        if box.task is None or box.task.done():
            box.task = asyncio.get_running_loop().create_task(self._send_loop(box))

    async def _send_loop(self, box: _Outbox) -> None:
        """Drain one connection's outbox; `ws.send` waits while the client reads slowly."""
        ws = box.conn.ws
        queue = box.queue
        try:
            while not box.closing:
                if not queue:
                    box.wake.clear()
                    await box.wake.wait()
                    continue
                reg, item = queue[0]
                if item is _CATCH_UP:
                    queue.popleft()
                    await self._catch_up(box, reg)
                    continue
                # Every queued frame up to the next catch-up marker, checked
                # and written with no await in between (unregister is exact).
                frames: list[bytes] = []
                notes = 0  # of the frames, notifications (not registration responses)
                size = 0
                while queue and len(frames) < _BATCH and size < _BATCH_BYTES:
                    reg, item = queue[0]
                    if item is _CATCH_UP:
                        break
                    queue.popleft()
                    body = item.data if item.__class__ is _Frame else item
                    box.backlog -= 1
                    box.backlog_bytes -= len(body)
                    size += len(body)
                    if item.__class__ is _Frame:
                        frames.append(body)
                    elif reg.active:
                        frames.append(reg.frame(body))
                        notes += 1
                if frames:
                    await send_frames(ws, frames)
                    self.delivered += notes
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification sender failed; closing the connection")
            self._cut_off(box, "of an internal error while sending notifications")

    async def _catch_up(self, box: _Outbox, reg: _Registration) -> None:
        """Send ``reg``'s matching changes from the window, then make it live again.

        Each round scans synchronously, collecting up to a batch of frames
        (or a few thousand non-matching changes), then writes them; the
        window end is checked again after every write, so changes published
        meanwhile are scanned too before the registration turns live.
        """
        ws = box.conn.ws
        while reg.active and not box.closing:
            frames: list[bytes] = []
            scanned = 0
            total, retain = self._total, self._retain
            cur = reg.cursor
            assert cur is not None
            if cur < self._oldest:  # publish normally cuts off first; belt and braces
                self._cut_off(box, "it fell behind the retained window")
                return
            size = 0
            while cur < total and len(frames) < _BATCH and size < _BATCH_BYTES and scanned < _YIELD_EVERY:
                index, ch, _, lineage = self._ring[cur % retain]  # type: ignore[misc]
                cur += 1
                scanned += 1
                if index >= reg.min_index and self._matches(reg, ch, lineage):
                    view = self._viewer(box.conn)
                    if view is not None and not view.may_read(ch.entity_id.typ, ch.field_type):
                        continue
                    # Context is read now: the state right after that entry is gone (docs/notifications.md).
                    ctx = self._context(view, self._store(), ch, reg.context)
                    frames.append(reg.frame(encode_change(index, ch, ctx)))
                    size += len(frames[-1])
            reg.cursor = cur
            if frames:
                await send_frames(ws, frames)
                self.delivered += len(frames)
            elif cur >= total:
                # Window exhausted and nothing pending, with no await since the
                # check: publish queues this registration's frames from the next change on.
                reg.cursor = None
                self._lagging.discard(reg)
                return
            else:
                await asyncio.sleep(0)  # a long run of non-matching changes: let the node breathe

    def _cut_off(self, box: _Outbox, why: str) -> None:
        """Stop feeding a connection, tell it why and close it (never blocks the caller)."""
        if box.closing:
            return
        box.closing = True
        self.cut_off += 1
        self._drop_all(box)
        box.wake.set()
        log.warning("closing a notification connection because %s", why)
        text = (f"notifications stopped because {why}. Reconnect and register again with from_index = the "
                "log_index of the last notification received to resume")
        try:
            task = asyncio.get_running_loop().create_task(self._close(box, text))
        except RuntimeError:  # no running loop (the hub used outside asyncio): nothing to close
            return
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close(self, box: _Outbox, text: str) -> None:
        ws = box.conn.ws
        try:
            await asyncio.wait_for(ws.send(m.encode_message(error(m.new_id(), Kind.FELL_BEHIND, text)), text=True),
                                   self._close_timeout)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        try:
            await ws.close(OVERFLOW_CLOSE_CODE, "notifications fell behind; resume with from_index")
        except ConnectionClosed:
            pass
