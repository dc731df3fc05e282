"""A cluster without a quorum answers honestly (issue 17, point 5; issue 18, item 4): with two
of three nodes killed, a write ends within its one deadline as "no leader" (not applied, not
an unknown outcome), a read says there is no leader instead of timing out, and the client
keeps its live connection instead of replacing it every attempt."""

from __future__ import annotations

import logging
import time

import pytest

from qcore.cli import client as cli
from qcore.client import Client, NotLeader
from tests.node.harness import Conn, NodeProc, start_and_init, wait_ready, wait_until
from tests.node.http_get import http_get
from tests.node.test_cluster import form_cluster, leader_of, make_counter


async def _no_leader(c: Conn) -> bool:
    return (await c.metrics())["current_leader"] is None


async def test_without_a_quorum_writes_and_reads_say_no_leader_within_their_deadline(
    nodes, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    counter = await make_counter(conns[lid - 1], "c")
    survivor = ns[0]
    for n in ns[1:]:
        n.kill9()
    await wait_until(lambda: _no_leader(conns[0]), what="the survivor to know it has no leader")

    caplog.set_level(logging.INFO, logger="qcore.client")
    deadline = 2.0
    async with Client([survivor.addr], request_timeout=deadline, attempt_timeout=0.5) as c:
        started = time.monotonic()
        with pytest.raises(NotLeader) as write:
            await c.write(counter, "N", 1, adjust="Add")
        assert write.value.kind == "no_leader" and "no leader" in str(write.value)
        with pytest.raises(NotLeader) as read:
            await c.read(counter, "N")
        assert read.value.kind == "no_leader"
        # One deadline each (the write's schema look-up included): not a second one after the first.
        assert time.monotonic() - started < 2 * deadline + 1.0
    assert not [r for r in caplog.records if "dropping the connection" in r.getMessage()]

    # The CLI says the same, within its --timeout.
    started = time.monotonic()
    argv = ["--addr", survivor.addr, "--timeout", str(deadline), "write", f"Counter${counter['id']}", "N", "5"]
    assert await cli.run(cli.build_parser().parse_args(argv)) == 1
    assert time.monotonic() - started < deadline + 1.0
    err = capsys.readouterr().err
    assert "NotLeader: no leader" in err and "UnknownOutcome" not in err, err
    for c in conns:
        await c.close()


async def test_with_users_on_a_client_that_connects_without_a_quorum_hears_no_leader(
    nodes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """With users on, connecting includes Authenticate, which waits for a read barrier: a
    node without a quorum answers it `no_leader`. A new client (or qcore-cli) must say
    that when its deadline passes, as it does for a request, not that no node could be
    reached: the node was reached, and it answered."""
    password = "admin-pw-123"
    survivor = await _survivor_without_quorum(nodes, password)

    with pytest.raises(NotLeader) as refused:
        await Client.connect([survivor.addr], user="admin", password=password, request_timeout=2.0)
    assert refused.value.kind == "no_leader" and "no leader" in str(refused.value)

    monkeypatch.setenv("QCORE_PASSWORD", password)
    argv = ["--addr", survivor.addr, "--timeout", "2", "--user", "admin", "write", "User$3", "Email", "x@y"]
    assert await cli.run(cli.build_parser().parse_args(argv)) == 1
    err = capsys.readouterr().err
    assert "NotLeader: no leader" in err and "ConnectionFailed" not in err, err


async def test_with_users_on_a_login_unanswered_within_the_deadline_says_so(
    nodes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """A node without a quorum answers a login no_leader only after two election timeouts
    (0.6 s here); a deadline shorter than that said 'cannot connect to any of A (A:
    TimeoutError)', as if the node could not be reached. It was, and took the login."""
    password = "admin-pw-123"
    survivor = await _survivor_without_quorum(nodes, password)
    monkeypatch.setenv("QCORE_PASSWORD", password)
    argv = ["--addr", survivor.addr, "--timeout", "0.3", "--user", "admin", "status"]
    assert await cli.run(cli.build_parser().parse_args(argv)) == 1
    err = capsys.readouterr().err
    assert err == (f"qcore-cli: ConnectionFailed: {survivor.addr} did not answer the login of admin before the"
                   " deadline: a login is checked with the cluster's leader; is a majority of the voters up?\n"), err


async def _survivor_without_quorum(nodes, password: str) -> NodeProc:  # type: ignore[no-untyped-def]
    """Node 1 of a 3-node cluster with users on, once it knows it has no leader (2 and 3 killed)."""
    ns: list[NodeProc] = [nodes(i) for i in (1, 2, 3)]
    await start_and_init(ns, admin_password=password)
    await wait_ready(ns[0])
    survivor = ns[0]
    for n in ns[1:]:
        n.kill9()

    async def no_leader() -> bool:
        status, _, body = await http_get(survivor.addr, "/ready")
        return status == 503 and b"no leader known" in body

    await wait_until(no_leader, what="the survivor to know it has no leader")
    return survivor
