"""The transport half of the client: one pipelined connection, failover, safe retries.

:class:`Session` owns the connection and sends requests; :class:`qcore.client.Client`
adds the helpers on top.

Retry rules — the point of this module — in one place:

* **Not sent** (no node reachable, or the connection was already closed):
  every request is retried, on the next address, until its deadline.
* **Definite refusal** (an error whose ``kind`` says it was not applied:
  ``no_leader``, ``not_leader``, ``not_initialised``, ``removed``,
  ``shutting_down``, ``overloaded``, ``unavailable`` —
  :mod:`qcore.protocol.errors`): every request, writes included, is retried
  — on the named leader, on another address, or after a back-off.
* **Unknown outcome** (the request was sent and then the connection dropped,
  no reply came in time, or the kind is ``outcome_unknown``): only
  *idempotent* requests are sent again — reads, ``GetMetrics``,
  ``SetSchema``, ``AddLearner``, ``ChangeMembership``, ``RemoveNode`` and notification
  (un)registration. A write raises :exc:`~qcore.client.errors.UnknownOutcome`,
  unless the client was made with ``retry_writes=True``: then writes are sent
  again too (they may be applied twice), and one that still fails raises
  UnknownOutcome whatever ended its last attempt, since an earlier one may
  have been applied.
* Any other kind is the answer, and is raised.

With ``user=`` and ``password=``, every connection the session opens sends
``Authenticate`` first (SPEC 8.3), so a reconnect after a failover is
authenticated again; a refused password raises :exc:`AuthenticationFailed`.

Every request has one deadline (``request_timeout``, or the ``deadline()``
scope it is made in) covering all of its attempts, and a node's "not
applied" wins over the clock: when the deadline passes after a definite
refusal, that refusal is raised (:exc:`NotLeader` for ``no_leader``), not a
timeout; and a write is not sent again within ``attempt_timeout`` of its
deadline, where its answer might come too late to be known.

An idempotent request whose answer has not come within ``attempt_timeout``
is sent again. The connection is kept if it answers a ping (the node is
only slow, say waiting for an election) and replaced by one to the next
address if it does not within ``connect_timeout``; a ping the deadline cut
shorter than that proves nothing, and the connection is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Self, TypedDict, Unpack

from websockets.exceptions import InvalidMessage

from qcore.client import command_json
from qcore.client.connection import Connection, ConnectionLost, ReplyHook
from qcore.client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    NotLeader,
    QcoreError,
    RequestTimeout,
    ServerError,
    UnknownOutcome,
)
from qcore.client.watch import Watch
from qcore.protocol.auth import AuthAdmin, Authenticate, AuthenticateResponse
from qcore.protocol.errors import Kind, Refusal, refusal_of
from qcore.protocol.ops import GetClusterMetrics
from qcore.tls import client_context, wants_tls
from qcore.protocol.messages import (
    AddLearner,
    ChangeMembership,
    Error,
    GetMetrics,
    Init,
    Message,
    Notification,
    Perform,
    PerformResponse,
    RegisterNotification,
    RemoveNode,
    UnregisterNotification,
)

logger = logging.getLogger(__name__)

__all__ = ["Session", "SessionOptions", "parse_addresses", "is_idempotent", "member_addresses", "MEMBERSHIP_TIMEOUT"]

_IDEMPOTENT = (GetMetrics, GetClusterMetrics, AddLearner, ChangeMembership, RemoveNode, RegisterNotification,
               UnregisterNotification, Authenticate)
_ADMIN_READS = frozenset({"UserList", "RoleList", "AuthStatus"})
# Slow by nature (AddLearner waits for the learner to catch up): never cut short by attempt_timeout.
_LONG_RUNNING = (Init, AddLearner, ChangeMembership, RemoveNode)
#: Default deadline of the long-running management requests.
MEMBERSHIP_TIMEOUT = 60.0

# The deadline of every request made inside a ``Session.deadline()`` block (loop time).
_SCOPE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("qcore_deadline", default=None)


def parse_addresses(addresses: str | Iterable[str]) -> list[str]:
    """``"h:1,h:2"`` or ``["h:1", "ws://h:2/"]`` -> ``["h:1", "h:2"]``."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    out: list[str] = []
    for item in items:
        a = item.strip()
        for prefix in ("ws://", "wss://"):
            if a.startswith(prefix):
                a = a[len(prefix) :]
        a = a.rstrip("/")
        if not a:
            continue
        if "/" in a:  # another scheme (http://...) or a path: the host would be looked up as "http"
            raise ValueError(f"bad address {item!r}: expected host:port (a URL may start ws:// or wss://)")
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad address {item!r}: expected host:port")
        if not 0 < int(port) < 65536:
            raise ValueError(f"bad address {item!r}: the port must be 1-65535")
        if a not in out:
            out.append(a)
    if not out:
        raise ValueError("no address given")
    return out


def is_idempotent(msg: Message) -> bool:
    """True if sending ``msg`` twice has the effect of sending it once."""
    if type(msg) is Perform:
        return command_json.is_read_only(msg.request)
    if type(msg) is AuthAdmin:
        return len(msg.request) == 1 and next(iter(msg.request)) in _ADMIN_READS
    return isinstance(msg, _IDEMPOTENT)


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.02

    async def sleep(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, min(self.delay, deadline - loop.time())))
        self.delay = min(self.delay * 2, 1.0)


class SessionOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Session` (and so of ``Client`` and ``connect``), for
    type checkers; kept equal to ``Session.__init__``'s by tests/client/test_client.py."""

    request_timeout: float
    attempt_timeout: float
    connect_timeout: float
    retry_writes: bool
    max_frame_size: int | None
    ping_interval: float | None
    tls_ca: str | Any
    tls_cert: str | Any
    tls_key: str | Any
    tls_key_password: Callable[[], str | bytes] | str | bytes | None
    ssl_context: ssl.SSLContext | None
    user: str | None
    password: str | None


class Session:
    """A connection to a qcore cluster that sends requests and keeps watches alive."""

    def __init__(
        self,
        addresses: str | Iterable[str],
        *,
        request_timeout: float = 10.0,
        attempt_timeout: float = 3.0,
        connect_timeout: float = 3.0,
        retry_writes: bool = False,
        max_frame_size: int | None = 64 * 1024 * 1024,
        ping_interval: float | None = 10.0,
        tls_ca: str | Any = None,
        tls_cert: str | Any = None,
        tls_key: str | Any = None,
        tls_key_password: Callable[[], str | bytes] | str | bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        """TLS (SPEC 8.1) is on with ``tls_ca`` (the CA file that signs the nodes'
        certificates), a ``wss://`` address (the system's CAs then, unless
        ``tls_ca``), or an ``ssl_context`` of your own; ``tls_cert``/``tls_key``
        present a client certificate, its key decrypted with ``tls_key_password``
        (the passphrase, or a function returning it) if it is encrypted. A node
        whose certificate does not verify is refused. ``user`` and ``password``:
        log in on every connection (SPEC 8.3)."""
        self._ssl = ssl_context
        if not isinstance(addresses, str):
            addresses = list(addresses)  # read twice: for the scheme, then the addresses
        if self._ssl is None and (tls_ca or tls_cert or wants_tls(addresses)):
            self._ssl = client_context(tls_ca, tls_cert, tls_key, tls_key_password)
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.addresses = parse_addresses(addresses)
        self.user = user
        self._password = password
        #: What the node said about the user at the last Authenticate: {"user", "roles", "entity"}.
        self.identity: dict[str, Any] | None = None
        self.request_timeout = request_timeout
        self.attempt_timeout = attempt_timeout
        self.connect_timeout = connect_timeout
        self.retry_writes = retry_writes
        self._max_frame_size = max_frame_size
        self._ping_interval = ping_interval
        self._next = 0  # index into addresses of the node to connect to next
        self._conn: Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._watches: set[Watch] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retired: set[Connection] = set()  # moved away from, still finishing requests in flight
        self._closed = False
        self._closing = asyncio.Event()  # set by close(): a connection being made is abandoned
        # The loop the client was first used in: its connection, tasks and watches live there.
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(cls, addresses: str | Iterable[str], **options: Unpack[SessionOptions]) -> Self:
        """A connected client; raises ConnectionFailed if no address answers within ``request_timeout``."""
        client = cls(addresses, **options)
        await client.open()
        return client

    async def open(self) -> None:
        """Connect now instead of at the first request, trying the addresses in turn (with a
        back-off between passes) until one answers or ``request_timeout`` has passed: nodes
        that are starting or restarting are waited for, as a request would wait for them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        scope = _SCOPE_DEADLINE.get()
        await self._connection(deadline if scope is None else min(deadline, scope))

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End every watch, close the connection, stop background tasks (idempotent).
        Requests still waiting for a connection fail at once with ConnectionFailed;
        no connection is opened after this."""
        if self._loop is not None and self._loop.is_closed():
            # Used in a loop that has ended (an earlier asyncio.run): its tasks and connection went with it.
            self._closed = True
            self._conn = None
            self._watches.clear()
            self._tasks.clear()
            self._retired.clear()
            return
        self._bound_loop()
        self._closed = True
        self._closing.set()
        for w in list(self._watches):
            w.fail(ConnectionFailed("client closed"))
        self._watches.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn, self._conn = self._conn, None
        for c in [conn, *self._retired]:
            if c is not None:
                await c.close()
        self._retired.clear()

    @property
    def address(self) -> str | None:
        """The node currently connected to."""
        conn = self._conn
        return conn.address if conn is not None and not conn.closed else None

    async def pinned_connection(self) -> Connection:
        """The connection requests go to now, for an exchange that must stay
        on one node (a snapshot's handle lives on its connection)."""
        return await self._connection(asyncio.get_running_loop().time() + self.request_timeout)

    def next_id(self) -> str:
        """A request id unique within this client (ids only need to be unique per connection)."""
        return str(next(self._ids))

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None = None) -> AsyncIterator[None]:
        """Requests made inside the block share one deadline, ``seconds`` (default
        ``request_timeout``) from now: a helper that makes several requests, or a
        command-line command, takes at most that long in all."""
        loop = asyncio.get_running_loop()
        at = loop.time() + (self.request_timeout if seconds is None else seconds)
        outer = _SCOPE_DEADLINE.get()
        token = _SCOPE_DEADLINE.set(at if outer is None else min(outer, at))
        try:
            yield
        finally:
            _SCOPE_DEADLINE.reset(token)

    # ------------------------------------------------------------ connection

    def _bound_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the one this client was first used in (a RuntimeError
        saying so otherwise, not a failure deep inside asyncio)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this qcore Client was first used in another event loop (an earlier asyncio.run(), or another"
                " thread's loop): its connection and watches belong to that loop; make one Client per loop,"
                " or from another thread hand calls to its loop with asyncio.run_coroutine_threadsafe()")
        return loop

    async def _connection(self, deadline: float) -> Connection:
        self._bound_loop()
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            if self._closed:
                raise ConnectionFailed("client is closed")
            if conn is not None:
                # The connection died: try the next node first (this one may be down).
                self._next = self.addresses.index(self._address_after(conn.address))
                self._conn = None
            conn = await self._dial_unless_closed(deadline)
            self._conn = conn
            logger.info("connected to %s", conn.address)
            if self._watches:
                self._spawn(self._resubscribe(conn))
            return conn

    async def _dial_unless_closed(self, deadline: float) -> Connection:
        """``_dial``, abandoned as soon as the client is closed (whose connection it would leak)."""
        loop = asyncio.get_running_loop()
        dial = loop.create_task(self._dial(deadline))
        closing = loop.create_task(self._closing.wait())
        try:
            await asyncio.wait((dial, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:  # the caller may have been cancelled too
            closing.cancel()
            if not dial.done():
                dial.cancel()
                await asyncio.gather(dial, return_exceptions=True)
        if self._closed:
            if not dial.cancelled() and dial.exception() is None:
                await dial.result().close()
            raise ConnectionFailed("client is closed")
        return dial.result()

    async def _dial(self, deadline: float) -> Connection:
        """A connection (authenticated, with a user) to the first address that gives one before
        ``deadline``; else ConnectionFailed, or the last refusal a node answered Authenticate
        with (such as ``no_leader``), as a request raises the node's answer at its deadline."""
        loop = asyncio.get_running_loop()
        errors: dict[str, str] = {}  # per address, why it gave no connection
        tls_failed: set[str] = set()  # addresses whose error in ``errors`` is a TLS mismatch or certificate
        last_refusal: QcoreError | None = None
        unanswered_login: str | None = None  # an address that took the login and did not answer it in time
        backoff = _Backoff()
        while True:
            for _ in range(len(self.addresses)):
                addr = self.addresses[self._next % len(self.addresses)]
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    conn = await Connection.open(
                        addr,
                        timeout=min(self.connect_timeout, remaining),
                        max_size=self._max_frame_size,
                        ping_interval=self._ping_interval,
                        on_notification=self._on_notification,
                        on_close=self._on_connection_closed,
                        ssl_context=self._ssl,
                    )
                    if self.user is not None:
                        await self._authenticate(conn, deadline)
                    return conn
                except asyncio.CancelledError:
                    raise
                except AuthenticationFailed:
                    raise
                except Exception as e:  # refused, unreachable, handshake failed, timed out...
                    if isinstance(e, _AuthenticateRefused):  # the node answered, but not now
                        last_refusal = _refusal_error(e.why)
                    if isinstance(e, _LoginUnanswered):
                        unanswered_login = addr
                    said = str(e) or type(e).__name__
                    tls = True
                    if isinstance(e, ssl.SSLCertVerificationError):
                        said = f"certificate refused: {e.verify_message or e}"
                    elif isinstance(e, InvalidMessage | ConnectionResetError | ssl.SSLError):
                        said += _tls_hint(self._ssl is not None)
                    else:
                        tls = False
                    # A TLS mismatch or a refused certificate said why; a later attempt that only
                    # timed out (a loaded node) does not say why, and does not replace it.
                    if not (addr in tls_failed and isinstance(e, TimeoutError) and not isinstance(e, _LoginUnanswered)):
                        errors[addr] = said
                        (tls_failed.add if tls else tls_failed.discard)(addr)
                    logger.debug("cannot connect to %s: %s", addr, said)
                    self._next = (self._next + 1) % len(self.addresses)
            if errors and all(e.startswith("certificate refused") for e in errors.values()):
                break  # waiting will not make a certificate verify
            if deadline - loop.time() <= 0:
                break
            await backoff.sleep(deadline)
        if last_refusal is not None:
            raise last_refusal
        if unanswered_login is not None:
            # Nothing was sent but the login; the node was reached, though: "cannot connect ...
            # TimeoutError" would send people to the network.
            raise ConnectionFailed(f"{unanswered_login} did not answer the login of {self.user} before the deadline:"
                                   " a login is checked with the cluster's leader; is a majority of the voters up?")
        detail = "; ".join(f"{a}: {e}" for a, e in errors.items()) or "no time left"
        raise ConnectionFailed(f"cannot connect to any of {', '.join(self.addresses)} ({detail})")

    async def _authenticate(self, conn: Connection, deadline: float) -> None:
        """Bind a new connection to the session's user; AuthenticationFailed if refused,
        another QcoreError (after closing it) if this node cannot answer now."""
        try:
            login: Any = Authenticate(self.next_id(), self.user or "", self._password or "")  # registered beside the seed's
            fut = await conn.send(login)
            async with asyncio.timeout(max(0.0, deadline - asyncio.get_running_loop().time())):
                reply = await fut
        except TimeoutError:
            await conn.close()
            raise _LoginUnanswered(f"{conn.address}: no answer to the login before the deadline") from None
        except BaseException:
            await conn.close()
            raise
        why = refusal_of(reply)
        if why is None and type(reply) is AuthenticateResponse:
            self.identity = reply.response.get("Ok")
            return
        await conn.close()
        if why is not None and why.kind == Kind.INVALID_CREDENTIALS:
            raise AuthenticationFailed(f"{self.user}: {why.text}", why.kind)
        if why is not None:
            raise _AuthenticateRefused(conn.address, why)
        raise ServerError(f"cannot authenticate at {conn.address}: {reply!r}")

    def _switch_to(self, address: str) -> None:
        """Make ``address`` the next node; the current connection finishes its in-flight requests."""
        if address not in self.addresses:
            self.addresses.append(address)
        self._next = self.addresses.index(address)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.retire()
            if not conn.closed:
                self._retired.add(conn)
        logger.info("switching to %s", address)

    def _address_after(self, address: str) -> str:
        if address not in self.addresses:
            return self.addresses[0]
        return self.addresses[(self.addresses.index(address) + 1) % len(self.addresses)]

    def _on_connection_closed(self, conn: Connection) -> None:
        self._retired.discard(conn)
        # Watches cannot wait for the next request to notice: reconnect now.
        if conn is self._conn and self._watches and not self._closed:
            self._spawn(self._reconnect_for_watches())

    async def _reconnect_for_watches(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._connection(loop.time() + self.request_timeout)
        except QcoreError as e:
            for w in list(self._watches):
                w.fail(e)
            self._watches.clear()

    def _spawn(self, coro: Any) -> None:
        # A fresh context: background work (reconnecting, resuming watches) is not
        # bound by the deadline of whatever request happened to start it.
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ requests

    async def request(
        self,
        msg: Message,
        *,
        timeout: float | None = None,
        idempotent: bool | None = None,
        on_reply: ReplyHook | None = None,
    ) -> Message:
        """Send one request and return its reply message, retrying as the module docstring says.

        Response unions (``{"Err": ...}``) and command errors are returned as they
        are; an ``Error`` frame raises :exc:`ServerError`.
        """
        if idempotent is None:
            idempotent = is_idempotent(msg)
        resend = idempotent or self.retry_writes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        scope = _SCOPE_DEADLINE.get()
        if scope is not None:
            deadline = min(deadline, scope)
        backoff = _Backoff()
        refused_by: set[str] = set()
        name = f"{type(msg).__name__} {msg.id!r}"  # type: ignore[union-attr]
        last_refusal: QcoreError | None = None
        # Set once a write sent again under retry_writes may have been applied by an earlier
        # attempt: whatever ends it then is an UnknownOutcome, never "not sent"/"not applied".
        unknown: str | None = None
        try:
            while True:
                if last_refusal is not None and (
                    loop.time() >= deadline or (not resend and deadline - loop.time() < self.attempt_timeout)
                ):
                    # Not applied, said the node; another try might not be answered in time
                    # and would turn that into "unknown".
                    raise last_refusal
                if loop.time() >= deadline:  # (a deadline() scope that ran out): nothing sent
                    raise RequestTimeout(f"{name}: its deadline passed before it was sent")
                conn = await self._connection(deadline)
                wait = max(0.0, deadline - loop.time())
                if resend and not isinstance(msg, _LONG_RUNNING):
                    wait = min(wait, self.attempt_timeout)
                try:
                    fut = await conn.send(msg, on_reply)
                    async with asyncio.timeout(wait):  # not wait_for: in 3.11 it can swallow a cancel
                        reply = await fut
                except asyncio.CancelledError:
                    conn.forget(msg.id)  # type: ignore[union-attr]  # the caller gave up: drop a late reply
                    raise
                except ConnectionLost as e:
                    if e.sent and not resend:
                        raise UnknownOutcome(f"{name}: {e}; it may or may not have been applied") from None
                    if e.sent and not idempotent:
                        unknown = str(e)
                    logger.debug("%s: %s; retrying", name, e)
                    if loop.time() >= deadline:
                        raise last_refusal or (RequestTimeout if e.sent else ConnectionFailed)(f"{name}: {e}") from None
                    continue
                except TimeoutError:
                    conn.forget(msg.id)  # type: ignore[union-attr]
                    if not resend:
                        raise UnknownOutcome(f"{name}: no reply from {conn.address} in time; "
                                             "it may or may not have been applied") from None
                    if not idempotent:
                        unknown = f"no reply from {conn.address} in time"
                    if loop.time() >= deadline:
                        raise last_refusal or RequestTimeout(f"{name}: no reply within the request timeout") from None
                    left = max(0.0, deadline - loop.time())
                    if not await conn.answers_ping(min(self.connect_timeout, left)) and left >= self.connect_timeout:
                        # Only a ping unanswered for all of connect_timeout proves the connection dead;
                        # one the deadline cut short proves nothing, and the connection is kept.
                        logger.info("%s does not answer a ping: dropping the connection", conn.address)
                        conn.abort()
                    if loop.time() >= deadline:  # sent, and no reply: not "its deadline passed before it was sent"
                        raise last_refusal or RequestTimeout(f"{name}: no reply within the request timeout") from None
                    continue

                why = refusal_of(reply)
                if why is None:
                    return reply
                logger.debug("%s refused by %s: %s (%s)", name, conn.address, why.text, why.kind)
                retry = why.retry
                if retry == "final":
                    if type(reply) is Error:
                        raise ServerError(why.text, why.kind)
                    return reply  # a union's {"Err": ...}: the caller reads it
                if retry == "unknown" and not resend:
                    raise UnknownOutcome(f"{name}: {why.text}")
                if retry == "unknown" and not idempotent:
                    unknown = why.text
                last_refusal = _refusal_error(why)
                if loop.time() >= deadline:
                    raise last_refusal
                if why.kind == Kind.NOT_LEADER and why.leader_addr and why.leader_addr != conn.address:
                    self._switch_to(why.leader_addr)
                elif why.kind in (Kind.NOT_INITIALISED, Kind.REMOVED):
                    refused_by.add(conn.address)
                    others = [a for a in self.addresses if a not in refused_by]
                    if not others:
                        raise last_refusal
                    self._switch_to(others[0])
                elif why.kind == Kind.SHUTTING_DOWN:
                    self._switch_to(self._address_after(conn.address))
                    await backoff.sleep(deadline)
                else:
                    await backoff.sleep(deadline)
        except QcoreError as e:
            if unknown is None or isinstance(e, UnknownOutcome):
                raise
            raise UnknownOutcome(f"{name}: an earlier attempt may have been applied ({unknown}); "
                                 f"the last one: {type(e).__name__}: {e}") from e

    async def perform(self, request: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send one ``CommandRequest`` (JSON) and return the ``CommandResponse`` JSON as is."""
        reply = await self.request(Perform(self.next_id(), dict(request)), timeout=timeout)
        if type(reply) is not PerformResponse:
            raise ServerError(f"unexpected reply to Perform: {type(reply).__name__}")
        return reply.response

    async def command(self, request: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Perform and return the response body; a non-null ``error`` raises CommandError."""
        (tag,) = request
        return command_json.unwrap(await self.perform(request, timeout=timeout), tag)

    async def _management(self, msg: Message, timeout: float | None = None) -> Any:
        reply = await self.request(msg, timeout=timeout)
        expected = msg.TAG + "Response"
        if reply.TAG != expected:
            raise ServerError(f"unexpected reply to {msg.TAG}: {reply.TAG}")
        why = refusal_of(reply)
        if why is not None:
            raise ServerError(why.text, why.kind)
        return reply.response.get("Ok") if isinstance(reply.response, dict) else None  # type: ignore[union-attr]

    # ------------------------------------------------------------ watches

    def _forget_watch(self, w: Watch) -> None:
        self._watches.discard(w)

    def _on_notification(self, conn: Connection, msg: Notification) -> None:
        w = conn.watches.get(msg.token)
        if w is None:
            logger.debug("notification for unknown token %r from %s", msg.token, conn.address)
            return
        w.deliver(msg.notification)

    async def _resubscribe(self, conn: Connection) -> None:
        for w in list(self._watches):
            if w.closed or w.attached_to(conn):
                continue
            try:
                await w.register()
            except QcoreError as e:
                logger.warning("cannot resume watch %r: %s", w.config, e)
                self._watches.discard(w)
                w.fail(e)


# ---------------------------------------------------------------- helpers


class _AuthenticateRefused(ServerError):
    """A node refused ``Authenticate`` for now (no leader, shutting down, ...); ``why`` is its answer."""

    def __init__(self, address: str, why: Refusal) -> None:
        super().__init__(f"cannot authenticate at {address}: {why.text}", why.kind)
        self.why = why


class _LoginUnanswered(TimeoutError):
    """A node took ``Authenticate`` and did not answer it before the deadline (it waits for the
    leader's read barrier: without a quorum, up to two election timeouts)."""


def _refusal_error(why: Refusal) -> QcoreError:
    """What to raise if the deadline passes after this refusal: the node's own answer."""
    if why.kind in (Kind.NOT_LEADER, Kind.NO_LEADER):
        return NotLeader(why.text, why.leader_id, why.leader_addr, why.kind)
    if why.kind == Kind.OUTCOME_UNKNOWN:
        return RequestTimeout(why.text, why.kind)
    return ServerError(why.text, why.kind)


def _tls_hint(tls: bool) -> str:
    """What a handshake that breaks off at once most likely means: TLS on one side only."""
    if tls:
        return " (is the node serving plain ws://, without TLS?)"
    return " (is the node serving TLS? then connect with wss:// and its CA file)"


def member_addresses(metrics: Mapping[str, Any]) -> dict[int, str]:
    """Node id -> address, from ``membership_config`` wherever its ``nodes`` map sits."""
    found: dict[int, str] = {}

    def visit(x: Any, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(x, Mapping):
            nodes = x.get("nodes")
            if isinstance(nodes, Mapping):
                for k, v in nodes.items():
                    addr = v.get("addr") if isinstance(v, Mapping) else v
                    if isinstance(addr, str) and str(k).isdigit():
                        found[int(k)] = addr
            for v in x.values():
                visit(v, depth + 1)
        elif isinstance(x, list):
            for v in x:
                visit(v, depth + 1)

    visit(metrics.get("membership_config"), 0)
    return found
