"""qcore's Raft consensus core, sans-I/O (modelled on etcd-io/raft).

Start at `rawnode.py` (the contract with the runtime: the Ready loop), then
`core.py` (the state machine). The small modules hold one idea each:
`log.py` (the in-memory log), `quorum.py` (majority and joint quorums),
`tracker.py` (per-follower progress), `confchange.py` (membership changes),
`read_only.py` (batched ReadIndex). `types.py` holds the data types shared
with storage and the wire codec. See docs/raft.md.
"""

from .config import Config
from .errors import ConfChangeRejected, ProposalDropped, RaftError
from .rawnode import RawNode, Ready, Role, SoftState
from .status import ProgressStatus, Status

__all__ = [
    "Config",
    "ConfChangeRejected",
    "ProgressStatus",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "Ready",
    "Role",
    "SoftState",
    "Status",
]
