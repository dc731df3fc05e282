"""Applies committed log entries to the entity store.

The store itself is pure (qcore.store); this adapter knows the node's entry
format (qcore.node.entries), answers the proposer's waiters with encoded
responses, and hands every field change to the notification hub with the log
index it came from.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from qcore.node.entries import Batch, decode_batch, encode_batch, new_batch
from qcore.protocol.values import (
    CodecError,
    decode_command_request,
    decode_load_config,
    encode_command_response,
)
from qcore.raft.types import Entry, EntryType
from qcore.store import Change, Store, Timestamp

log = logging.getLogger(__name__)

ChangeSink = Callable[[int, list[Change]], None]


class StateMachine:
    def __init__(
        self,
        store: Store | None = None,
        on_changes: ChangeSink | None = None,
        on_restore: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store if store is not None else Store()
        self._on_changes = on_changes
        self._on_restore = on_restore
        self.applied_index = 0

    def set_change_sink(self, sink: ChangeSink | None) -> None:
        self._on_changes = sink

    # -- as the replica's Application (qcore.node.replica) -------------------
    def encode_batch(self, commands: list[list[Any]]) -> tuple[bytes, Batch]:
        """The entry payload for `commands`, stamped with the proposal time."""
        batch = new_batch(commands)
        return encode_batch(batch), batch

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
        now = Timestamp(batch.secs, batch.nanos)
        store = self.store
        results: list[tuple[int, Any]] = []
        all_changes: list[Change] = []
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
                all_changes.extend(changes)
        for origin_id, seq, command_json in batch.commands:
            mine = origin_id == origin
            command = decoded.pop(seq, None) if (mine and decoded) else None
            try:
                if command is None:
                    command = decode_command_request(command_json)
            except CodecError as exc:
                # Validated before it was proposed, so this is a bug or a
                # version skew; deterministic on every node either way.
                log.error("entry %d carries an undecodable command: %s", index, exc)
                if mine:
                    results.append((seq, {"Error": str(exc)}))
                continue
            response, changes = store.apply(command, now)
            if changes:
                all_changes.extend(changes)
            if mine:
                results.append((seq, encode_command_response(response)))
        self.applied_index = index
        if all_changes and self._on_changes is not None:
            try:
                self._on_changes(index, all_changes)
            except Exception:
                log.exception("notification delivery failed for entry %d", index)
        return results

    def query(self, command: Any) -> Any:
        return encode_command_response(self.store.query(command))

    def snapshot_builder(self) -> Callable[[], bytes]:
        """A function that serialises the store as it is now, for another
        thread to run: it keeps to this store object even if `restore`
        replaces it meanwhile (a snapshot installed from the leader)."""
        return self.store.snapshot

    def restore(self, data: bytes, index: int) -> None:
        self.store = Store.restore(data) if data else Store()
        self.applied_index = index
        if self._on_restore is not None:
            self._on_restore(index)
