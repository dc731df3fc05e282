"""Snapshot files: written whole or not at all, verified before use.

Layout of `snap-<index:016x>-<term:016x>.snap` (little-endian):

    magic "QCSNAP01" | u32 meta_len | u32 meta_crc | meta (JSON) | data | u32 data_crc | "QCSNAPEND"

`meta` is {"index", "term", "conf_state", "conf_index", "conf_term", "data_len"}
(conf_index/conf_term, the log id of the entry that set conf_state, absent
in an older version's file: SnapshotMeta.conf_log_id). The file is written
under a `.tmp` name in chunks (no copy of the data is made), fsynced,
renamed into place and the directory fsynced: a snapshot file that exists
under its final name is complete. Reading checks the size, both CRCs and
that the metadata matches the name.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib

from qcore.raft.types import Snapshot, SnapshotMeta

from .errors import StorageError
from .fs import FileSystem

MAGIC = b"QCSNAP01"
END = b"QCSNAPEND"
_HEAD = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
CHUNK = 4 << 20
NAME_RE = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:016x}-{term:016x}.snap"


def parse_name(name: str) -> tuple[int, int] | None:
    """(index, term) of a snapshot file name, or None if it is not one."""
    m = NAME_RE.match(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def _meta_bytes(snap: Snapshot) -> bytes:
    return json.dumps({**snap.meta.to_json(), "data_len": len(snap.data)}, separators=(",", ":")).encode()


def file_size(snap: Snapshot) -> int:
    """The size of `snap`'s file, as `write_snapshot` writes it (no I/O)."""
    return _HEAD.size + len(_meta_bytes(snap)) + len(snap.data) + _CRC.size + len(END)


def write_snapshot(fs: FileSystem, dir_path: str, snap: Snapshot) -> str:
    """Durably write `snap` into `dir_path`; return the final file name."""
    meta = snap.meta
    name = snapshot_name(meta.index, meta.term)
    meta_bytes = _meta_bytes(snap)
    tmp = os.path.join(dir_path, name + ".tmp")
    fs.unlink(tmp)  # left over by a crash in the middle of the same snapshot
    fd = fs.create(tmp)
    try:
        fs.write(fd, [_HEAD.pack(MAGIC, len(meta_bytes), zlib.crc32(meta_bytes)), meta_bytes])
        view = memoryview(snap.data)
        crc = 0
        for off in range(0, len(view), CHUNK):
            chunk = view[off : off + CHUNK]
            crc = zlib.crc32(chunk, crc)
            fs.write(fd, [chunk])
        fs.write(fd, [_CRC.pack(crc), END])
        fs.fsync(fd)
    finally:
        fs.close(fd)
    fs.rename(tmp, os.path.join(dir_path, name))
    fs.fsync_dir(dir_path)
    return name


def read_snapshot(path: str) -> Snapshot:
    """Load and verify a snapshot file; StorageError if it is not intact, OSError if it
    cannot be read (permissions, an I/O error): that is no proof of damage."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD.size)
            if len(head) != _HEAD.size:
                raise StorageError(f"snapshot {name}: truncated header")
            magic, meta_len, meta_crc = _HEAD.unpack(head)
            if magic != MAGIC:
                raise StorageError(f"snapshot {name}: bad magic")
            meta_bytes = f.read(meta_len)
            if len(meta_bytes) != meta_len or zlib.crc32(meta_bytes) != meta_crc:
                raise StorageError(f"snapshot {name}: metadata checksum mismatch")
            obj = json.loads(meta_bytes)
            data_len = int(obj["data_len"])
            if size != _HEAD.size + meta_len + data_len + _CRC.size + len(END):
                raise StorageError(f"snapshot {name}: size {size} does not match its metadata")
            data = f.read(data_len)  # one allocation, filled by the kernel
            tail = f.read(_CRC.size + len(END))
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"snapshot {name}: bad metadata: {exc}") from exc
    view = memoryview(data)
    crc = 0
    for off in range(0, len(view), CHUNK):
        crc = zlib.crc32(view[off : off + CHUNK], crc)
    if len(data) != data_len or tail != _CRC.pack(crc) + END:
        raise StorageError(f"snapshot {name}: data checksum mismatch")
    meta = SnapshotMeta.from_json(obj)
    if parse_name(name) not in (None, (meta.index, meta.term)):
        raise StorageError(f"snapshot {name}: metadata says index {meta.index} term {meta.term}")
    return Snapshot(meta=meta, data=data)
