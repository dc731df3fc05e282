"""Static configuration of one Raft node (etcd-raft's `raft.Config`).

Time is counted in ticks: the runtime decides how long a tick is (e.g.
100 ms) and calls `RawNode.tick()` that often. Nothing in the core reads a
clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Config"]


@dataclass(slots=True)
class Config:
    id: int
    # A follower that hears nothing from a leader for a randomised
    # [election_tick, 2*election_tick) ticks campaigns. Must be
    # well above heartbeat_tick so that a healthy leader is never deposed.
    election_tick: int = 10
    # The leader sends heartbeats every heartbeat_tick ticks.
    heartbeat_tick: int = 1
    # Pre-vote (Raft thesis 9.6): a would-be candidate first asks whether it
    # could win, without bumping its term, so a node rejoining after a
    # partition cannot force a healthy leader to step down.
    pre_vote: bool = True
    # The leader steps down when it has not heard from a quorum within an
    # election timeout; followers then ignore (pre)votes while they have a
    # leader (leader stickiness).
    check_quorum: bool = True
    # A follower whose connection to its leader went down (LINK_DOWN, from
    # the transport) and that hears nothing from the leader for a randomised
    # [link_down_tick, 2*link_down_tick] ticks campaigns, with pre-vote; a
    # split vote in that campaign is retried as fast. A crashed leader's
    # connections close at once, so the cluster need not wait an election
    # timeout. Pre-vote and check-quorum keep a follower whose link merely
    # flapped from deposing a leader the others still hear, so this is on
    # only with both. 0 turns it off.
    link_down_tick: int = 1
    # Byte cap on the entries of one APP message (at least one entry is
    # always sent, however large). Batches many entries per message.
    max_size_per_msg: int = 1 << 20
    # Pipelining: how many APP messages may be in flight to one follower in
    # replicate state before the leader waits for acknowledgements.
    max_inflight_msgs: int = 256
    # Byte cap on the committed entries handed out by one Ready (at least
    # one entry is always handed out). 0 means no cap.
    max_committed_size_per_ready: int = 0

    def validate(self) -> None:
        """Refuse settings under which Raft's timing assumptions break."""
        if self.id <= 0:
            raise ValueError("Config.id must be a positive node id")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.link_down_tick < 0:
            raise ValueError("link_down_tick must be >= 0")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be > 0")
        if self.max_size_per_msg <= 0:
            raise ValueError("max_size_per_msg must be > 0")
