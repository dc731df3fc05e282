"""How a node uses the C allocator (glibc's malloc), so that its RSS follows
what it holds rather than the peaks it went through.

glibc raises its mmap threshold each time a large block is freed (up to
32 MiB), after which buffers of that size (log entries, snapshot documents,
frames) come from the heap, whose free space is given back to the system
only from its top. So a node that had built a few snapshots and compacted
its log kept tens of MB per 100k entities it no longer used. A fixed
threshold keeps blocks of 128 KiB and more in their own mappings (returned
when freed), and :func:`trim` hands back the heap's free pages after the
moments that free a lot: a snapshot taken and the log compacted behind it,
or a store replaced by a snapshot. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 << 10

_libc: Any = None


def _glibc() -> Any:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else False
        except OSError:
            _libc = False
    return _libc


def install() -> None:
    """Apply the policy to this process (once, at start-up)."""
    libc = _glibc()
    if libc and not libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; memory may not be given back after large frees")


def trim() -> None:
    """Give the heap's free pages back to the system (a few ms on a large heap)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
