"""Pull a consistent snapshot of the cluster's state from one node.

`SnapshotSave` makes the node hold a snapshot taken after a ReadIndex
barrier; its chunks are then pulled with `SnapshotRead`, a few in flight at
once, on that same connection (qcore.protocol.ops). The result is checked
against the size and sha256 the node announced.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qcore.client.connection import ConnectionLost
from qcore.client.errors import QcoreError, ServerError
from qcore.client.session import Session
from qcore.protocol import messages as m
from qcore.protocol import ops


@dataclass(slots=True)
class FetchedSnapshot:
    index: int
    term: int
    sha256: str
    data: bytes
    node: str  # the address it came from


async def fetch_snapshot(
    session: Session,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 1 << 20,
    window: int = 4,
    timeout: float = 120.0,
) -> FetchedSnapshot:
    """The state machine's snapshot at a linearizable point, from the node `session` is connected to."""
    conn = await session.pinned_connection()

    async def call(msg: Any) -> object:  # an ops message (not in m.Message's union)
        try:
            fut = await conn.send(msg)
            try:
                async with asyncio.timeout(timeout):  # not wait_for: in 3.11 it can swallow a cancel
                    reply = await fut
            finally:  # timed out or cancelled: nothing waits for its reply any more
                conn.forget(msg.id)
        except TimeoutError:
            raise QcoreError(f"{msg.TAG} to {conn.address}: no reply within {timeout:.0f}s") from None
        except ConnectionLost as exc:
            raise QcoreError(f"{msg.TAG} to {conn.address}: {exc}") from None
        if type(reply) is m.Error:
            raise ServerError(reply.error)
        ok, value = m.result_of(reply.response)  # type: ignore[union-attr]
        if not ok:
            raise ServerError(str(value))
        return value

    meta = await call(ops.SnapshotSave(session.next_id()))
    assert isinstance(meta, dict)
    handle, size = meta["handle"], int(meta["size"])
    buf = bytearray(size)
    offsets = list(range(0, size, chunk)) or [0]
    done = 0
    if on_progress is not None:
        on_progress(0, size)

    async def read(offset: int) -> None:
        nonlocal done
        body = await call(ops.SnapshotRead(session.next_id(), handle, offset, chunk))
        assert isinstance(body, dict)
        data = base64.b64decode(body["data"])
        if body["offset"] != offset or offset + len(data) > size:
            raise QcoreError(f"snapshot chunk at {offset} does not fit ({len(data)} bytes)")
        buf[offset : offset + len(data)] = data
        done += len(data)
        if on_progress is not None:
            on_progress(done, size)

    for start in range(0, len(offsets), window):
        await asyncio.gather(*(read(o) for o in offsets[start : start + window]))
    await call(ops.SnapshotRelease(session.next_id(), handle))
    data = bytes(buf)
    if done != size or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise QcoreError(f"the snapshot from {conn.address} arrived damaged (size or sha256 mismatch); try again")
    return FetchedSnapshot(int(meta["index"]), int(meta["term"]), str(meta["sha256"]), data, conn.address)
