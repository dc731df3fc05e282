"""Request handlers: one coroutine per client message type.

Each handler turns a decoded request into its reply message. Leader-only
work (writes, membership changes) is done locally on the leader and
forwarded from anywhere else; linearizable reads are served by any node
after a ReadIndex round. Failures become replies — an `Error` frame, a
response's `error` field or `{"Err": ...}` — never an exception that escapes
to the connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeAlias

from websockets.asyncio.server import ServerConnection

from qcore.node.backpressure import Backpressure, ConnFlow
from qcore.node.cluster_identity import ClusterIdentity, Identity, config_digest, random_id
from qcore.node.driver import RaftDriver
from qcore.node.errors import (NO_LEADER_TEXT, NOT_INITIALISED_TEXT, LeaderChanged, NodeError, NotLeader,
                               OutcomeUnknown, RequestFailed, error_reply)
from qcore.node.forwarder import Forwarder
from qcore.node.metrics import log_id, membership_json
from qcore.node.notify import NotificationHub
from qcore.node.options import NodeOptions, addr_problem, reached_at
from qcore.node.state_machine import StateMachine
from qcore.node.users import Session, Users
from qcore.node.write_cost import WriteCost
from qcore.protocol import messages as m
from qcore.protocol.auth import MAX_PASSWORD
from qcore.protocol.errors import Kind, error, refusal
from qcore.protocol.values import CodecError
from qcore.raft.types import ConfChange, ConfChangeSingle, ConfChangeType, ConfState
from qcore.store import Store
from qcore.store.config import ConfigError

if TYPE_CHECKING:
    from qcore.node.peer_gate import PeerSide


log = logging.getLogger(__name__)

_REMOVED = "this node has been removed from the cluster; send requests to a member"
_GONE = "the connection closed before the read ran"


class _Refused(Exception):
    """A management request refused with ``{"Err": text}`` and this kind."""

    def __init__(self, kind: Kind, text: str) -> None:
        super().__init__(text)
        self.kind = kind


@dataclass(slots=True, eq=False)
class ConnContext:
    """One client or peer connection, as the handlers see it."""

    ws: ServerConnection
    forwarded: bool = False  # a /forward connection from a follower: never forward again
    inflight: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # per-connection scratch (snapshot assembly)
    outbox: list[bytes] = field(default_factory=list)  # replies waiting for this loop iteration's flush
    outbox_bytes: int = 0  # their size (a read waits while it is over the connection's output limit)
    peer: PeerSide | None = None  # is this a peer's connection, and for what
    flow: ConnFlow = field(default_factory=ConnFlow)  # paused while its replies are not read
    user: Session | None = None  # once the connection authenticated (SPEC 8.3)


@dataclass(slots=True)
class RawReply:
    """A reply relayed from the leader as it came (only its id replaced)."""

    frame: dict[str, Any]


Reply: TypeAlias = "m.Message | RawReply | None"  # None: the reply is already queued
Handler = Callable[[Any, "ConnContext | None"], Awaitable[Reply]]


class Api:
    def __init__(
        self,
        opts: NodeOptions,
        driver: RaftDriver,
        state_machine: StateMachine,
        notifications: NotificationHub,
        forwarder: Forwarder,
        cluster_identity: ClusterIdentity,
        users: Users,
        backpressure: Backpressure,
        *,
        peer_address: Callable[[int], str | None],
        metrics: Callable[[], dict[str, Any]],
        bootstrap_config: Callable[[], Any],
        bootstrapped: Callable[[], None],
        more_handlers: dict[str, Handler],
    ) -> None:
        """`peer_address(id)`: where a peer can be reached (for forwarding);
        `metrics()`: the GetMetrics object; `bootstrap_config()`: the config
        file for Init (raises ConfigError), `bootstrapped()`: Init is done;
        `more_handlers`: the operations requests (qcore.node.ops_api); `users`:
        who a connection is and what it may do (qcore.node.users, SPEC 8.3);
        `backpressure`: a read runs once its connection has room for its reply."""
        self._opts = opts
        self._backpressure = backpressure
        self._driver = driver
        self._sm = state_machine
        self._write_cost = WriteCost(lambda: state_machine.store, opts.max_batch_copy)
        self._forwarder = forwarder
        self._identity = cluster_identity
        self._peer_address = peer_address
        self._metrics = metrics
        self._bootstrap_config = bootstrap_config
        self._bootstrapped = bootstrapped
        self._no_leader_after = opts.no_leader_ticks() * opts.tick_ms / 1000  # seconds
        self._handlers: dict[str, Callable[[Any, ConnContext | None], Awaitable[Reply]]] = {
            "GetMetrics": self.get_metrics,
            "Init": self.init,
            "AddLearner": self.add_learner,
            "ChangeMembership": self.change_membership,
            "RemoveNode": self.remove_node,
            "Perform": self.perform,
            "RegisterNotification": notifications.register,
            "UnregisterNotification": notifications.unregister,
            "Authenticate": users.authenticate,
            "AuthAdmin": users.auth_admin,
            **more_handlers,
        }
        self._users = users
        users.guard(self._handlers)  # SPEC 8.2, 9: admin with users on, checked linearizably

    def handler_for(self, tag: str) -> Callable[[Any, ConnContext | None], Awaitable[Reply]] | None:
        return self._handlers.get(tag)

    # ------------------------------------------------------------ metrics
    async def get_metrics(self, msg: m.GetMetrics, conn: ConnContext | None) -> Reply:
        return m.GetMetricsResponse(msg.id, self._metrics())

    # -------------------------------------------------------------- init
    async def init(self, msg: m.Init, conn: ConnContext | None) -> Reply:
        opts = self._opts

        def refuse(kind: Kind, text: str) -> Reply:
            return refusal(m.InitResponse, msg.id, kind, text)

        if self._driver.initialised():
            return refuse(Kind.INVALID, "already initialised")
        nodes = list(msg.nodes) or [(opts.id, opts.ws_addr)]
        addresses = dict(nodes)
        if len(addresses) != len(nodes):
            return refuse(Kind.INVALID, "nodes: duplicate node id")
        if opts.id not in addresses:
            return refuse(Kind.INVALID, f"nodes must include this node ({opts.id})")
        if any(i == 0 for i in addresses):
            return refuse(Kind.INVALID, "nodes: node id 0 is reserved")
        for node_id, addr in msg.nodes:  # (this node's own --ws-addr was checked at start-up)
            problem = addr_problem(addr)
            if problem is not None:
                return refuse(Kind.INVALID, f"nodes: node {node_id}'s address: {problem}")
        if not reached_at(addresses[opts.id], opts.ws_addr):  # peers would dial an address it does not serve
            return refuse(Kind.INVALID, f"nodes: gives node {opts.id} the address {addresses[opts.id]}, "
                                        f"but it serves on --ws-addr {opts.ws_addr}")
        pw = msg.admin_password
        if pw is not None and not 0 < len(pw) <= MAX_PASSWORD:  # as UserAdd's: no admin anyone logs in as with ""
            return refuse(Kind.INVALID, f"admin_password: expected a string of 1..{MAX_PASSWORD} characters")
        try:
            config_json = self._bootstrap_config()
            auth = await self._users.admin_entry(msg.admin_password) if msg.admin_password is not None else None
            if self._identity.current is None:
                self._identity.set(Identity(random_id(), config_digest(config_json)))
            await self._driver.bootstrap(addresses, config_json, auth=auth)
        except ConfigError as exc:  # the file changed since start-up
            return refuse(Kind.INVALID, f"cannot read the config file: {exc}")
        except NodeError as exc:
            return refuse(exc.kind, str(exc))
        self._bootstrapped()
        # Answer once the initial entries are on disk; a single-node cluster
        # is also given a moment to elect itself and apply the config file,
        # so that the very next request is served.
        await self._driver.wait_for(lambda: self._driver.persisted_index >= 2, self._opts.request_timeout)
        if len(addresses) == 1:
            self._driver.campaign_if_sole_voter()
            await self._driver.wait_for(lambda: self._driver.applied >= 2, self._opts.request_timeout)
        return m.InitResponse(msg.id, m.ok())

    # -------------------------------------------------------- membership
    async def add_learner(self, msg: m.AddLearner, conn: ConnContext | None) -> Reply:
        problem = addr_problem(msg.node_addr)
        if problem is not None:  # refused before anything is proposed: a member's address cannot be changed
            return refusal(m.AddLearnerResponse, msg.id, Kind.INVALID, f"node_addr: {problem}")

        async def local() -> Any:
            driver = self._driver
            cs = driver.conf_state()
            if msg.node_id == 0:
                raise _Refused(Kind.INVALID, "node id 0 is reserved")
            members = set(cs.voters) | set(cs.learners) | set(cs.voters_outgoing)
            added: dict[str, Any] | None
            if msg.node_id in members:
                if cs.addresses.get(msg.node_id) != msg.node_addr:
                    raise _Refused(Kind.INVALID,
                                   f"node {msg.node_id} is already a member at {cs.addresses.get(msg.node_id)}")
                added = None  # nothing proposed: a null log_id, as RemoveNode and ChangeMembership answer
            else:
                cc = ConfChange(
                    changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER, msg.node_id),),
                    addresses={msg.node_id: msg.node_addr},
                )
                added = log_id(*await driver.propose_conf_change(cc), self._opts.id)  # proposed here, by the leader
            target = driver.status().commit
            caught_up = await driver.wait_for(
                lambda: self._matched(msg.node_id) >= target, self._opts.request_timeout * 3
            )
            if not caught_up:  # added, but not caught up: sending it again waits again
                raise _Refused(Kind.OUTCOME_UNKNOWN, 
                    f"node {msg.node_id} was added as a learner but has not caught up to index {target} yet;"
                    f" is it running at that address? (if the address is wrong: qcore-cli remove-node {msg.node_id},"
                    " then add it again)"
                )
            return m.ok({"log_id": added, "membership": membership_json(driver.conf_state())})

        return await self._leader_only(msg, conn, local, m.AddLearnerResponse)

    async def change_membership(self, msg: m.ChangeMembership, conn: ConnContext | None) -> Reply:
        async def local() -> Any:
            members = set(msg.members)
            if not members:
                raise _Refused(Kind.INVALID, "members must not be empty")
            cs = self._driver.conf_state()
            if cs.voters_outgoing:
                raise _Refused(Kind.UNAVAILABLE, "a membership change is already in progress")
            unknown = sorted(members - set(cs.voters) - set(cs.learners))
            if unknown:
                raise _Refused(Kind.INVALID, f"node(s) {unknown} are not members; add them with AddLearner first")
            await self._caught_up(sorted(members - set(cs.voters)))
            return await self._set_voters(cs, members, msg.retain)

        return await self._leader_only(msg, conn, local, m.ChangeMembershipResponse)

    async def remove_node(self, msg: m.RemoveNode, conn: ConnContext | None) -> Reply:
        """Take a voter (as ChangeMembership without it would) or a learner (one simple
        change) out of the configuration; a node that is not a member is
        answered Ok with a null log_id, so that a retried request is harmless."""
        async def local() -> Any:
            driver = self._driver
            cs = driver.conf_state()
            if cs.voters_outgoing:
                raise _Refused(Kind.UNAVAILABLE, "a membership change is already in progress")
            gone = msg.node_id
            if gone in cs.voters:
                if len(cs.voters) == 1:
                    raise _Refused(Kind.INVALID, f"node {gone} is the only voter; a cluster cannot remove its last voter")
                return await self._set_voters(cs, set(cs.voters) - {gone}, retain=False)
            if gone not in cs.learners:
                return m.ok({"log_id": None, "membership": membership_json(cs)})
            cc = ConfChange(changes=(ConfChangeSingle(ConfChangeType.REMOVE_NODE, gone),))
            term, index = await driver.propose_conf_change(cc)  # resolves once applied
            return m.ok({"log_id": log_id(term, index, self._opts.id),  # proposed here, by the leader
                         "membership": membership_json(driver.conf_state())})

        return await self._leader_only(msg, conn, local, m.RemoveNodeResponse)

    async def _set_voters(self, cs: ConfState, members: set[int], retain: bool) -> Any:
        """Make `members` (all in `cs` already) the voters (joint consensus when more than one
        voter changes, else one simple change); voters left out
        are removed, or kept as learners with `retain`. Runs on the leader."""
        driver = self._driver
        voters = set(cs.voters)
        changes = [ConfChangeSingle(ConfChangeType.ADD_NODE, n) for n in sorted(members - voters)]
        demote = ConfChangeType.ADD_LEARNER if retain else ConfChangeType.REMOVE_NODE
        changes += [ConfChangeSingle(demote, n) for n in sorted(voters - members)]
        if not changes:
            return m.ok({"log_id": None, "membership": membership_json(cs)})
        term, _ = await driver.propose_conf_change(ConfChange(changes=tuple(changes)))

        def settled() -> bool:
            now = driver.conf_state()
            return not now.voters_outgoing and set(now.voters) == members

        if not await driver.wait_for(settled, self._opts.request_timeout):
            raise _Refused(Kind.OUTCOME_UNKNOWN,
                           "the joint configuration was entered but has not been left yet; check GetMetrics")
        # The entry that set the configuration returned (leaving the joint one, as openraft's
        # change_membership answers with its uniform entry): GetMetrics' membership_config.log_id.
        # Its leader: this node in the term it proposed in, else the current term's (GetMetrics' rule).
        st = driver.status()
        by = self._opts.id if st.conf_term == term else (st.leader_id if st.conf_term == st.term else 0)
        return m.ok({"log_id": log_id(st.conf_term, st.conf_index, by), "membership": membership_json(st.conf_state)})

    async def _caught_up(self, learners: list[int]) -> None:
        """Wait for `learners`, about to become voters, to hold the log up to the leader's
        commit index now; refuse if they do not within the request timeout. A voter that never
        runs (its learner added at a wrong address) would leave a cluster of one or two without
        a quorum, even to remove it again; etcd likewise promotes only a learner in sync."""
        if not learners:
            return
        driver = self._driver
        target = driver.status().commit

        def lagging() -> list[int]:
            return [n for n in learners if self._matched(n) < target]

        caught_up = await driver.wait_for(lambda: not lagging() or not driver.is_leader(), self._opts.request_timeout)
        if not driver.is_leader():  # nothing proposed: _leader_only takes it to the new leader
            raise LeaderChanged("leadership moved while the new voters were catching up")
        if caught_up:
            return
        late = lagging()
        raise _Refused(Kind.UNAVAILABLE,
                       f"node(s) {late} have not caught up to index {target} yet, so they are not made voters;"
                       f" is each running at its address? (if an address is wrong: qcore-cli remove-node"
                       f" {late[0]}, then add it again)")

    def _matched(self, node_id: int) -> int:
        progress = self._driver.status().progress or {}
        pr = progress.get(node_id)
        return pr.match if pr is not None else 0

    # ------------------------------------------------------------ perform
    async def perform(self, msg: m.Perform, conn: ConnContext | None) -> Reply:
        try:
            command, entry, decoded = self._users.prepare(conn, msg.request)
        except CodecError as exc:
            return error(msg.id, Kind.INVALID, f"Perform.request: {exc}")
        if not self._driver.initialised():
            return error(msg.id, Kind.NOT_INITIALISED, NOT_INITIALISED_TEXT)
        if self._driver.removed():
            return error(msg.id, Kind.REMOVED, _REMOVED)
        if Store.is_read_only(command):
            await self.read_barrier()
            if conn is not None:
                await self._backpressure.drained(conn)
            return self._backpressure.timed(self._users.read_reply, msg.id, conn, command)
        too_costly = self._write_cost.refusal(command)
        if too_costly is not None:
            return error(msg.id, Kind.INVALID, too_costly)
        return await self.propose(msg.id, conn, entry, decoded)

    async def propose(self, rid: Any, conn: ConnContext | None, entry: Any, decoded: Any) -> Reply:
        """Propose `entry` (a command as the log carries it; `decoded` its decoded form) on the
        leader, from a follower through it; the reply to the Perform that made it."""
        async def local() -> Any:
            return await self._driver.propose_command(entry, decoded)

        reply = await self._leader_only(m.Perform(rid, entry), conn, local, m.PerformResponse)
        if isinstance(reply, m.PerformResponse):
            return _perform_reply(rid, reply.response)
        return reply

    def perform_fast(self, msg: m.Perform, conn: ConnContext, reply: Callable[[Reply], None],
                     fallback: Callable[[], None]) -> bool:
        """Serve a Perform from future callbacks if it is the common case.

        Returns False, having done nothing, when the request needs the full
        path of `perform` (bad request, uninitialised or removed node). A
        write that neither this node nor a reachable leader can take calls
        `fallback` (which runs `perform`: it waits for a leader and forwards). Otherwise `reply`
        is called exactly once with the reply.
        """
        try:
            command, entry, decoded = self._users.prepare(conn, msg.request)
        except CodecError:
            return False
        driver = self._driver
        if not driver.initialised() or driver.removed():
            return False
        rid = msg.id
        if Store.is_read_only(command):
            if not driver.leader_id():
                return False  # the full path says "no leader" once it is sure, before the client gives up
            read_reply = self._users.read_reply
            backpressure = self._backpressure

            def run(f: "asyncio.Future[int]") -> None:
                reply(_outcome(rid, f, lambda _: read_reply(rid, conn, command), read=True))

            def on_barrier(f: "asyncio.Future[int]") -> None:
                # Its reply may be large: it waits until the connection drains (and for a turn).
                backpressure.run_read(conn, lambda: run(f), lambda: reply(error(rid, Kind.UNAVAILABLE, _GONE)))

            driver.read_barrier().add_done_callback(on_barrier)
            return True
        too_costly = self._write_cost.refusal(command)
        if too_costly is not None:
            reply(error(rid, Kind.INVALID, too_costly))
            return True

        # On the leader the write is proposed here; on a follower the driver
        # hands it to the leader over the Raft link (NotLeader if it cannot,
        # LeaderChanged if the leader went before committing it, not applied:
        # then the full path waits for a leader and sends it there).
        def on_applied(f: "asyncio.Future[Any]") -> None:
            if not f.cancelled() and isinstance(f.exception(), (NotLeader, LeaderChanged)):
                fallback()
            else:
                reply(_outcome(rid, f, lambda r: _perform_reply(rid, r)))

        driver.propose_command(entry, decoded, on_settled=on_applied)
        return True

    async def read_barrier(self) -> None:
        """Until local state is linearizable; RequestFailed ``no_leader`` once the read has
        waited NodeOptions.no_leader_ticks with no leader known (the runtime core checks every
        read, the fast path's too: Replica._check_reads_have_leader); ``removed`` at once on a
        node removed from the cluster (no leader will ever answer it)."""
        driver = self._driver
        if driver.removed():
            raise RequestFailed(_REMOVED, Kind.REMOVED)
        try:
            await driver.read_barrier()  # (cancelled with its caller)
        except OutcomeUnknown as exc:  # a read has no effect: it simply failed
            raise _read_failed(str(exc), driver.leader_id()) from None

    # -------------------------------------------------------------- shared

    async def _leader_only(
        self,
        msg: Any,
        conn: ConnContext | None,
        local: Callable[[], Awaitable[Any]],
        reply_type: type,
    ) -> Reply:
        """Run `local` on the leader; from a follower, forward the request."""
        driver = self._driver
        forwarded = conn is not None and conn.forwarded
        if not driver.initialised():
            return error(msg.id, Kind.NOT_INITIALISED, NOT_INITIALISED_TEXT)
        if driver.removed():
            return error(msg.id, Kind.REMOVED, _REMOVED)
        deadline = time.monotonic() + self._opts.request_timeout
        while True:
            if driver.is_leader():
                try:
                    return reply_type(msg.id, await local())
                except _Refused as exc:
                    return refusal(reply_type, msg.id, exc.kind, str(exc))
                except (NotLeader, LeaderChanged):
                    if forwarded:
                        raise
                    continue  # lost leadership between check and commit (not applied): look again
            leader = driver.leader_id()
            if forwarded:
                raise NotLeader(leader, driver.address_of(leader) if leader else None)
            unreachable: RequestFailed | None = None
            if leader and leader != self._opts.id:
                addr = self._peer_address(leader)
                if addr is not None:
                    try:
                        return await self._forward(msg, addr, deadline)
                    except RequestFailed as exc:
                        # Not sent: the leader cannot be reached (its process may
                        # have died). Wait for the next one rather than bounce
                        # the client, which would back off and come back later.
                        unreachable = exc
            wait = min(deadline - time.monotonic(), self._no_leader_after)
            if wait <= 0 or not await driver.wait_for(
                lambda: driver.leader_id() not in (0, leader) or driver.is_leader(), wait
            ):
                if unreachable is not None:
                    raise unreachable
                if driver.leader_id():
                    raise RequestFailed(f"cannot reach the leader ({driver.leader_id()})", Kind.UNAVAILABLE)
                raise RequestFailed(NO_LEADER_TEXT, Kind.NO_LEADER)

    async def _forward(self, msg: Any, addr: str, deadline: float) -> Reply:
        body = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg) if f.name != "id"}
        reply = await self._forwarder.forward(
            addr, msg.TAG, body, max(0.1, deadline - time.monotonic())
        )
        ((tag, inner),) = reply.items()
        return RawReply({tag: {**inner, "id": msg.id}})


def _perform_reply(rid: Any, response: Any) -> Reply:
    """A command's response, or an Error frame if applying it failed internally
    (or its reply was too large to build: qcore.node.state_machine)."""
    if "Error" in response:
        return error(rid, Kind(response.get("kind", Kind.INTERNAL)), str(response["Error"]))
    return m.PerformResponse(rid, response)


def _read_failed(text: str, leader_id: int) -> RequestFailed:
    """A read whose barrier did not complete: it had no effect, so it simply failed."""
    return RequestFailed(text, Kind.UNAVAILABLE if leader_id else Kind.NO_LEADER)


def _outcome(rid: Any, fut: "asyncio.Future[Any]", make: Callable[[Any], Reply], read: bool = False) -> Reply:
    """The reply for a finished future: `make(result)`, or an Error frame."""
    if fut.cancelled():
        return error(rid, Kind.SHUTTING_DOWN, "node is shutting down")
    exc = fut.exception()
    if exc is None:
        try:
            return make(fut.result())
        except Exception as err:  # a bug must still produce a reply
            log.exception("request %r failed", rid)
            return error(rid, Kind.INTERNAL, f"internal error: {err}")
    if read and isinstance(exc, OutcomeUnknown):  # a read has no effect: it simply failed
        exc = RequestFailed(str(exc), Kind.UNAVAILABLE)
    if isinstance(exc, NodeError):
        return error_reply(rid, exc)
    return error(rid, Kind.INTERNAL, f"internal error: {exc}")
