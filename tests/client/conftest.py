"""Real node processes for the client-side tests (tests/client): one in-memory node on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qcore.local_procs import free_port

REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def running_node(*extra: str, cwd: Path = REPO, addr: str | None = None) -> AsyncIterator[str]:
    """A node process (``python -m qcore ... extra``) until the block ends; yields its address
    once it prints that it is listening."""
    addr = addr or f"127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", addr,
        "--in-memory", "--tick-ms", "20", "--election-ticks", "15", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
    )
    assert proc.stdout is not None
    output: list[bytes] = []

    async def until_listening() -> None:
        while True:
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("node exited:\n" + b"".join(output).decode(errors="replace"))
            output.append(line)
            if b"listening on" in line:
                return

    try:
        await asyncio.wait_for(until_listening(), 60)
        drain = asyncio.create_task(proc.stdout.read())  # keep the pipe from filling up
        try:
            yield addr
        finally:
            drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def node_addr() -> AsyncIterator[str]:
    """A fresh, uninitialised node."""
    async with running_node("--config-file", str(REPO / "schemas.yaml")) as addr:
        yield addr


@pytest.fixture
async def ready_node() -> AsyncIterator[str]:
    """A single-node cluster with the shipped schemas and tree, initialised at start-up."""
    async with running_node("--config-file", str(REPO / "schemas.yaml"), "--init") as addr:
        yield addr
