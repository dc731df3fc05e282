"""Clusters that form themselves (SPEC 9): `--initial-cluster` and `--join`.

`--initial-cluster 1=h:p,2=h:p,3=h:p`, given to every member, makes each
fresh member write the same first log entries an `Init` would — the
configuration with every member a voter, then the config file's entry,
stamped with time 0 rather than the clock so that the bytes are the same on
every member — and the members elect a leader among themselves. The
cluster's identity (qcore.node.cluster_identity) is derived from the member
list and the config file's digest, so members started with different config
files refuse each other's Raft messages instead of forming one cluster with
two schemas. On a restart (the data dir holds a log) the flag is ignored.
With `--admin-password-file` the entry also starts users on (SPEC 8.3); the
password's hash is salted with a value derived from the cluster's identity,
so every member writes the same hash, and the hash is folded into the
identity, so members given different passwords refuse each other too.

`--join h:p[,h:p]`: a node that is not yet a voter asks the cluster (through
the first listed node that answers, then its leader) to add it as a learner;
AddLearner answers once it has caught up, and then the node asks to be made
a voter (`--join-as-learner`: it stays a learner). It keeps asking until it
is done or stops, so a node restarted mid-way finishes the job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from qcore.node.cluster_identity import Identity, config_digest, derived_id
from qcore.node.driver import stop_process
from qcore.node.errors import NodeError
from qcore.node.options import StartupError, reached_at
from qcore.node.passwords import hash_with_salt
from qcore.protocol import messages as m

if TYPE_CHECKING:
    from qcore.node.server import Node

log = logging.getLogger(__name__)

_JOIN_RETRY = 2.0  # seconds between two attempts to join
# The config entry of a self-formed cluster: the same on every member.
FORMATION_TIME = (0, 0)


def parse_members(text: str) -> dict[int, str]:
    """`1=h:p,2=h:p` -> {1: "h:p", 2: "h:p"}; ValueError says what is wrong."""
    members: dict[int, str] = {}
    for item in (t.strip() for t in text.split(",")):
        node_id, sep, addr = item.partition("=")
        host, colon, port = addr.rpartition(":")
        if not sep or not node_id.isdigit() or not colon or not host or not port.isdigit():
            raise ValueError(f"expected ID=HOST:PORT[,ID=HOST:PORT...], got {item!r}")
        nid = int(node_id)
        if nid == 0 or nid >= 1 << 64:
            raise ValueError(f"node id {nid} is not a positive 64-bit integer")
        if nid in members:
            raise ValueError(f"node id {nid} is listed twice")
        members[nid] = addr
    return members


def formation_identity(members: dict[int, str], load_config_json: Any) -> Identity:
    digest = config_digest(load_config_json)
    return Identity(derived_id(members, digest), digest)


def initial_cluster_problem(members: dict[int, str], node_id: int, ws_addr: str) -> str | None:
    """Why this node cannot form a cluster from ``members``, or None."""
    if node_id not in members:
        return f"--initial-cluster does not list this node's id {node_id}"
    if not reached_at(members[node_id], ws_addr):
        return f"--initial-cluster gives node {node_id} the address {members[node_id]}, but it serves on --ws-addr {ws_addr}"
    return None


async def form_initial_cluster(node: "Node", members: dict[int, str]) -> None:
    """Write this member's first entries, unless its data dir has a log already."""
    driver = node.driver
    if driver.initialised():
        log.info("--initial-cluster ignored: this node's data dir already holds a cluster")
        return
    problem = initial_cluster_problem(members, node.opts.id, node.opts.ws_addr)
    if problem is not None:
        raise StartupError(problem)
    config_json = node.bootstrap_config_json()
    identity = formation_identity(members, config_json)
    auth = None
    password = node.opts.admin_password()
    if password is not None:
        salt = hashlib.sha256(f"qcore-admin-salt\n{identity.cluster_id}".encode()).digest()[:16]
        admin_hash = await asyncio.get_running_loop().run_in_executor(None, hash_with_salt, password, salt)
        auth = {"admin": admin_hash}
        digest = identity.config_sha256 or ""
        folded = f"{digest}\nadmin {hashlib.sha256(admin_hash.encode()).hexdigest()}"
        identity = Identity(derived_id(members, folded), identity.config_sha256)
    node.cluster_identity.set(identity)
    await driver.bootstrap(members, config_json, at=FORMATION_TIME, auth=auth)
    node.bootstrapped()
    log.info("formed cluster %s from --initial-cluster", members)
    driver.campaign_if_sole_voter()


async def join_cluster(node: "Node", seeds: list[str], as_learner: bool) -> None:
    """Ask the cluster to take this node in, until it has (see the module docstring)."""
    me, my_addr = node.opts.id, node.opts.ws_addr
    timeout = node.opts.request_timeout * 3
    while not node.stopping:
        cs = node.driver.conf_state()
        if me in cs.voters or (as_learner and me in cs.learners):
            log.info("joined the cluster as a %s", "voter" if me in cs.voters else "learner")
            return
        try:
            leader_addr = await _find_leader(node, seeds)
            lost = _lost_entries(node, await _call(node, leader_addr, "GetMetrics", {}, timeout))
            if lost is not None:
                stop_process(2, lost, trace=False)  # exit 2, as a start-up error
            if me not in cs.learners:
                log.info("asking the leader at %s to add node %d at %s as a learner", leader_addr, me, my_addr)
                await _call(node, leader_addr, "AddLearner", {"node_id": me, "node_addr": my_addr}, timeout)
            if not as_learner:
                metrics = await _call(node, leader_addr, "GetMetrics", {}, timeout)
                configs = metrics["membership_config"]["membership"]["configs"]
                voters = sorted(set(configs[0]) | {me})
                log.info("asking the leader at %s to make the voters %s", leader_addr, voters)
                await _call(node, leader_addr, "ChangeMembership", {"members": voters}, timeout)
        except (NodeError, KeyError, TypeError, IndexError, ValueError) as exc:
            log.warning("joining the cluster via %s: %s; trying again in %.0fs", ",".join(seeds), exc, _JOIN_RETRY)
        await node.driver.wait_for(lambda: node.stopping, _JOIN_RETRY)


def _lost_entries(node: "Node", leader_metrics: dict[str, Any]) -> str | None:
    """Why this node must not join, if the leader counts it as a member holding entries its
    log lacks: its data dir was lost (wiped, or a new disk) but not its membership. It gets
    no entries then (the leader thinks it has them) and, a voter with an empty log, it could
    help elect a leader that lacks committed entries; etcd's raft panics on this alike."""
    me = node.opts.id
    listed = ((leader_metrics.get("membership_config") or {}).get("membership") or {}).get("nodes", {}).get(str(me))
    if listed is None or not reached_at(str(listed), node.opts.ws_addr):
        return None  # not a member, or another node has this id (AddLearner says so): nothing of ours was lost
    matched = ((leader_metrics.get("replication") or {}).get(str(me)) or {}).get("index") or 0
    if matched <= node.driver.persisted_index:
        return None
    return (f"node {me} is a member of the cluster and its leader holds it acknowledged up to log index "
            f"{matched}, but its data dir holds the log only up to {node.driver.persisted_index}: this "
            f"node's data was lost. Remove it first (qcore-cli remove-node {me}), then start it again "
            f"with --join and an empty data dir")


async def _find_leader(node: "Node", seeds: list[str]) -> str:
    """The leader's address, as the first seed that answers sees it."""
    errors = []
    for addr in seeds:
        try:
            metrics = await _call(node, addr, "GetMetrics", {}, 3.0)
        except NodeError as exc:
            errors.append(f"{addr}: {exc}")
            continue
        leader = metrics.get("current_leader")
        nodes = (metrics.get("membership_config") or {}).get("membership", {}).get("nodes", {})
        if leader is not None and str(leader) in nodes:
            return str(nodes[str(leader)])
        errors.append(f"{addr}: knows no leader")
    raise NodeError("; ".join(errors) or "no --join address given")


async def _call(node: "Node", addr: str, tag: str, body: dict[str, Any], timeout: float) -> Any:
    """One request to `addr` over the node's forwarding link; the Ok value."""
    reply = await node.forwarder.forward(addr, tag, body, timeout)
    ((rtag, inner),) = reply.items()
    if rtag == "Error":
        raise NodeError(str(inner.get("error")))
    if rtag == "GetMetricsResponse":
        return inner["response"]
    ok, value = m.result_of(inner.get("response"))
    if not ok:
        raise NodeError(str(value))
    return value
