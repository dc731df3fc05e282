"""The simulated application: a hash-chained register.

Every applied entry (normal, empty or configuration) extends a hash chain,
as TigerBeetle's checker follows one hash-chained commit history: two nodes
with the same chain value at an index have applied exactly the same entries
up to it. The register's value is the last non-empty NORMAL payload, which is
what a read returns. The same chain function is used for log prefixes, so a
snapshot's chain value also anchors the log that follows it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

from qcore.raft.types import Entry

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

    def apply(self, entry: Entry) -> None:
        if entry.index != self.applied + 1:
            raise ApplyOrderError(f"applied {entry.index} after {self.applied}")
        self.chain = chain_next(self.chain, entry)
        self.applied = entry.index
        if entry.data and entry.type == 0:
            self.value = entry.data

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
