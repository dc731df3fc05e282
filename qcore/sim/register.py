"""The simulated application: a hash-chained register, and its entry format.

Every applied entry (normal, empty or configuration) extends a hash chain,
as TigerBeetle's checker follows one hash-chained commit history: two nodes
with the same chain value at an index have applied exactly the same entries
up to it. The register's value is the last value written, which is what a
read returns. The same chain function is used for log prefixes, so a
snapshot's chain value also anchors the log that follows it.

`RegisterApp` is the register as the node's runtime core sees its
application (`qcore.node.replica.Application`): a NORMAL entry carries a
batch of client writes, `[[origin, seq, value], ...]` as JSON, the shape of
the real node's batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any, Callable

from qcore.raft.types import Entry, EntryType

_PACK = struct.Struct(">QQB")


def chain_next(prev: bytes, entry: Entry) -> bytes:
    """The chain value after `entry`, given the value before it."""
    h = hashlib.blake2b(prev, digest_size=12)
    h.update(_PACK.pack(entry.index, entry.term, int(entry.type)))
    h.update(entry.data)
    return h.digest()


GENESIS = b"\0" * 12


@dataclass(slots=True)
class Register:
    applied: int = 0
    chain: bytes = GENESIS
    value: bytes = b""

    def apply(self, entry: Entry, values: list[bytes]) -> None:
        if entry.index != self.applied + 1:
            raise ApplyOrderError(f"applied {entry.index} after {self.applied}")
        self.chain = chain_next(self.chain, entry)
        self.applied = entry.index
        if values:
            self.value = values[-1]

    def snapshot_data(self) -> bytes:
        return json.dumps(
            {"applied": self.applied, "chain": self.chain.hex(), "value": self.value.hex()}
        ).encode()

    @classmethod
    def restore(cls, data: bytes) -> "Register":
        obj = json.loads(data)
        return cls(obj["applied"], bytes.fromhex(obj["chain"]), bytes.fromhex(obj["value"]))


class ApplyOrderError(Exception):
    """Committed entries were handed out with a gap or out of order."""


def decode_batch(data: bytes) -> list[list[Any]]:
    """The writes of a NORMAL entry (none for the bootstrap entry)."""
    try:
        batch = json.loads(data)
    except ValueError:
        return []
    return batch if isinstance(batch, list) else []


class RegisterApp:
    """A register as the replica's application. `on_apply(entry, values,
    chain)` and `on_restore(register)` let the simulated node check every
    step against the others."""

    def __init__(
        self,
        register: Register,
        on_apply: Callable[[Entry, list[bytes], bytes], None],
        on_restore: Callable[[Register], None],
    ) -> None:
        self.register = register
        self._on_apply = on_apply
        self._on_restore = on_restore

    entry_level = 1  # one set of rules: semantics levels (qcore.node.entries) do not arise
    applied_level = 1

    def encode_batch(self, commands: list[list[Any]], level: int) -> tuple[bytes, list[list[Any]]]:
        return json.dumps(commands, separators=(",", ":")).encode(), commands

    def lowered(self, data: bytes, level: int) -> bytes:
        return data

    def cannot_apply(self, data: bytes) -> str | None:
        return None  # any payload: one that does not decode holds no writes

    def level_of(self, data: bytes) -> int:
        return 1

    def apply(self, entry: Entry, origin: str, decoded: dict[int, Any], own: Any) -> list[tuple[int, Any]]:
        """Apply `entry`; each write of `origin` in it is answered with the
        index it was applied at."""
        writes: list[list[Any]] = []
        if entry.type == EntryType.NORMAL and entry.data:
            writes = own if own is not None else decode_batch(entry.data)
        values = [str(value).encode() for _, _, value in writes]
        self.register.apply(entry, values)
        self._on_apply(entry, values, self.register.chain)
        return [(seq, entry.index) for o, seq, _ in writes if o == origin]

    def restore(self, data: bytes, index: int) -> None:
        self.register = Register.restore(data)
        if self.register.applied != index:
            raise ApplyOrderError(f"snapshot at {index} holds a register at {self.register.applied}")
        self._on_restore(self.register)

    def size(self) -> int:
        return 1  # one register: its snapshots are tiny

    def snapshot_builder(self, copy: bool = True) -> Callable[[], bytes]:
        # Applying goes on while a build runs: the build gets a copy of the
        # register as it is now (the node's store is cloned likewise).
        return (dataclasses.replace(self.register) if copy else self.register).snapshot_data
