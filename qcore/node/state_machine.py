"""Applies committed log entries to the entity store and the auth state.

The store and the auth state are pure (qcore.store, qcore.store.auth); this
adapter knows the node's entry format (qcore.node.entries), answers the
proposer's waiters with encoded responses, and hands every field change to
the notification hub with the log index it came from.

With users on (SPEC 8.3) a command is checked here, as it is applied,
against the users and roles at its log position: a revoke holds for every
command ordered after it, on every node alike. A refused command changes
nothing and its response says why; a write's ``writer_id`` becomes the
user's linked entity.

An entry is applied by the rules of its semantics level (qcore.node.entries),
not this build's: a node of a newer build following an older leader makes
what the older nodes make. An entry of a level above this build's raises
LevelUnsupported before it changes anything; the node stops on it (the
driver), with the entry still unapplied, and stops on it again after a restart.

The state machine's snapshot is the store's snapshot alone while the auth
state was never changed and no entry above level 1 was applied (as before
users and levels existed); otherwise ``QCSM1\n``, the auth state's JSON
length (8 bytes, big-endian), that JSON (with ``"entry_level"``, the highest
level applied, when above 1), then the store's snapshot.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import orjson

from qcore.node import malloc_policy
from qcore.node.entries import (
    ENTRY_LEVEL,
    LEVEL_BEFORE_LEVELS,
    Attributed,
    AuthCommand,
    Batch,
    LevelUnsupported,
    decode_batch,
    decode_command,
    encode_batch,
    entry_level,
    lowered,
    new_batch,
    supported,
)
from qcore.protocol.reply_size import ReadMeter, over_limit
from qcore.protocol.values import (
    CodecError,
    decode_load_config,
    encode_command_response,
    encode_refusal,
)
from qcore.raft.types import Entry, EntryType
from qcore.store import (
    Change,
    DeleteEntity,
    DeleteEntityResponse,
    EntityExists,
    EntityId,
    LoadConfig,
    Read,
    SetSchema,
    Store,
    StoreError,
    Timestamp,
    UpdateEntity,
)
from qcore.store.access import GrantsCache, denied_change, denied_request, paths_after_a_write, stamp_writer
from qcore.store.auth import AuthRefused, AuthState, InitAdmin, User
from qcore.store.permissions import Grants
from qcore.store.schema import PATH_SEP

log = logging.getLogger(__name__)

# Called after each command of an entry that changed something (entry index, its changes), before
# the next command is applied: a notification's context is read as the command left the store, not
# as later commands group-committed into the same entry did (qcore.node.notify).
ChangeSink = Callable[[int, list[Change]], None]

_SNAPSHOT_MAGIC = b"QCSM1\n"
_SCHEMA_CHANGES = (SetSchema, LoadConfig)  # inheritance may change: decisions are worked out again


def _meter(command: Any, limit: int) -> ReadMeter | None:
    """What counts the reply to a batch with Reads this node proposed, as the store
    makes it (other replies echo at most their request, a frame at most)."""
    inner = command.command if command.__class__ is Attributed else command
    if inner.__class__ is not UpdateEntity or Read not in map(type, inner.request):
        return None
    return ReadMeter(inner.request, limit)


def _unanswered(request: Any) -> bool:
    """Another node's batch: its reply is not built here, so its Reads need not be answered."""
    return True


class StateMachine:
    def __init__(
        self,
        store: Store | None = None,
        on_changes: ChangeSink | None = None,
        on_restore: Callable[[int], None] | None = None,
        max_reply: int = 16 << 20,
        on_users_on: Callable[[int], None] | None = None,
    ) -> None:
        """``max_reply``: bytes; a larger response to a command this node proposed is not
        built (the node's --max-frame-bytes: a reply is one frame). ``on_users_on(index)``:
        users went from off to on, by an applied entry or a restored snapshot."""
        self.store = store if store is not None else Store()
        self.auth = AuthState()
        self._grants = GrantsCache(lambda: self.store)
        self._on_changes = on_changes
        self._on_restore = on_restore
        self._on_users_on = on_users_on
        self.applied_index = 0
        self.applied_level = LEVEL_BEFORE_LEVELS  # the highest level applied (Application)
        self.max_reply = max_reply

    def set_change_sink(self, sink: ChangeSink | None) -> None:
        self._on_changes = sink

    # -- as the replica's Application (qcore.node.replica) -------------------
    entry_level = ENTRY_LEVEL  # the highest level it writes and applies (Application)

    def encode_batch(self, commands: list[list[Any]], level: int = ENTRY_LEVEL) -> tuple[bytes, Batch]:
        """The entry payload for `commands` at `level`, stamped with the proposal time, and
        the batch it encodes (its `level` is the entry's: apply_entry applies it as logged)."""
        batch = new_batch(commands, level)
        return encode_batch(batch), batch

    def lowered(self, data: bytes, level: int) -> bytes:
        """A follower's batch at `level` at most (entries.lowered)."""
        return lowered(data, level)

    def cannot_apply(self, data: bytes) -> str | None:
        """Why this node could not apply an entry of payload `data` (a follower's batch, which
        a leader then does not append: its own apply, and its followers', would stop on it)."""
        level = entry_level(data)
        if level is None:
            return "it does not decode"
        if not supported(level):
            return (f"it needs qcore semantics level {level!r}; this node supports up to {ENTRY_LEVEL}: "
                    "upgrade this node")
        return None

    def level_of(self, data: bytes) -> int:
        """An entry payload's semantics level (1 for one that does not decode)."""
        level = entry_level(data)
        return level if isinstance(level, int) else LEVEL_BEFORE_LEVELS

    def apply(self, entry: Entry, origin: str, decoded: dict[int, Any], own: Batch | None) -> list[tuple[int, Any]]:
        """Apply a committed entry: only NORMAL entries with data change the store."""
        if entry.type != EntryType.NORMAL or not entry.data:
            return []
        return self.apply_entry(entry.index, entry.data, origin, decoded, own)

    def apply_entry(
        self, index: int, data: bytes, origin: str, decoded: dict[int, Any] | None = None,
        batch: Batch | None = None,
    ) -> list[tuple[int, Any]]:
        """Apply one entry; return (seq, response JSON) for commands `origin` proposed.

        `decoded` maps the proposer's seqs to commands it already decoded
        (they are taken out of it), and `batch` is the entry's payload as
        the proposer built it before encoding it into `data`, if it has it:
        the same JSON, so the same result, without parsing `data` again.
        """
        if batch is None:
            batch = decode_batch(data)
        level = batch.level
        if not supported(level):
            raise LevelUnsupported(index, level)
        if level > self.applied_level:
            self.applied_level = level
        now = Timestamp(batch.secs, batch.nanos)
        store = self.store
        results: list[tuple[int, Any]] = []
        if batch.init is not None:
            started = time.perf_counter()
            try:
                resp, changes = store.apply(decode_load_config(batch.init), now)
            except CodecError as exc:
                log.error("init entry %d does not decode: %s", index, exc)
            else:
                error = getattr(resp, "error", None)
                if error:
                    log.error("applying the config file at index %d failed: %s", index, error)
                else:
                    log.info("applied the config file at index %d: %d entities in %.1f s",
                             index, getattr(resp, "created", 0), time.perf_counter() - started)
                self._publish(index, changes)
            if batch.auth is not None:
                self._change_auth(AuthCommand(None, InitAdmin(str(batch.auth.get("admin")))), index, level)
        for origin_id, seq, command_json in batch.commands:
            mine = origin_id == origin
            command = decoded.pop(seq, None) if (mine and decoded) else None
            try:
                if command is None:
                    command = decode_command(command_json)
            except CodecError as exc:
                # Validated before it was proposed, so this is a bug or a
                # version skew; deterministic on every node either way.
                log.error("entry %d carries an undecodable command: %s", index, exc)
                if mine:
                    results.append((seq, {"Error": str(exc)}))
                continue
            meter = _meter(command, self.max_reply) if mine else None
            stop = _unanswered if not mine else None if meter is None else meter.add
            response, changes = self._apply_command(command, now, index, stop, level)
            if changes:
                self._publish(index, changes)
            if mine:
                results.append((seq, response if type(response) is dict else self._reply(response, index, meter)))
        self.applied_index = index
        return results

    def _publish(self, index: int, changes: list[Change]) -> None:
        if changes and self._on_changes is not None:
            try:
                self._on_changes(index, changes)
            except Exception:
                log.exception("notification delivery failed for entry %d", index)

    def _reply(self, response: Any, index: int, meter: ReadMeter | None) -> dict[str, Any]:
        """A command's response JSON; for a batch with Reads (``meter``), an ``Error``
        instead, before anything large is encoded, if it could be larger than a frame
        may be (its Reads can ask for one large value many times). The batch was
        applied all the same."""
        why = None if meter is None else over_limit(response, self.max_reply, meter=meter)
        if why is None:
            return encode_command_response(response)
        log.info("the reply to a command applied at index %d is not sent: %s", index, why)
        return {"Error": f"the batch was applied (log index {index}), but its {why}", "kind": "invalid"}

    def _apply_command(self, command: Any, now: Timestamp, index: int,
                       stop: Callable[[Any], bool] | None, level: int) -> tuple[Any, list[Change]]:
        """(response: a store response, or JSON already encoded; changes). ``stop``: when
        a batch's response has enough Reads (Store.apply). ``level``: the entry's."""
        c = command.__class__
        if c is Attributed:
            if self.auth.enabled:
                return self._as_user(command.user, command.uid, command.command, now, stop, level)
            command = command.command  # users off: as if no user had made it
            c = command.__class__
        elif c is AuthCommand:
            return self._change_auth(command, index, level), []
        elif self.auth.enabled:
            return encode_refusal(command, "authentication required", "auth_required"), []
        return self._store_apply(command, now, stop, level)

    def _as_user(self, name: str, uid: int | None, command: Any, now: Timestamp,
                 stop: Callable[[Any], bool] | None, level: int) -> tuple[Any, list[Change]]:
        user = self.auth.users.get(name)
        if user is None or (uid is not None and user.uid != uid):  # deleted (and perhaps added again since)
            return encode_refusal(command, f"authentication required: user {name} no longer exists",
                                  "auth_required"), []
        grants = self.grants_of(user)
        # Level 3 on: a path after a Write of its batch is checked where it leads once the
        # requests before it have run (that Write may have changed a reference on it).
        in_order = level >= 3 and command.__class__ is UpdateEntity and paths_after_a_write(command)
        why = denied_change(self.store, grants, name, command, paths_in_order=in_order)
        if why is not None:
            return encode_refusal(command, why, "permission_denied"), []
        stamp_writer(command, user.entity, writes_only=level < 2)  # level 1: creates and deletes by no one
        if not in_order:
            return self._store_apply(command, now, stop, level)
        refused: list[str] = []
        store = self.store

        def check(r: Any) -> str | None:
            if PATH_SEP not in r.field_type:
                return None  # its type and field do not depend on the state: checked above
            why = denied_request(store, grants, name, r)
            if why is not None:
                refused.append(why)
            return why

        response, changes = self._store_apply(command, now, stop, level, check)
        if refused:  # the store undid the batch
            return encode_refusal(command, refused[0], "permission_denied"), []
        return response, changes

    def _store_apply(self, command: Any, now: Timestamp, stop: Callable[[Any], bool] | None,
                     level: int, check: Callable[[Any], str | None] | None = None) -> tuple[Any, list[Change]]:
        """Run `command` in the store by the rules of `level`. From level 2 on, a move writes both
        parents' Children by its Write's writer, and a DeleteEntity that would take away an
        entity a user is linked to is refused, as a foreign key restricts a delete. ``check``:
        shown each request of a batch before it runs (Store.apply)."""
        c = command.__class__
        if c is UpdateEntity and level >= 2:
            command.moves_by_writer = True
        elif c is DeleteEntity and level >= 2 and self.auth.users:
            name = self._linked_user(command.entity_id)
            if name is not None:
                return DeleteEntityResponse(
                    f"cannot delete {command.entity_id}: user {name} is linked to it or to an entity "
                    f"under it; delete the user first"), []
        response, changes = self.store.apply(command, now, stop, check)
        if c in _SCHEMA_CHANGES:
            self._grants.clear()
        return response, changes

    def _linked_user(self, target: EntityId) -> str | None:
        """The first user (by name) linked to `target` or to an entity under it. An entity is
        its type and number: a `target` that does not exist as named has no user (the store says so).
        A leaf is checked against the links alone; otherwise each linked entity's way up the tree
        is walked once, and every entity on it remembered, so users under one folder share a walk."""
        if not self._entity_exists(target):
            return None
        users = self.auth.users
        if self.store.tree.count(target.id) == 0:
            return min((name for name, u in users.items() if u.entity == target), default=None)
        under: dict[EntityId, bool] = {target: True}
        found: str | None = None
        for name, user in users.items():
            e = user.entity
            if e is None or (found is not None and name > found):
                continue
            path: list[EntityId] = []
            while e is not None and e not in under:
                path.append(e)
                try:
                    e = self.store.read_path(e, "Parent")[0].v
                except StoreError:  # gone already, or a type without a parent
                    e = None
            verdict = e is not None and under[e]
            for p in path:
                under[p] = verdict
            if verdict:
                found = name
        return found

    def _change_auth(self, command: AuthCommand, index: int, level: int) -> dict[str, Any]:
        """Apply a change to users and roles; its result as AuthAdmin's ``{"Ok"}``/``{"Err"}``.
        From level 2 on, a user is linked only to an entity that exists."""
        change = command.change
        was_on = self.auth.enabled
        try:
            self.auth.apply(change, command.user, command.uid, self._entity_exists if level >= 2 else None)
        except AuthRefused as exc:
            return {"AuthAdmin": {"response": {"Err": exc.text}, "kind": exc.kind}}
        self._grants.clear()
        target = getattr(change, "user", None) or getattr(change, "role", None)
        log.info("users: %s%s by %s at index %d (revision %d)", change.__class__.__name__,
                 f" {target}" if target else "", command.user or "no user", index, self.auth.revision)
        self._tell_users_on(was_on, index)
        return {"AuthAdmin": {"response": {"Ok": {"revision": self.auth.revision}}, "kind": None}}

    def _entity_exists(self, eid: EntityId) -> bool:
        return self.store.query(EntityExists(eid)).response is True  # type: ignore[union-attr]

    def grants_of(self, user: User) -> Grants:
        """What `user` may do now (kept until roles or schemas change)."""
        return self._grants.of(self.auth, user)

    def size(self) -> int:
        """Entities in the store (own snapshots come sooner for a small store)."""
        return self.store.entity_count()

    def snapshot_builder(self, copy: bool = True) -> Callable[[], bytes]:
        """A function that serialises the state as it is now, run once. With
        `copy`, for another thread while this one goes on applying: it holds
        a copy of the store taken here (`Store.clone`: a small fraction of
        what serialising costs), released as it is serialised; without, it
        serialises the store itself (in a child process forked now, whose
        image of it nothing changes). The auth state is small and
        serialised here, at once."""
        if copy:
            clone = self.store.clone()

            def store_snapshot() -> bytes:
                return clone.snapshot(consume=True)
        else:
            store_snapshot = self.store.snapshot

        if self.auth.empty and self.applied_level == LEVEL_BEFORE_LEVELS:
            return store_snapshot
        state = self.auth.to_json()
        if self.applied_level != LEVEL_BEFORE_LEVELS:  # absent: 1, as a build before levels writes
            state["entry_level"] = self.applied_level
        doc = orjson.dumps(state)
        head = _SNAPSHOT_MAGIC + len(doc).to_bytes(8, "big") + doc
        return lambda: head + store_snapshot()

    def restore(self, data: bytes, index: int) -> None:
        auth = AuthState()
        applied_level = LEVEL_BEFORE_LEVELS
        if data[: len(_SNAPSHOT_MAGIC)] == _SNAPSHOT_MAGIC:
            start = len(_SNAPSHOT_MAGIC) + 8
            size = int.from_bytes(data[len(_SNAPSHOT_MAGIC):start], "big")
            try:
                state = orjson.loads(data[start:start + size])
                auth = AuthState.from_json(state)
                applied_level = state.get("entry_level", LEVEL_BEFORE_LEVELS)
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise StoreError(f"snapshot: {exc}") from None
            if not supported(applied_level):
                raise LevelUnsupported(index, applied_level)
            data = data[start + size:]
        self.store = Store.restore(data) if data else Store()
        malloc_policy.trim()  # the store it replaced is free now
        was_on, self.auth = self.auth.enabled, auth
        self._grants.clear()
        self.applied_index = index
        self.applied_level = applied_level
        if self._on_restore is not None:
            self._on_restore(index)
        self._tell_users_on(was_on, index)

    def _tell_users_on(self, was_on: bool, index: int) -> None:
        """Call ``on_users_on`` if users went from off to on at ``index``."""
        if self.auth.enabled and not was_on and self._on_users_on is not None:
            self._on_users_on(index)
