"""A node gives memory back after large frees (qcore.node.malloc_policy):
measured in a child process, on glibc only."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qcore.node import malloc_policy

_CHILD = r"""
import sys
from qcore.node import malloc_policy

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

if sys.argv[1] == "policy":
    malloc_policy.install()
del bytearray(1 << 20)[:]  # one large block freed: glibc raises its mmap threshold past 1 MiB
blocks = [bytearray(1 << 20) for _ in range(150)]  # touched, so resident
keep = bytearray(1 << 20)  # allocated after them: pins the top of the heap
before = rss_mib()
del blocks
print(before - rss_mib())
"""


@pytest.mark.skipif(not malloc_policy._glibc(), reason="glibc only")  # noqa: SLF001
def test_large_blocks_go_back_to_the_system_once_freed() -> None:
    def freed(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert freed("policy") >= 140  # the 150 MiB freed left the process
    malloc_policy.trim()  # and trimming is harmless in a running process
