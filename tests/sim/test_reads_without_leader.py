"""A read asked of a leader that then died fails as `no_leader` once no leader has been
known for a while (ReplicaOptions.no_leader_ticks), instead of waiting out the request
deadline: in a 3-node cluster with one follower down, the leader crashes right after the
surviving follower passed it a ReadIndex round. Counted in simulator ticks: a seed replays."""

from __future__ import annotations

import dataclasses

from qcore.node.errors import OutcomeUnknown, RequestFailed
from qcore.protocol.errors import Kind
from qcore.sim import node as sim_node
from qcore.sim.node import SimWaiter
from qcore.sim.options import NetworkOptions, derive_options
from qcore.sim.runner import Simulation
from qcore.sim.trace import Trace


def _stranded_read(seed: int) -> tuple[int | None, BaseException | None, int]:
    """(ticks until the read settled or None, its error, the request deadline in ticks)."""
    opts = dataclasses.replace(
        derive_options(seed, 3),
        network=NetworkOptions(delay_min=1, delay_max=2),
        partition_rate=0.0, crash_rate=0.0, crash_all_rate=0.0, crash_in_ready=0.0,
        conf_change_rate=0.0, transfer_rate=0.0, link_flap_rate=0.0, clock_drift=0,
        pre_vote=True, check_quorum=True, election_tick=20, heartbeat_tick=2, request_timeout=200,
    )
    sim = Simulation(opts, Trace(keep=20))
    c = sim.cluster
    c.bootstrap(3)

    def step() -> None:
        c.now += 1
        c.deliver_due()
        c.tick_nodes()
        c.run_timers()

    election = opts.election_tick * opts.raft_tick
    for _ in range(4 * election):
        step()
    leader = c.leader()
    assert leader is not None, "no leader before the crash"
    down, survivor = [n for n in c.nodes.values() if n is not leader]
    c.crash(down, 100 * election)
    outcome: list[BaseException | None] = []
    survivor.replica.read_barrier(SimWaiter(lambda index: outcome.append(None), outcome.append))
    survivor.process()  # the round is on its way to the leader ...
    c.crash(leader, 100 * election)  # ... which dies before it can answer
    deadline = opts.request_timeout * opts.raft_tick
    for waited in range(1, deadline + 1):
        step()
        if outcome:
            return waited, outcome[0], deadline
    return None, None, deadline


def test_a_read_stranded_by_its_leaders_crash_fails_as_no_leader_before_its_deadline() -> None:
    for seed in range(6):
        waited, err, deadline = _stranded_read(seed)
        assert waited is not None and waited < deadline, (seed, waited, deadline)
        assert isinstance(err, RequestFailed) and err.kind == Kind.NO_LEADER, (seed, err)


def test_without_the_check_it_waits_out_the_deadline(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same run with `no_leader_ticks` off: the check above can fail."""
    options = sim_node.SimNode.replica_options

    def without(self: sim_node.SimNode):  # noqa: ANN202 - ReplicaOptions
        return dataclasses.replace(options(self), no_leader_ticks=0)

    monkeypatch.setattr(sim_node.SimNode, "replica_options", without)
    waited, err, deadline = _stranded_read(0)
    assert isinstance(err, OutcomeUnknown), err  # the request deadline's, one Raft tick either way
    assert waited is not None and waited > 0.9 * deadline, (waited, deadline)
