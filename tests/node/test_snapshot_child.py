"""qcore.node.snapshot_child: a node's own snapshot serialised in a forked
child process, with nothing of the node's but the pipe back."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from qcore.node import snapshot_child
from qcore.store import Store

from tests.store.helpers import create, make_store

pytestmark = pytest.mark.skipif(not snapshot_child.available(), reason="needs os.fork")


def test_the_child_returns_the_bytes_of_the_builder_and_runs_apart() -> None:
    s = make_store()
    root = create(s, "Folder", "root")
    for i in range(2000):
        create(s, "User", f"u{i}", root)
    clone = s.clone()
    pids: list[int | None] = []
    data = snapshot_child.build_in_child(lambda: clone.snapshot(consume=True), pids.append)
    assert data == s.snapshot()
    assert Store.restore(data).snapshot() == data
    assert pids[0] not in (None, os.getpid()) and pids[1:] == [None]
    assert len(clone.entities.tables) > 0  # consumed in the child's image only


def test_a_builder_of_more_than_a_pipe_buffer_comes_back_whole() -> None:
    big = os.urandom(3 << 20)
    assert snapshot_child.build_in_child(lambda: big) == big


def test_a_failing_builder_is_an_error_not_a_second_node() -> None:
    def boom() -> bytes:
        raise ValueError("broken")

    with pytest.raises(snapshot_child.ChildBuildFailed, match="ended with 1"):
        snapshot_child.build_in_child(boom)


def test_the_child_holds_none_of_the_nodes_descriptors() -> None:
    """A socket the node holds is closed in the child, so a peer sees it
    close when the node closes it (or dies) even while a build runs."""
    a, b = socket.socketpair()
    try:
        fd = a.fileno()

        def probe() -> bytes:
            try:
                os.fstat(fd)
                return b"open"
            except OSError:
                return b"closed"

        assert snapshot_child.build_in_child(probe) == b"closed"
    finally:
        a.close()
        b.close()


def test_a_killed_child_ends_the_build_with_an_error() -> None:
    """What a node that stops mid-build does to its child (driver.stop)."""
    release = threading.Event()
    pids: list[int | None] = []

    def kill_when_started(pid: int | None) -> None:
        pids.append(pid)
        if pid is not None:
            os.kill(pid, 9)
            release.set()

    def forever() -> bytes:
        threading.Event().wait()  # never returns on its own
        return b""

    with pytest.raises(snapshot_child.ChildBuildFailed, match="-9"):
        snapshot_child.build_in_child(forever, kill_when_started)
    assert release.is_set() and pids[-1] is None
