"""What a batch of writes makes every node copy, bounded before it is proposed.

Values are immutable, so ``Add`` to a String or Blob and ``Add``/``Subtract``
on an EntityList build a new value from the whole current one. A batch of
many such writes to one long value costs every node the value's length each
time (a 16 MiB frame holds ~100,000 ``Add`` s: terabytes of copying), and once
it is in the log no node can refuse it. So the node a client sends it to
reckons the copying first, from its own state, each write seeing the lengths
the batch's earlier writes leave, and refuses a batch over ``limit`` (bytes
of String or Blob, elements of an EntityList) with ``invalid``. etcd bounds a
transaction the same way in kind (``--max-txn-ops``). An estimate, not
part of the state machine: the state can move before the batch is applied,
by at most what other admitted batches add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qcore.store.commands import AdjustBehavior, UpdateEntity, Write
from qcore.store.errors import StoreError
from qcore.store.state import Store

_SET = AdjustBehavior.Set


class WriteCost:
    def __init__(self, store: Callable[[], Store], limit: int) -> None:
        self._store = store
        self.limit = limit

    def refusal(self, command: Any) -> str | None:
        """Why ``command`` may not be proposed (it would copy too much), or None."""
        if command.__class__ is not UpdateEntity or not any(
                r.__class__ is Write and r.adjust_behavior is not _SET for r in command.request):
            return None  # nothing copies (the common batch: Reads and Sets)
        lengths: dict[tuple[Any, str], int] = {}  # (entity, field) -> its length after the writes so far
        copied = 0
        for r in command.request:
            if r.__class__ is not Write:
                continue
            key = (r.entity_id, r.field_type)
            added = _length(r.value)
            if r.adjust_behavior is _SET:
                lengths[key] = added
                continue
            current = lengths.get(key)
            if current is None:
                current = self._current_length(r)
            copied += current + added
            lengths[key] = current + added  # Subtract leaves at most this
        if copied > self.limit:
            return (f"the batch's Add/Subtract writes would copy {copied} bytes or list elements on every node, "
                    f"over the limit of {self.limit} (--max-batch-copy); append in fewer, larger pieces, "
                    "or keep long values in more than one field")
        return None

    def _current_length(self, w: Write) -> int:
        try:
            value = self._store().read_path(w.entity_id, w.field_type)[0]
        except StoreError:
            return 0  # the write will fail at apply anyway
        return _length(value)


def _length(value: Any) -> int:
    """The length of a String, Blob or EntityList (0 for anything else)."""
    v = getattr(value, "v", None)
    return len(v) if isinstance(v, (str, bytes, tuple, list)) else 0
