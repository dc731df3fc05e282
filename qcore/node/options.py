"""Everything a node is started with: the command line, as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def addr_problem(addr: str) -> str | None:
    """Why `addr` is not a HOST:PORT that peers can dial, or None: a host without
    spaces or '/', a port 1-65535 (a member's address is stored for good)."""
    host, sep, port = addr.rpartition(":")
    if (not sep or not host or any(c.isspace() or c == "/" for c in host)
            or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536):
        return f"expected HOST:PORT with a port 1-65535, got {addr!r}"
    return None


class StartupError(Exception):
    """A start-up option the node cannot run with (an --initial-cluster that does not
    name it at its --ws-addr, a --data-dir that cannot be a directory): exit 2."""


def reached_at(listed: str, ws_addr: str) -> bool:
    """True if peers dialling ``listed`` (this node's address in the cluster configuration)
    reach a node serving on ``ws_addr``: the same address or, when ``ws_addr`` is every
    interface (``0.0.0.0:P``, ``[::]:P``), any host with the same port."""
    host, _, port = ws_addr.rpartition(":")
    wildcard = host.strip("[]") in ("0.0.0.0", "::", "")
    return listed == ws_addr or (wildcard and listed.rpartition(":")[2] == port)


@dataclass(slots=True)
class NodeOptions:
    id: int
    ws_addr: str
    config_file: Path | None = None  # None: ./schemas.yaml, else the packaged schema (bootstrap_config)
    data_dir: Path | None = None  # default ./data/node-<id>
    in_memory: bool = False
    init: bool = False  # initialise a single-node cluster at start-up if uninitialised
    tick_ms: int = 50
    election_ticks: int = 20  # election timeout: [election, 2*election) ticks
    heartbeat_ticks: int = 2
    link_down_ticks: int = 1  # campaign [n, 2n] ticks after the leader's connection closes (0: off)
    snapshot_threshold: int = 20_000  # applied entries between snapshots
    snapshot_keep: int = 2_000  # entries kept in memory behind a snapshot for slow followers
    snapshot_threshold_bytes: int = 64 << 20  # ... or applied log bytes between snapshots (fewer for a small store)
    snapshot_keep_bytes: int = 16 << 20  # ... and at most this many bytes of them
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_build: str = "process"  # serialise own snapshots in a forked child ("process") or a thread ("thread")
    max_frame_bytes: int = 16 << 20  # larger client frames get an Error reply
    max_batch_copy: int = 64 << 20  # bytes (list elements) a batch's Add/Subtract may copy (qcore.node.write_cost)
    max_inflight_per_conn: int = 4096
    max_connections: int = 10_000
    request_timeout: float = 10.0
    max_batch_commands: int = 1024  # commands per log entry (group commit)
    notify_retain: int = 100_000  # committed changes kept for RegisterNotification.from_index
    notify_max_per_conn: int = 1_000  # registrations per connection
    notify_queue_limit: int = 10_000  # undelivered notifications per connection before it reads from the window
    notify_queue_bytes: int = 16 << 20  # ... or bytes of them
    peer_overrides: dict[int, str] = field(default_factory=dict)  # reach peer J at this address
    initial_cluster: dict[int, str] | None = None  # form this cluster on first start (no Init)
    join: list[str] = field(default_factory=list)  # ask the cluster at these addresses to take this node in
    join_as_learner: bool = False  # ... as a learner only
    metrics: bool = True  # per-request counters and GET /metrics (off only to measure their cost)
    tls_cert_file: Path | None = None  # serve wss:// / https:// with this certificate (SPEC 8.1)
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None  # verify peers against this CA (else the system's)
    peer_secret_files: list[Path] = field(default_factory=list)  # SPEC 8.2; the first is preferred
    peer_cert_auth: bool = False  # a client certificate signed by the CA proves a peer
    max_conn_output: int = 256 << 10  # unsent reply bytes on one connection before it is no longer read
    max_output: int = 32 << 20  # unsent reply bytes on all connections together before the slow ones pause
    stuck_timeout: float = 30.0  # a connection whose replies have not drained for this long is closed
    max_peer_output: int = 64 << 20  # unsent bytes to one peer before further messages to it are dropped
    handshake_timeout: float = 10.0  # seconds for a TLS, WebSocket or peer handshake before the connection is closed
    admin_password_file: Path | None = None  # --init/--initial-cluster start with user admin and users on
    console: bool = True  # the web console on GET / (qcore.node.console)

    def admin_password(self) -> str | None:
        """The password in --admin-password-file (its first line), or None without one."""
        if self.admin_password_file is None:
            return None
        return read_password_file(self.admin_password_file)

    @property
    def host(self) -> str:
        """The host to bind: an IPv6 address without the brackets of `[::1]:8080`."""
        host = self.ws_addr.rsplit(":", 1)[0]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    @property
    def port(self) -> int:
        return int(self.ws_addr.rsplit(":", 1)[1])

    def ticks(self, seconds: float) -> int:
        """`seconds` as a whole number of Raft ticks, at least one."""
        return max(1, int(seconds * 1000 / self.tick_ms))

    def no_leader_ticks(self) -> int:
        """How long a request waits for a leader to be elected before the node answers no_leader
        (not applied): two election timeouts ride out an election, and the client, which retries
        such answers, hears the truth well before its deadline (never past the request timeout)."""
        return min(self.ticks(self.request_timeout), 2 * self.election_ticks)

    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else Path("data") / f"node-{self.id}"


def read_password_file(path: Path) -> str:
    """The first line of a password file, without its line ending or a UTF-8 byte order mark
    (Windows editors write one; nobody types it); ValueError if there is none (OSError if unreadable)."""
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text else ""
    if not first:
        raise ValueError(f"{path}: the first line (the password) is empty")
    return first
