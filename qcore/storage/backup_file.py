"""The backup file `qcore-cli snapshot save` writes (SPEC 9).

Layout, version 1::

    qcore-snapshot 1\\n
    {"format": 1, "index": I, "term": T, "size": N, "sha256": "<hex>", "entities": E,
     "saved_at": "...Z", "source": {...}, "check": "<hex>"}\\n
    <N bytes: the state machine's snapshot, exactly as a node's own snapshot holds it>

The payload is whatever the node's state machine serialises
(`StateMachine.snapshot_builder`), so everything replicated — the store
today, users and roles once they exist — is in a backup without this file
knowing. `sha256` covers the payload and `check` the header fields a
restore relies on (`header_check`: index, term, size, sha256, entities); a
file whose magic, version, header, size or checksums are wrong is refused
with `BackupError` saying which. Files written before `check` existed have
none and are read as before (format 1 either way: readers ignore keys they
do not know).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

MAGIC = b"qcore-snapshot"
FORMAT = 1
_MAX_HEADER = 1 << 20

Progress = Callable[[int], None]  # bytes done so far


class BackupError(Exception):
    """A backup file that cannot be used, and why."""


@dataclass(slots=True)
class BackupHeader:
    index: int
    term: int
    size: int
    sha256: str
    entities: int | None = None
    saved_at: str | None = None
    source: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "index": self.index, "term": self.term, "size": self.size, "sha256": self.sha256,
            "entities": self.entities, "saved_at": self.saved_at, "source": self.source,
            "check": header_check(self),
        }


def header_check(header: BackupHeader) -> str:
    """A checksum of what a restore takes from the header (the payload's own sha256 covers the rest)."""
    fields = orjson.dumps([header.index, header.term, header.size, header.sha256, header.entities])
    return hashlib.sha256(fields).hexdigest()


def write_backup(path: Path, header: BackupHeader, data: bytes) -> None:
    """Write atomically (a temporary file, fsynced, renamed over `path`)."""
    if len(data) != header.size or hashlib.sha256(data).hexdigest() != header.sha256:
        raise BackupError("the data does not match its header (size or sha256)")
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + b" %d\n" % FORMAT)
            f.write(orjson.dumps(header.to_json()) + b"\n")
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # no half-written FILE.part is left behind (a full disk, PATH a directory, Ctrl-C)
        tmp.unlink(missing_ok=True)
        raise


def read_header(f: BinaryIO, name: str) -> BackupHeader:
    first = f.readline(64)
    magic, _, version = first.rstrip(b"\n").partition(b" ")
    if magic != MAGIC:
        raise BackupError(f"{name}: not a qcore snapshot file (it does not start with {MAGIC.decode()!r})")
    if version != str(FORMAT).encode():
        raise BackupError(f"{name}: snapshot file format {version.decode(errors='replace')!r} is not supported "
                          f"(this qcore reads format {FORMAT})")
    line = f.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise BackupError(f"{name}: the header is truncated")
    try:
        h = orjson.loads(line)
        header = BackupHeader(
            index=_nat(h["index"]), term=_nat(h["term"]), size=_nat(h["size"]), sha256=str(h["sha256"]),
            entities=h.get("entities"), saved_at=h.get("saved_at"), source=h.get("source"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"{name}: the header is corrupt ({exc})") from None
    if len(header.sha256) != 64:
        raise BackupError(f"{name}: the header's sha256 is malformed")
    check = h.get("check")
    if check is not None and check != header_check(header):
        raise BackupError(f"{name}: corrupt: the header's check does not match its index, term, size, "
                          "sha256 and entities")
    return header


def read_backup(path: Path, progress: Progress | None = None, chunk: int = 1 << 20) -> tuple[BackupHeader, bytes]:
    """The header and the payload, checked against the header's size and sha256."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            header = read_header(f, name)
            buf = bytearray()
            digest = hashlib.sha256()
            while len(buf) < header.size:
                block = f.read(min(chunk, header.size - len(buf)))
                if not block:
                    raise BackupError(
                        f"{name}: truncated: the header promises {header.size} bytes of snapshot data, "
                        f"the file holds {len(buf)}"
                    )
                digest.update(block)
                buf += block
                if progress is not None:
                    progress(len(buf))
            if f.read(1):
                raise BackupError(f"{name}: corrupt: there are bytes after the {header.size} bytes of snapshot data")
    except OSError as exc:
        raise BackupError(f"{name}: {exc.strerror or exc}") from None
    if digest.hexdigest() != header.sha256:
        raise BackupError(
            f"{name}: corrupt: the snapshot data's sha256 is {digest.hexdigest()}, the header says {header.sha256}"
        )
    return header, bytes(buf)


def _nat(x: Any) -> int:
    if type(x) is not int or x < 0:
        raise ValueError(f"expected a non-negative integer, got {x!r}")
    return x
