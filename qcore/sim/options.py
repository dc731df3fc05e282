"""Every knob of one simulated run, derived from nothing but the seed.

Like TigerBeetle's VOPR, a run is fully described by its seed (and the code
revision): `derive_options(seed)` draws the cluster size, network fault
rates, crash rates, snapshot threshold and so on from one `random.Random`,
so that printing the seed is enough to replay a failure exactly. Drawing the
rates per seed ("swarm testing") matters: a seed with no packet loss but many
crashes explores different corners than one with heavy loss and no crashes,
and averaging every fault into every run would hide both.

Each subsystem (network, disk faults, workload, every node's Raft core) gets
its own generator derived from the seed and a name, so that changing how
much randomness one of them consumes does not reshuffle the others.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass

MAX_NODES = 5


def derive_rng(seed: int, name: str) -> random.Random:
    """An independent, reproducible generator for one named part of a run."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


@dataclass(slots=True)
class NetworkOptions:
    """Per-packet fault rates; delays are in simulator ticks."""

    delay_min: int = 1
    delay_max: int = 10
    loss: float = 0.0  # probability a packet is dropped
    duplicate: float = 0.0  # probability a packet is delivered twice
    reorder: float = 0.0  # probability a packet may overtake earlier ones on its link
    straggle: float = 0.0  # probability a packet is held up to 20x delay_max (arrives very stale)


@dataclass(slots=True)
class SimOptions:
    seed: int
    nodes: int  # initial cluster size (all voters)
    steps: int  # simulator ticks in the safety phase
    liveness_steps: int  # bound on the liveness phase, in simulator ticks
    raft_tick: int  # simulator ticks between two RawNode.tick() calls
    clock_drift: int  # a node's tick period varies by up to this many ticks
    election_tick: int
    heartbeat_tick: int
    pre_vote: bool
    check_quorum: bool
    max_size_per_msg: int
    max_inflight_msgs: int
    network: NetworkOptions
    partition_rate: float  # per tick: chance a new partition starts
    partition_ticks: int  # mean partition duration
    crash_rate: float  # per tick: chance a running node crashes
    crash_all_rate: float  # per tick: chance the whole cluster crashes at once (power cut)
    crash_in_ready: float  # per Ready: chance the node crashes while handling it
    restart_ticks: int  # mean downtime of a crashed node
    torn_unsynced: bool  # on crash, keep a random prefix of unsynced writes (else none)
    snapshot_threshold: int  # applied entries between application snapshots
    propose_rate: float  # per tick
    read_rate: float  # per tick
    conf_change_rate: float  # per tick
    transfer_rate: float  # per tick: chance of a leadership transfer request
    max_extra_nodes: int  # how many new node ids membership changes may add
    # The node runtime core (qcore.node.replica), in its own units:
    notice_delay: int  # simulator ticks a leader may hold a commit-only append
    snapshot_build_ticks: int  # simulator ticks an own snapshot takes to build
    snapshot_keep: int  # entries kept behind an own snapshot
    max_batch_commands: int  # client writes per log entry
    request_timeout: int  # Raft ticks before a request fails (outcome unknown)
    # Connections closing (RawNode.report_link_down): always when a node
    # crashes; besides, at random between live nodes (a reset, a flap) ...
    link_flap_rate: float  # per tick: chance some live node's link to another closes
    partition_resets: float  # ... and, with this chance, on every link a partition cuts

    def describe(self) -> str:
        d = asdict(self)
        net = d.pop("network")
        parts = [f"{k}={v}" for k, v in d.items()]
        parts += [f"net.{k}={v}" for k, v in net.items()]
        return " ".join(parts)


def _rate(rng: random.Random, choices: tuple[float, ...]) -> float:
    return rng.choice(choices)


def derive_options(seed: int, nodes: int | None = None, steps: int | None = None) -> SimOptions:
    """Draw one run's configuration from its seed; explicit arguments win."""
    rng = derive_rng(seed, "options")
    n = rng.randint(1, MAX_NODES)
    if nodes is not None:
        n = nodes
    raft_tick = rng.choice((5, 10, 10, 20))
    election_tick = rng.choice((5, 10, 10, 15))
    heartbeat_tick = rng.choice((1, 1, 2, 3))
    heartbeat_tick = min(heartbeat_tick, max(1, election_tick // 3))
    delay_max = rng.choice((1, 5, raft_tick, 2 * raft_tick, 4 * raft_tick))
    network = NetworkOptions(
        delay_min=1,
        delay_max=max(1, delay_max),
        loss=_rate(rng, (0.0, 0.0, 0.01, 0.05, 0.2)),
        duplicate=_rate(rng, (0.0, 0.0, 0.01, 0.05)),
        reorder=_rate(rng, (0.0, 0.05, 0.2)),
        straggle=_rate(rng, (0.0, 0.0, 0.001, 0.01)),
    )
    default_steps = 400 * raft_tick
    return SimOptions(
        seed=seed,
        nodes=n,
        steps=default_steps if steps is None else steps,
        # Generous: elections with randomised timeouts, pre-vote rounds and
        # snapshot catch-up after long partitions all have to fit.
        liveness_steps=raft_tick * election_tick * 40,
        raft_tick=raft_tick,
        clock_drift=rng.choice((0, 0, 1, raft_tick // 5)),
        election_tick=election_tick,
        heartbeat_tick=heartbeat_tick,
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        max_size_per_msg=rng.choice((64, 1024, 1 << 20)),
        max_inflight_msgs=rng.choice((1, 4, 256)),
        network=network,
        partition_rate=_rate(rng, (0.0, 0.0005, 0.002, 0.01)) / raft_tick * 10,
        partition_ticks=rng.choice((5, 20, 60)) * raft_tick,
        crash_rate=_rate(rng, (0.0, 0.0002, 0.001, 0.004)) / raft_tick * 10,
        crash_all_rate=_rate(rng, (0.0, 0.0, 0.0, 0.0002)) / raft_tick * 10,
        crash_in_ready=_rate(rng, (0.0, 0.0, 0.002, 0.01)),
        restart_ticks=rng.choice((1, 10, 50)) * raft_tick,
        torn_unsynced=rng.random() < 0.5,
        snapshot_threshold=rng.choice((2, 5, 20, 100, 10_000)),
        propose_rate=_rate(rng, (0.02, 0.1, 0.3)),
        read_rate=_rate(rng, (0.0, 0.02, 0.1)),
        conf_change_rate=_rate(rng, (0.0, 0.0, 0.002, 0.01)) / raft_tick * 10,
        transfer_rate=_rate(rng, (0.0, 0.0, 0.001)) / raft_tick * 10,
        max_extra_nodes=rng.choice((0, 2, 4)),
        notice_delay=rng.choice((0, 1, raft_tick, 4 * raft_tick)),
        snapshot_build_ticks=rng.choice((1, raft_tick, 10 * raft_tick)),
        snapshot_keep=rng.choice((0, 0, 5)),
        max_batch_commands=rng.choice((1, 4, 1024)),
        request_timeout=election_tick * rng.choice((10, 20)),
        link_flap_rate=_rate(rng, (0.0, 0.0, 0.0005, 0.003)) / raft_tick * 10,
        partition_resets=rng.choice((0.0, 0.5, 1.0)),
    )
