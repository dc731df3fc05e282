"""ChangeMembership across a change of leader, against real processes: a leader that loses
leadership while it waits for the new voters to catch up hands the request to the new leader
(nothing was proposed yet), rather than waiting out --request-timeout and refusing."""

from __future__ import annotations

import asyncio
import signal

from tests.node.harness import wait_serving, wait_until
from tests.node.test_cluster import init_cluster, leader_of, make_counter

# Bounds on a hang, not measurements: the nodes' request timeout (30 s) is longer than the
# client's wait (20 s), so a leader that waits its request timeout out before it answers fails
# the test by the client's bound, while one that hands the request on answers as soon as the new
# leader has caught the learner up (well under a second here).
NODE_REQUEST_TIMEOUT = "30"
CLIENT_WAIT = 20.0


async def test_a_leader_that_loses_leadership_while_a_learner_catches_up_hands_the_change_on(nodes):
    ns = [nodes(i, "--request-timeout", NODE_REQUEST_TIMEOUT) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    learner = nodes(4, "--request-timeout", NODE_REQUEST_TIMEOUT).start()
    await wait_serving(learner)
    old, c = ns[leader - 1], conns[leader - 1]
    reply = await c.call("AddLearner", node_id=4, node_addr=learner.addr, timeout=60)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply

    assert learner.proc is not None and old.proc is not None
    learner.proc.send_signal(signal.SIGSTOP)
    try:
        await make_counter(c, "lag")  # committed by the voters: the learner now lags the commit index
        change = await c.send("ChangeMembership", members=[1, 2, 3, 4])
        # The node serves each request in a task, started in the order the requests came: once
        # this GetMetrics, sent after it on the same connection, is answered, the ChangeMembership
        # has run up to its wait for the learner.
        await c.metrics()
        assert not change.done(), change.result()

        old.proc.send_signal(signal.SIGSTOP)
        others = [conn for n, conn in zip(ns, conns) if n is not old]
        new = await wait_until(lambda: leader_of(others), what="a new leader among the other voters")
        assert new != old.id
    finally:
        learner.proc.send_signal(signal.SIGCONT)  # it catches up with the new leader
        old.proc.send_signal(signal.SIGCONT)  # it hears of the new term and steps down

    try:
        reply = await asyncio.wait_for(change, CLIENT_WAIT)
    except asyncio.TimeoutError:
        raise AssertionError(f"ChangeMembership not answered within {CLIENT_WAIT} s: node {old.id}, no longer"
                             " the leader, kept waiting for the learner instead of handing the request on") from None
    ok = reply["ChangeMembershipResponse"]["response"]["Ok"]
    assert ok["membership"]["configs"] == [[1, 2, 3, 4]] and ok["membership"]["learners"] == [], reply
    assert ok["log_id"]["leader_id"]["node_id"] == new, reply  # proposed by the new leader
