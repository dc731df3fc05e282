"""The node: storage + Raft core + store wired behind one WebSocket port.

`Node.start()` recovers the data directory, builds the Raft core from it,
starts the driver task and the server; `Node.stop()` shuts down in order
(stop accepting, hand leadership over, answer or fail what is in flight,
close storage) and is idempotent.

Every connection is read by one task that decodes each frame's envelope and
either steps a Raft message into the driver (peers) or spawns a task per
client request, so replies go out as soon as each is ready, in any order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from typing import Any

import orjson
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qcore import wsfast
from qcore.node import bootstrap, removal
from qcore.node.api import Api, ConnContext, RawReply
from qcore.node.backpressure import Backpressure
from qcore.node.bootstrap_config import load_bootstrap_config
from qcore.node.cluster_identity import UNFINISHED_RESTORE, ClusterIdentity, from_path
from qcore.node.console import ConsoleFiles
from qcore.node.driver import RaftDriver
from qcore.node.endpoints import node_routes
from qcore.node.exposure import UsersExposure, readable_by_others, security_warning
from qcore.node.errors import NOT_INITIALISED_TEXT, NodeError, RequestFailed, error_reply
from qcore.node.forwarder import Forwarder
from qcore.node.http import HttpReply
from qcore.node.metrics import build_metrics
from qcore.node.ops_api import ops_handlers
from qcore.node.notify import NotificationHub
from qcore.node.options import NodeOptions, StartupError, reached_at
from qcore.node.peer_auth import PeerKeys
from qcore.node.peer_dial import PeerDialer
from qcore.node.peer_gate import PEER_TAGS, PeerGate, PeerSide
from qcore.node.prometheus import Exposition
from qcore.node.state_machine import StateMachine
from qcore.node.stats import NodeStats
from qcore.node.tls import NodeTls
from qcore.node.transport import PeerTransport, declared_level, peer_identity
from qcore.node.users import Users
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error
from qcore.protocol.raft_codec import RaftCodecError
from qcore.protocol.values import encode_load_config
from qcore.raft import Config, RawNode, Role
from qcore.storage import FileStorage, MemoryStorage, Storage
from qcore.wsfast import SinkServerConnection, server_connection_class, write_frames

log = logging.getLogger(__name__)

# The id of an oversized frame, if it comes first, without parsing the rest.
_LEADING_ID = re.compile(r'\s*\{\s*"(\w+)"\s*:\s*\{\s*"id"\s*:\s*(?:"([^"\\]{0,200})"|(\d{1,20}))')

_RAFT_TAGS = PEER_TAGS  # frames for the peer transport (only from peers when peer authentication is on)


def _raft_peer(conn: ConnContext) -> bool:
    """Raft's own traffic never waits a turn behind clients' (qcore.node.backpressure TURN)."""
    side = conn.peer
    return side is not None and side.peer and side.purpose == "raft"


async def check_listenable(host: str, port: int, ws_addr: str) -> None:
    """StartupError unless every address `host` resolves to can be bound at `port`, as serve()
    binds them: a port in use, or a host that is not this machine's, stops the node before its
    data dir is created or --init/--initial-cluster writes a cluster into it (etcd binds its
    listeners first). The sockets are closed at once; serve() binds again once the node is ready."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)
        for family, kind, proto, _, sockaddr in set(infos):
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(sockaddr)
    except OSError as e:
        raise StartupError(f"cannot listen on --ws-addr {ws_addr}: {e.strerror or e}") from None


class Node:
    def __init__(self, opts: NodeOptions) -> None:
        self.opts = opts
        self._bootstrap_json: Any = None  # the config file's LoadConfig JSON, read only by an uninitialised node
        data_dir = None if opts.in_memory else opts.resolved_data_dir()
        if data_dir is not None and (data_dir / UNFINISHED_RESTORE).exists():
            raise StartupError(f"data dir {data_dir} holds a `qcore snapshot restore` that did not finish "
                               f"({data_dir / UNFINISHED_RESTORE}): empty it and run the restore again")
        self.cluster_identity = ClusterIdentity(opts.id, data_dir)
        self.stopping = False
        self.driver: RaftDriver
        self.transport: PeerTransport
        self.state_machine: StateMachine
        # Security (SPEC 8.1, 8.2): files are read now, so a bad one stops the start-up.
        self.tls = (NodeTls.load(opts.tls_cert_file, opts.tls_key_file, opts.tls_ca_file, opts.peer_cert_auth)
                    if opts.tls_cert_file is not None and opts.tls_key_file is not None else None)
        self.peer_keys = PeerKeys.load(opts.peer_secret_files) if opts.peer_secret_files else None
        self.dialer = PeerDialer(opts.id, self.tls.peers if self.tls is not None else None, self.peer_keys)
        self.gate = PeerGate(opts.id, self.peer_keys, self.tls is not None and self.tls.cert_auth,
                             self._peer_connected, handshake_timeout=opts.handshake_timeout)
        self.forwarder = Forwarder(max_size=opts.max_frame_bytes * 2, dialer=self.dialer)
        self.backpressure = Backpressure(opts.max_conn_output, opts.max_output, opts.stuck_timeout,
                                         max_held=opts.max_frame_bytes * 2, serve_held=self._on_frame)
        # Users (SPEC 8.3): who a client connection is and what it may send.
        self.users = Users(lambda: self.state_machine, self._registration_barrier,
                           lambda rid, conn, entry, decoded: self.api.propose(rid, conn, entry, decoded),
                           lambda: self.driver.initialised(), max_reply=opts.max_frame_bytes)
        self.notifications = NotificationHub(
            retain=opts.notify_retain, max_per_conn=opts.notify_max_per_conn, queue_limit=opts.notify_queue_limit,
            queue_bytes=opts.notify_queue_bytes,
            store=lambda: self.state_machine.store,
            barrier=self._notify_barrier,
            viewer=self.users.viewer,
        )
        self.api: Api  # built by start(), once the driver exists
        # Counters for /metrics; per-request ones only with metrics on
        # (`--no-metrics` exists to measure what they cost).
        self.stats = NodeStats()
        self._request_stats = self.stats if opts.metrics else None
        self.http = node_routes(self, Exposition(self, self.stats) if opts.metrics else None,
                                ConsoleFiles.packaged() if opts.console else None)
        self.http.check_upgrade(self._check_peer)
        self._join_task: asyncio.Task[None] | None = None
        self._address_task: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self._dirty: list[ConnContext] = []  # connections with replies to flush this loop iteration
        self._request_tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()

    def bootstrap_config_json(self) -> Any:
        """The LoadConfig JSON that Init bootstraps the cluster with (read once; ConfigError if bad)."""
        if self._bootstrap_json is None:
            started = time.perf_counter()
            log.info("reading the config for Init%s", f" from {self.opts.config_file}" if self.opts.config_file else "")
            cfg, source = load_bootstrap_config(self.opts.config_file)
            log.info("config for Init: %s (%d schemas, %d tree roots), read and checked in %.1f s",
                     source, len(cfg.schemas), len(cfg.tree), time.perf_counter() - started)
            self._bootstrap_json = encode_load_config(cfg)
        return self._bootstrap_json

    def bootstrapped(self) -> None:
        """The cluster's first entries hold the config now: it need not stay in memory."""
        self._bootstrap_json = None

    async def _registration_barrier(self) -> None:
        """A registration names entities and types as of now: wait until
        this node has applied everything committed before it arrived."""
        if self.driver.initialised():
            await self.api.read_barrier()

    async def _notify_barrier(self) -> None:
        """The same for a notification registration, which a node that is not
        initialised refuses as it does every application request: its empty
        store would call every entity and type unknown, as if for good."""
        if not self.driver.initialised():
            raise RequestFailed(NOT_INITIALISED_TEXT, Kind.NOT_INITIALISED)
        await self.api.read_barrier()

    # ------------------------------------------------------------- start-up
    def _open_storage(self) -> Storage:
        opts = self.opts
        if opts.in_memory:
            return MemoryStorage()
        data_dir = opts.resolved_data_dir()
        if not data_dir.exists():  # a new node: a start-up error leaves no empty data dir behind
            if not opts.join:
                self.bootstrap_config_json()  # ConfigError
            if opts.initial_cluster:
                problem = bootstrap.initial_cluster_problem(opts.initial_cluster, opts.id, opts.ws_addr)
                if problem is not None:
                    raise StartupError(problem)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if data_dir.exists() and not data_dir.is_dir():
                raise StartupError(f"data dir {data_dir} is a file, not a directory (--data-dir)") from None
            raise StartupError(f"cannot create data dir {data_dir} (--data-dir): {e.strerror or e}") from None
        return FileStorage(data_dir)

    async def start(self) -> None:
        opts = self.opts
        self._loop = asyncio.get_running_loop()  # cached: one getpid() syscall per call on 3.11
        await check_listenable(opts.host, opts.port, opts.ws_addr)
        storage = self._open_storage()
        rec = storage.recover()
        self.state_machine = StateMachine(on_changes=self.notifications.publish,
                                          on_restore=self.notifications.on_restore, max_reply=opts.max_frame_bytes,
                                          on_users_on=UsersExposure(opts.ws_addr, self.gate.enabled).users_on)
        snap_index = 0
        if rec.snapshot is not None and not rec.snapshot.is_empty():
            self.state_machine.restore(rec.snapshot.data, rec.snapshot.meta.index)
            snap_index = rec.snapshot.meta.index
        cfg = Config(
            id=opts.id,
            election_tick=opts.election_ticks,
            heartbeat_tick=opts.heartbeat_ticks,
            pre_vote=True,
            check_quorum=True,
            link_down_tick=opts.link_down_ticks,
        )
        raw = RawNode(
            cfg, rng=random.Random(), hard_state=rec.hard_state, snapshot=rec.snapshot, entries=rec.entries
        )
        self.transport = PeerTransport(
            opts.id, opts.ws_addr, lambda: self.driver, opts.peer_overrides, opts.snapshot_chunk_bytes,
            self.cluster_identity, self.dialer, max_output=opts.max_peer_output,
            stuck_timeout=opts.stuck_timeout,
        )
        self.driver = RaftDriver(
            opts, raw, storage, self.state_machine, self.transport.send,
            applied=snap_index, snapshot_index=snap_index, reachable=self.transport.connected,
            declared_level=self.transport.level_of,
            stats=self.stats,
            persisted_index=rec.entries[-1].index if rec.entries else snap_index, durable=rec.hard_state,
        )
        self.driver.after_apply = self._flush
        if not self.driver.initialised():
            if not opts.join:  # a joining node takes its schemas from the cluster's log
                # Init or --init may bootstrap a cluster with the config file: a bad one is
                # a start-up error (exit != 0), not something found at Init.
                self.bootstrap_config_json()
        else:
            log.info("initialised: the config file is not read (the cluster's log has its schemas)")
        self.api = Api(
            opts, self.driver, self.state_machine, self.notifications, self.forwarder, self.cluster_identity,
            self.users, self.backpressure, peer_address=self.transport.address_of,
            metrics=lambda: build_metrics(self),
            bootstrap_config=self.bootstrap_config_json,
            bootstrapped=self.bootstrapped,
            more_handlers=ops_handlers(self),
        )
        log.info(
            "recovered term=%d vote=%d commit=%d snapshot=%d entries=%d",
            rec.hard_state.term if rec.hard_state else 0,
            rec.hard_state.vote if rec.hard_state else 0,
            rec.hard_state.commit if rec.hard_state else 0,
            snap_index,
            len(rec.entries),
        )
        self.driver.start()
        self.driver.campaign_if_sole_voter()
        if opts.initial_cluster:
            await bootstrap.form_initial_cluster(self, opts.initial_cluster)
        if opts.init and not self.driver.initialised():
            # Before the port opens: nobody else's Init can come first (with
            # --admin-password-file, one without users), nor find users not yet on.
            reply = await self.api.init(m.Init("startup", [], admin_password=opts.admin_password()), None)
            assert isinstance(reply, m.InitResponse)
            log.info("--init: %s", reply.response)
        self._server = await serve(
            self._connection,
            opts.host,
            opts.port,
            compression=None,
            max_size=opts.max_frame_bytes * 2,
            # Messages websockets reads ahead of the handler before it stops
            # reading: without the fast paths every request waits there, and
            # a client that does not read (qcore.node.backpressure) gets only
            # that far ahead of its pause.
            max_queue=64 if wsfast.FAST else 4,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            server_header="qcore",
            create_connection=server_connection_class(),
            process_request=self.http.process_request,
            write_limit=self.backpressure.write_limits(),
            ssl=self.tls.server if self.tls is not None else None,
            ssl_handshake_timeout=opts.handshake_timeout if self.tls is not None else None,
            open_timeout=opts.handshake_timeout,
        )
        self._log_security()
        self._address_task = asyncio.create_task(self._check_own_address())
        if opts.join:
            self._join_task = asyncio.create_task(bootstrap.join_cluster(self, opts.join, opts.join_as_learner))

    async def _check_own_address(self) -> None:
        """Warn once the configuration names this node at another address than --ws-addr
        (SPEC 1: it is the address peers dial), e.g. a data dir restarted or restored elsewhere."""
        me, driver = self.opts.id, self.driver
        while not await driver.wait_for(lambda: driver.address_of(me) is not None, 60.0):
            pass  # not a member yet (uninitialised, or joining)
        listed = driver.address_of(me) or ""
        if not reached_at(listed, self.opts.ws_addr):
            log.warning("the cluster configuration names node %d at %s, but it listens on --ws-addr %s: peers "
                        "dial %s and will not reach it; start it with --ws-addr %s, or remove it from the cluster "
                        "and add it again at its new address", me, listed, self.opts.ws_addr, listed, listed)

    def _log_security(self) -> None:
        opts = self.opts
        auth = [what for what, on in (("peer secret", self.peer_keys is not None),
                                      ("peer certificates", self.gate.cert_auth)) if on]
        log.info("node %d serving on %s://%s (peer authentication: %s; websockets %s, fast paths %s)", opts.id,
                 "wss" if self.tls is not None else "ws", opts.ws_addr, " or ".join(auth) or "off",
                 websockets.__version__, "on" if wsfast.FAST else f"off: {wsfast.WHY_NOT}")
        warnings = [security_warning(opts.ws_addr, self.tls is not None, self.gate.enabled)]
        if self.tls is not None:
            warnings.append(self.tls.refused_by_peers(opts.host))
            warnings.append(readable_by_others(self.tls.key_file, "--tls-key-file", "the node's private key"))
        if opts.admin_password_file is not None:
            warnings.append(readable_by_others(opts.admin_password_file, "--admin-password-file",
                                               "the admin's password"))
        for warning in warnings:
            if warning is not None:
                log.warning("%s", warning)

    def _peer_connected(self, side: PeerSide) -> None:
        """A connection is a peer's (authenticated, or with peer authentication
        off, declared so): count it as one of the peer's Raft links (the
        transport reports the last one closing), learn where the peer
        listens, and, if this node has no cluster identity yet, take the
        peer's (cluster_identity)."""
        if side.declared_id is not None and side.purpose == "raft":
            self.transport.inbound_opened(side.declared_id, declared_level(side.path))
        if side.declared_id is None or side.declared_addr is None:
            return
        self.transport.learn(side.declared_id, side.declared_addr)
        if self.gate.enabled:
            self.cluster_identity.check_inbound(side.declared_id, side.declared_addr, from_path(side.path))

    async def wait_closed(self) -> None:
        await self._stopped.wait()

    # ------------------------------------------------------------ shutdown
    async def stop(self) -> None:
        if self.stopping:
            await self._stopped.wait()
            return
        self.stopping = True
        log.info("shutting down")
        if self._server is not None:
            self._server.close(close_connections=False)
        for task in (self._join_task, self._address_task):
            if task is not None:
                task.cancel()
        await self._hand_over_leadership()
        # Give in-flight requests a moment to be answered by the new state.
        if self._request_tasks:
            await asyncio.wait(set(self._request_tasks), timeout=2)
        await self.driver.stop()  # fails whatever still waits
        if self._request_tasks:
            await asyncio.wait(set(self._request_tasks), timeout=1)
        await self.forwarder.close()
        await self.transport.close()
        self.users.close()
        # The listener was closed above without closing connections (so that
        # in-flight requests could still be answered); websockets' close() is
        # one-shot, so close the remaining connections ourselves (1001 going away).
        if self._connections:
            await asyncio.wait(
                [asyncio.create_task(ws.close(1001, "node shutting down")) for ws in list(self._connections)],
                timeout=3,
            )
        if self._server is not None:
            await self._server.wait_closed()
        self._stopped.set()
        log.info("stopped")

    async def _hand_over_leadership(self) -> None:
        """A leader with peers transfers leadership before it goes, so the
        cluster does not wait an election timeout for a new one: to the most
        up-to-date voter it has a live link to (a dead one would only run the
        transfer into its timeout), else to the most up-to-date one."""
        st = self.driver.status()
        if st.role != Role.LEADER or not st.progress:
            return
        candidates = [
            (self.transport.connected(pid), pr.match, pid) for pid, pr in st.progress.items()
            if pid != self.opts.id and pid in st.conf_state.voters
        ]
        if not candidates:
            return
        _, _, target = max(candidates)
        log.info("transferring leadership to %d before shutdown", target)
        self.driver.transfer_leader(target)
        timeout = self.opts.tick_ms * self.opts.election_ticks * 2 / 1000
        await self.driver.wait_for(lambda: not self.driver.is_leader(), timeout)

    # ---------------------------------------------------------- connections
    def _check_peer(self, request: Any) -> HttpReply | None:
        """Refuse a peer's handshake if it declares another cluster. With peer
        authentication on, the declaration of a connection that has not yet
        authenticated teaches this node nothing (see _peer_connected)."""
        identity = peer_identity(request.path)
        if identity is None:
            return None
        why = self.cluster_identity.check_inbound(identity[0], identity[1], from_path(request.path),
                                                  trusted=not self.gate.enabled)
        if why is not None:
            return HttpReply.text(403, why)
        applied = self.driver.applied
        gone = removal.refusal(self.opts.id, identity[0], removal.declared(request.path), applied,
                               self.driver.conf_state())
        if gone is None:
            return None
        reply = HttpReply.text(removal.STATUS, gone)
        reply.headers[removal.APPLIED_HEADER] = str(applied)
        return reply

    async def _connection(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        if len(self._connections) >= self.opts.max_connections:
            refused = error(m.new_id(), Kind.OVERLOADED, "too many connections; try again later")
            write_frames(ws, (m.encode_message(refused),))
            await ws.close(1013, "too many connections")
            return
        self._connections.add(ws)
        side = self.gate.open(ws, path)
        conn = ConnContext(ws, side.peer and side.purpose == "forward", peer=side)
        self.backpressure.attach(conn)
        self.notifications.attach(conn)
        if isinstance(ws, SinkServerConnection):
            ws.sink = lambda data, text: self._on_message(conn, data, text)
        try:
            # Only fragmented messages arrive here, unless the fast paths are off (qcore.wsfast).
            async for frame in ws:
                self._on_frame(conn, frame)
        except ConnectionClosed:
            pass
        finally:
            if side.peer and side.purpose == "raft" and side.declared_id is not None:
                self.transport.inbound_closed(side.declared_id)  # after every frame it carried was stepped
            self.backpressure.detach(conn)
            self.gate.close(side)
            self._connections.discard(ws)
            self.notifications.detach(conn)

    def _on_message(self, conn: ConnContext, data: bytes, text: bool) -> None:
        if not text:
            self._on_frame(conn, bytes(data))
            return
        try:
            frame = data.decode()
        except UnicodeDecodeError:
            self._invalid_frame(conn, m.new_id(), "text frame is not valid UTF-8")
            return
        self._on_frame(conn, frame)

    def _on_frame(self, conn: ConnContext, frame: str | bytes) -> None:
        bp = self.backpressure
        if (conn.flow.paused or (bp.over_budget and not _raft_peer(conn))) and not bp.admit(conn, frame):
            return  # held until its replies drain or its turn comes (qcore.node.backpressure)
        bp.timed(self._serve_frame, conn, frame)

    def _invalid_frame(self, conn: ConnContext, rid: Any, text: str) -> None:
        """A frame that is not a request of a type a node serves: counted in qcore_invalid_frames
        and answered with an `invalid` Error (one of such a type whose fields are missing or
        wrongly typed counts as an error of its type instead: _reply_unserved)."""
        self.stats.invalid_frames += 1
        self._reply(conn, error(rid, Kind.INVALID, text))

    def _serve_frame(self, conn: ConnContext, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self._invalid_frame(conn, m.new_id(), "binary frames are not accepted: send one JSON object per text frame")
            return
        if len(frame) > self.opts.max_frame_bytes:
            match = _LEADING_ID.match(frame, 0, 512)
            rid: Any = m.new_id()
            if match:
                rid = match.group(2) if match.group(2) is not None else int(match.group(3))
            self._invalid_frame(conn, rid, f"frame too large: {len(frame)} bytes exceeds the limit of "
                                           f"{self.opts.max_frame_bytes} (--max-frame-bytes)")
            return
        msg: Any  # one of the envelopes; routed by its TAG below
        try:
            msg = m.decode_message(frame)
        except m.ProtocolError as exc:
            # An id we cannot echo faithfully (not a string or integer) is replaced.
            rid = exc.request_id if type(exc.request_id) in (str, int) else m.new_id()
            if exc.tag is not None and self.api.handler_for(exc.tag) is not None:
                self._reply_unserved(conn, exc.tag, time.perf_counter(), error(rid, Kind.INVALID, exc.message))
                return
            self._invalid_frame(conn, rid, exc.message)
            return
        tag = msg.TAG
        if self.gate.enabled or tag == "PeerAuth":
            if self._refused_by_gate(conn, msg):
                return
        if tag in _RAFT_TAGS:
            body = msg.response if tag.endswith("Response") else msg.request
            try:
                reply = self.transport.on_frame(tag, body, conn.state)
            except (RaftCodecError, ValueError, TypeError, KeyError) as exc:
                self._reply(conn, error(msg.id, Kind.INVALID, f"{tag}: {exc}"))
                return
            if reply is not None:  # a chunk of a snapshot: {"Ok": ...} or a refused chunk
                refused = isinstance(reply, dict) and "Err" in reply
                self._reply(conn, m.RaftSnapshotResponse(msg.id, reply, Kind.INVALID if refused else None))
            return
        stats = self._request_stats
        t0 = time.perf_counter() if stats is not None else 0.0
        if not conn.forwarded and self.users.enabled:  # SPEC 8.3: users on (a peer is trusted)
            not_allowed = self.users.gate(conn, msg)
            if not_allowed is not None:
                self._reply_unserved(conn, tag, t0, not_allowed)
                return
        handler = self.api.handler_for(tag)
        if handler is None:
            self._invalid_frame(conn, getattr(msg, "id", m.new_id()), f"{tag} is not a request a node accepts")
            return
        if conn.inflight >= self.opts.max_inflight_per_conn:
            self._reply_unserved(conn, tag, t0, error(msg.id, Kind.OVERLOADED, "too many requests in flight on this "
                                                      f"connection (limit {self.opts.max_inflight_per_conn})"))
            return
        conn.inflight += 1
        size = len(frame)
        self.backpressure.started(conn, size)
        if tag == "Perform" and not self.stopping:
            # The common cases (a read anywhere, a write on the leader) are
            # answered from a future's callback, without a task per request.
            def reply(r: Any) -> None:
                conn.inflight -= 1
                self.backpressure.finished(conn, size)
                if stats is not None:
                    stats.request_done("Perform", time.perf_counter() - t0, r)
                self._reply(conn, r)

            if self.api.perform_fast(msg, conn, reply, lambda: self._spawn(conn, handler, msg, t0, size)):
                return
        self._spawn(conn, handler, msg, t0, size)

    def _reply_unserved(self, conn: ConnContext, tag: str, t0: float, reply: Any) -> None:
        """Answer a request refused before it is served (users on and not allowed, too many in
        flight): it counts in qcore_requests_total by its type and outcome as a served one does."""
        if self._request_stats is not None:
            self._request_stats.request_done(tag, time.perf_counter() - t0, reply)
        self._reply(conn, reply)

    def _refused_by_gate(self, conn: ConnContext, msg: Any) -> bool:
        """Peer authentication (qcore.node.peer_gate): answer a handshake step,
        or refuse a frame this connection may not carry. True if answered here."""
        side = conn.peer
        assert side is not None  # every served connection has one (PeerGate.open)
        if msg.TAG == "PeerAuth":
            reply, close = self.gate.handshake(conn.ws, side, msg)
            conn.forwarded = side.peer and side.purpose == "forward"
            self._reply(conn, reply)
            if close:
                self._loop.call_soon(lambda: asyncio.ensure_future(conn.ws.close(1008, "peer handshake failed")))
            return True
        refused = self.gate.refusal(conn.ws, side, msg.TAG, getattr(msg, "id", None))
        if refused is not None:
            self._reply(conn, refused)
            return True
        return False

    def _spawn(self, conn: ConnContext, handler: Any, msg: Any, t0: float, size: int) -> None:
        """Serve a request in its own task (it owns one unit of conn.inflight and ``size`` bytes of its work)."""
        task = asyncio.create_task(self._serve_request(conn, handler, msg, t0, size))
        self._request_tasks.add(task)
        task.add_done_callback(self._request_tasks.discard)

    async def _serve_request(self, conn: ConnContext, handler: Any, msg: Any, t0: float, size: int) -> None:
        try:
            if self.stopping:
                reply: Any = error(msg.id, Kind.SHUTTING_DOWN, "node is shutting down")
            else:
                reply = await handler(msg, conn)
        except NodeError as exc:
            reply = error_reply(msg.id, exc)
        except Exception as exc:
            log.exception("request %s %r failed", msg.TAG, msg.id)
            reply = error(msg.id, Kind.INTERNAL, f"internal error: {exc}")
        finally:
            conn.inflight -= 1
            self.backpressure.finished(conn, size)
        stats = self._request_stats
        if stats is not None:
            stats.request_done(msg.TAG, time.perf_counter() - t0, reply)
        if reply is not None:  # None: the handler queued its reply itself (an accepted registration)
            self._reply(conn, reply)

    def connection_count(self) -> int:
        return len(self._connections)

    def _reply(self, conn: ConnContext, reply: Any) -> None:
        """Queue a reply; all replies a connection gets in one loop iteration
        (say, every write of a group-committed entry) leave in one syscall."""
        data = orjson.dumps(reply.frame) if isinstance(reply, RawReply) else m.encode_message(reply)
        if not conn.outbox:
            # One callback per loop iteration flushes every connection with
            # replies (a group-committed entry answers many at once).
            if not self._dirty:
                self._loop.call_soon(self._flush)
            self._dirty.append(conn)
        conn.outbox.append(data)
        conn.outbox_bytes += len(data)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            frames, conn.outbox = conn.outbox, []
            conn.outbox_bytes = 0
            # On a closed connection this writes nothing: the client went
            # away, and its requests were still carried out. The in-flight
            # limit bounds what a client that does not read can make us buffer.
            write_frames(conn.ws, frames)
            self.backpressure.written(conn)
