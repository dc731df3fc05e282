"""Bootstrap (Init) on a fresh node, including one that already heard a
(pre)vote from some other cluster before it was initialised."""

from __future__ import annotations

import random

import pytest

from qcore.raft import Config, RawNode
from qcore.raft.types import EntryType, Message, MessageType


def _node() -> RawNode:
    return RawNode(Config(id=1, election_tick=10, heartbeat_tick=1), rng=random.Random(1))


def _drain(n: RawNode) -> list:
    out = []
    while n.has_ready():
        rd = n.ready()
        out.append(rd)
        n.advance(rd)
    return out


def test_bootstrap_after_hearing_a_higher_term_keeps_that_term_and_becomes_leader() -> None:
    n = _node()
    # a candidate of another cluster asks for a vote at term 5
    n.step(Message(MessageType.VOTE, to=1, frm=9, term=5, log_term=0, index=0))
    _drain(n)
    assert n.status().term == 5
    n.bootstrap({1: "127.0.0.1:1"}, [b"init"])
    rds = _drain(n)
    assert [e.index for rd in rds for e in rd.entries][:2] == [1, 2]
    assert n.status().term == 5  # never goes back
    n.campaign()
    _drain(n)
    st = n.status()
    assert st.role == "Leader" and st.term > 5
    assert st.conf_state.voters == (1,)


def test_bootstrap_refuses_a_node_with_a_log() -> None:
    n = _node()
    n.bootstrap({1: "127.0.0.1:1"}, [])
    _drain(n)
    with pytest.raises(RuntimeError, match="empty log"):
        n.bootstrap({1: "127.0.0.1:1"}, [])


def test_bootstrap_entries_are_the_configuration_then_the_data() -> None:
    n = _node()
    n.bootstrap({1: "a:1", 2: "b:2"}, [b"x", b"y"])
    ents = [e for rd in _drain(n) for e in rd.entries]
    assert [(e.index, e.term, e.type) for e in ents] == [
        (1, 1, EntryType.CONF_CHANGE), (2, 1, EntryType.NORMAL), (3, 1, EntryType.NORMAL)
    ]
