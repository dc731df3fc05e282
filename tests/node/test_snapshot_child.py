"""qcore.node.snapshot_child: a node's own snapshot serialised in a child
forked within the round, with nothing of the node's but the pipe back."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading

import pytest

from qcore.node import snapshot_child
from qcore.node.state_machine import StateMachine
from qcore.store import Store

from tests.store.helpers import create, make_store

pytestmark = pytest.mark.skipif(not snapshot_child.available(), reason="needs os.fork")

ChildBuild = snapshot_child.ChildBuild


def test_the_child_serialises_the_state_of_the_moment_it_was_forked() -> None:
    s = make_store()
    root = create(s, "Folder", "root")
    for i in range(2000):
        create(s, "User", f"u{i}", root)
    sm = StateMachine()
    sm.store = s
    expected = sm.snapshot_builder(copy=True)()
    child = ChildBuild.start(sm.snapshot_builder(copy=False))
    for i in range(50):  # the parent goes on changing its state: the child's image does not move
        create(s, "User", f"later{i}", root)
    data = child.collect()
    assert data == expected
    assert child.pid != os.getpid()
    restored = StateMachine()
    restored.restore(data, 7)
    assert restored.store.snapshot() == Store.restore(expected).snapshot()


def test_more_than_a_pipe_buffer_comes_back_whole() -> None:
    big = os.urandom(3 << 20)
    assert ChildBuild.start(lambda: big).collect() == big


def test_a_failing_builder_is_an_error_not_a_second_node() -> None:
    def boom() -> bytes:
        raise ValueError("broken")

    with pytest.raises(snapshot_child.ChildBuildFailed, match="ended with 1"):
        ChildBuild.start(boom).collect()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_child_runs_only_on_cpu_time_nothing_else_wants() -> None:
    """SCHED_IDLE: a node woken by its disk or a peer preempts the build at once."""
    policy = ChildBuild.start(lambda: str(os.sched_getscheduler(0)).encode()).collect()
    assert int(policy) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the node's own is untouched


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

        assert ChildBuild.start(probe).collect() == b"closed"
    finally:
        a.close()
        b.close()


def test_a_killed_child_ends_the_build_with_an_error_and_is_not_killed_twice() -> None:
    """What a node that stops mid-build does to its child (driver.stop)."""
    def forever() -> bytes:
        threading.Event().wait()  # never returns on its own
        return b""

    child = ChildBuild.start(forever)
    child.kill()
    with pytest.raises(snapshot_child.ChildBuildFailed, match="-9"):
        child.collect()
    child.kill()  # reaped: its pid is left alone


@pytest.mark.skipif(not hasattr(os, "pidfd_open") or not sys.platform.startswith("linux"), reason="Linux pidfds")
def test_a_node_killed_mid_build_takes_its_child_with_it() -> None:
    """kill -9 of the node: the kernel ends the build's child at once
    (PR_SET_PDEATHSIG) rather than letting it serialise for nobody."""
    code = (
        "import sys, threading\n"
        "from qcore.node.snapshot_child import ChildBuild\n"
        "def forever():\n"
        "    threading.Event().wait()\n"
        "    return b''\n"
        "child = ChildBuild.start(forever)\n"
        "print(child.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    node = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        pid = int(node.stdout.readline())
        pidfd = os.pidfd_open(pid)
    finally:
        node.kill()
        node.wait()
    ready: list[int] = []
    try:
        ready, _, _ = select.select([pidfd], [], [], 10)  # readable once the process has ended
    finally:
        if not ready:
            os.kill(pid, 9)  # leave nothing behind
        os.close(pidfd)
    assert ready, "the build's child outlived its node"
