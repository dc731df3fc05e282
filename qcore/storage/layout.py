"""Names of the files in a data directory, and removing the superseded ones."""

from __future__ import annotations

import os
import re

from .fs import FileSystem
from .snapfile import parse_name

WAL_RE = re.compile(r"^wal-([0-9a-f]{16})\.log$")


def wal_name(segno: int) -> str:
    return f"wal-{segno:016x}.log"


def parse_wal_name(name: str) -> int | None:
    """The segment number of a WAL segment file name, or None."""
    m = WAL_RE.match(name)
    return int(m.group(1), 16) if m else None


def remove_obsolete(fs: FileSystem, dir_path: str, keep_from: int, snap_name: str | None) -> None:
    """Delete segments numbered below `keep_from` and every snapshot but `snap_name`.

    Only ever called once their replacement is durable. The unlinks are not
    fsynced: if a crash resurrects the files, start-up deletes them again.
    """
    for name in os.listdir(dir_path):
        segno = parse_wal_name(name)
        if (segno is not None and segno < keep_from) or (parse_name(name) is not None and name != snap_name):
            fs.unlink(os.path.join(dir_path, name))
