"""The payload of qcore's NORMAL log entries.

One entry carries a group-committed batch of commands proposed together:
`{"t": [secs, nanos], "c": [[origin, seq, <CommandRequest JSON>], ...]}`.
`t` is the proposal time that fills in default write times, fixed before the
entry enters the log so that apply stays deterministic. `origin` is the
proposing process (node id plus a per-boot nonce, so a restarted node never
mistakes an old entry for one of its new requests) and `seq` its request
number; only the proposer uses them, to answer its waiters.

The entry written by Init is `{"t": [...], "init": <LoadConfig JSON>}`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Batch:
    secs: int
    nanos: int
    commands: list[list[Any]]  # [origin, seq, command JSON]
    init: Any = None


def now_pair() -> tuple[int, int]:
    ns = time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000


def new_batch(commands: list[list[Any]]) -> Batch:
    """A batch of `commands` stamped with the current time."""
    secs, nanos = now_pair()
    return Batch(secs, nanos, commands)


def encode_batch(batch: Batch) -> bytes:
    return orjson.dumps({"t": [batch.secs, batch.nanos], "c": batch.commands})


def encode_init(load_config_json: Any, at: tuple[int, int] | None = None) -> bytes:
    """The config file's entry, stamped `at` (secs, nanos) or now."""
    secs, nanos = at if at is not None else now_pair()
    return orjson.dumps({"t": [secs, nanos], "init": load_config_json})


def decode_batch(data: bytes) -> Batch:
    obj = orjson.loads(data)
    secs, nanos = obj["t"]
    return Batch(secs, nanos, obj.get("c", []), obj.get("init"))
