"""`qcore`: start a node (the seed's command line), `qcore bench ...`, or
`qcore snapshot restore ...` (qcore.cli.restore), or `qcore gen-secret FILE`
(a peer secret, SPEC 8.2).

    qcore --id 1 --ws-addr 127.0.0.1:8080 --config-file schemas.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn
from pathlib import Path

from qcore import build
from qcore.cli.argtypes import at_least, members
from qcore.cli.logs import FORMATS, configure as configure_logging, json_line
from qcore.node import gc_policy, malloc_policy
from qcore.node.options import NodeOptions, read_password_file

if TYPE_CHECKING:
    from qcore.node.server import Node

log = logging.getLogger("qcore")


def _peer_override(text: str) -> tuple[int, str]:
    node_id, sep, addr = text.partition("=")
    if not sep or not node_id.isdigit() or ":" not in addr:
        raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, got {text!r}")
    return int(node_id), addr


def _addr(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _addrs(text: str) -> list[str]:
    addrs = [_addr(t.strip()) for t in text.split(",") if t.strip()]
    if not addrs:  # (an empty --join would start a node that never joins anything)
        raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    return addrs


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


class _NodeParser(argparse.ArgumentParser):
    """Usage errors as argparse writes them, or, when the command line asks for
    `--log-format json`, as one JSON log line: every line on stderr is then JSON."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if not self.json_errors:
            super().error(message)
        sys.stderr.write(json_line("CRITICAL", "qcore", None, f"{message} (qcore --help shows the usage)") + "\n")
        sys.exit(2)


def _asks_for_json(argv: list[str]) -> bool:
    """Does the command line say `--log-format json` (read before it is parsed, for its errors)?"""
    for i, arg in enumerate(argv):
        if arg == "--log-format=json" or (arg == "--log-format" and argv[i + 1:i + 2] == ["json"]):
            return True
    return False


def parse_args(argv: list[str]) -> tuple[NodeOptions, argparse.Namespace]:
    p = _NodeParser(prog="qcore", description="Run a qcore node. Other commands: `qcore bench ...` (benchmarks), "
                    "`qcore snapshot restore FILE ...` (a new data dir from a backup), "
                    "`qcore gen-secret FILE` (a peer secret); each has --help.")
    p.json_errors = _asks_for_json(argv)
    p.add_argument("--version", action="version", version=build.describe("qcore"),
                   help="print the version and the log entry semantics level this build applies, and exit")
    p.add_argument("--id", type=int, required=True, help="this node's Raft id (u64, > 0)")
    p.add_argument("--ws-addr", type=_addr, required=True, help="host:port to serve on; peers reach this node here")
    p.add_argument("--config-file", type=Path, default=None,
                   help="schema + initial tree YAML, read only when this node initialises a cluster (Init, --init);"
                        " default: schemas.yaml in the working directory if there is one, else the schema shipped"
                        " with qcore")
    p.add_argument("--data-dir", type=Path, default=None, help="durable Raft state (default ./data/node-<id>)")
    p.add_argument("--in-memory", action="store_true", help="keep Raft state in memory only (nothing survives a restart)")
    p.add_argument("--init", action="store_true", help="initialise a single-node cluster at start-up if uninitialised")
    p.add_argument("--initial-cluster", type=members, metavar="ID=HOST:PORT,...",
                   help="form this cluster on first start, no Init (give every member the same list and config file)")
    p.add_argument("--join", type=_addrs, default=[], metavar="HOST:PORT[,HOST:PORT]",
                   help="ask the cluster at these addresses to add this node as a learner, then as a voter")
    p.add_argument("--join-as-learner", action="store_true", help="with --join: stay a learner")
    p.add_argument("--admin-password-file", type=Path, default=None, metavar="FILE",
                   help="with --init or --initial-cluster: start with user admin (this password, the file's first"
                        " line) and users on (docs/security.md)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", default="text", choices=list(FORMATS), help="text, or one JSON object per line")
    p.add_argument("--no-console", action="store_true",
                   help="do not serve the web console on GET / (the WebSocket protocol is unchanged)")
    p.add_argument("--no-metrics", action="store_true",
                   help="no per-request counters and no GET /metrics (to measure what they cost)")
    p.add_argument("--tick-ms", type=at_least(1), default=50, help="Raft tick length in milliseconds")
    p.add_argument("--election-ticks", type=at_least(1), default=20, help="election timeout in ticks (randomised up to 2x)")
    p.add_argument("--heartbeat-ticks", type=at_least(1), default=2, help="heartbeat interval in ticks")
    p.add_argument("--link-down-ticks", type=int, default=1,
                   help="a follower whose connection to the leader closes campaigns after 1-2x this many "
                        "ticks instead of an election timeout (0: off)")
    p.add_argument("--snapshot-threshold", type=at_least(1), default=20_000, help="applied entries between snapshots")
    p.add_argument("--snapshot-keep", type=at_least(0), default=2_000,
                   help="log entries kept behind a snapshot for slow followers (beyond them, a snapshot is sent)")
    p.add_argument("--snapshot-threshold-bytes", type=at_least(1), default=64 << 20,
                   help="also take a snapshot once this many bytes of log were applied since the last (a store of n entities: 64*n bytes, at least 8 MiB, at most this)")
    p.add_argument("--snapshot-keep-bytes", type=at_least(0), default=16 << 20,
                   help="keep at most this many bytes of log behind a snapshot (with --snapshot-keep; at most a quarter of the byte threshold)")
    p.add_argument("--snapshot-build", choices=("process", "thread"), default="process",
                   help="serialise the node's own snapshots in a forked child process at a lower CPU priority "
                        "(default; the node's loop keeps the interpreter to itself) or on a thread of the node")
    p.add_argument("--max-frame-bytes", type=at_least(1), default=16 << 20, help="largest accepted client frame")
    p.add_argument("--max-batch-copy", type=at_least(0), default=64 << 20, metavar="BYTES",
                   help="bytes (or list elements) a batch's Add/Subtract writes may copy (default 64 MiB)")
    p.add_argument("--max-inflight", type=at_least(1), default=4096, help="requests in flight per connection")
    p.add_argument("--max-connections", type=at_least(1), default=10_000)
    p.add_argument("--max-conn-output", type=int, default=256 << 10, metavar="BYTES",
                   help="unsent reply bytes on one connection before the node stops reading it; a quarter of it "
                        "bounds the bytes of requests in flight on one connection (default 256 KiB)")
    p.add_argument("--max-output", type=int, default=32 << 20, metavar="BYTES",
                   help="unsent reply bytes on all connections before the slow ones are paused (default 32 MiB)")
    p.add_argument("--stuck-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                   help="close a connection whose replies have not drained for this long, or a link to a peer "
                        "that read nothing of it for this long (default 30)")
    p.add_argument("--max-peer-output", type=int, default=64 << 20, metavar="BYTES",
                   help="unsent bytes to one peer before further Raft messages to it are dropped and it is "
                        "probed (default 64 MiB)")
    p.add_argument("--request-timeout", type=_seconds, default=10.0, help="seconds before a request fails")
    p.add_argument("--notify-retain", type=at_least(0), default=100_000,
                   help="committed changes kept so a watch can resume with from_index")
    p.add_argument("--notify-max-per-conn", type=at_least(0), default=1_000, help="notification registrations per connection")
    p.add_argument("--notify-queue-limit", type=at_least(1), default=10_000,
                   help="undelivered notifications per connection before it reads from the retained window")
    p.add_argument("--notify-queue-bytes", type=at_least(1), default=16 << 20, metavar="BYTES",
                   help="undelivered notification bytes per connection before it reads from the retained window "
                        "(default 16 MiB)")
    p.add_argument("--peer-override", type=_peer_override, action="append", default=[], metavar="ID=HOST:PORT",
                   help="reach peer ID at this address instead of its membership address (testing proxies)")
    sec = p.add_argument_group("security (docs/security.md)")
    sec.add_argument("--tls-cert-file", type=Path, metavar="PEM",
                     help="serve wss:// and https:// with this certificate (also presented to peers)")
    sec.add_argument("--tls-key-file", type=Path, metavar="PEM", help="the private key of --tls-cert-file")
    sec.add_argument("--tls-ca-file", type=Path, metavar="PEM",
                     help="the CA that signs the nodes' certificates: peers are verified against it")
    sec.add_argument("--peer-secret-file", type=Path, action="append", default=[], metavar="FILE",
                     help="the cluster's shared secret (qcore gen-secret FILE); peers must prove they hold it. "
                          "Give it twice (new, old) while rotating")
    sec.add_argument("--peer-cert-auth", action="store_true",
                     help="a client certificate signed by --tls-ca-file proves a peer (mutual TLS)")
    sec.add_argument("--handshake-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                     help="a connection whose TLS, WebSocket or peer handshake takes longer is closed")
    a = p.parse_args(argv)
    if a.id <= 0 or a.id >= 1 << 64:
        p.error("--id must be a positive 64-bit integer")
    if sum(map(bool, (a.init, a.initial_cluster, a.join))) > 1:
        p.error("--init, --initial-cluster and --join are alternatives: give one")
    if a.join_as_learner and not a.join:
        p.error("--join-as-learner needs --join")
    if (a.tls_cert_file is None) != (a.tls_key_file is None):
        p.error("--tls-cert-file and --tls-key-file go together")
    if a.tls_ca_file is not None and a.tls_cert_file is None:
        p.error("--tls-ca-file needs --tls-cert-file and --tls-key-file: a node that talks TLS to its peers serves it")
    if a.peer_cert_auth and a.tls_ca_file is None:
        p.error("--peer-cert-auth needs --tls-ca-file (and --tls-cert-file/--tls-key-file)")
    if not 64 << 10 <= a.max_conn_output <= 1 << 30:
        p.error("--max-conn-output must be between 64 KiB and 1 GiB")
    if a.max_output < a.max_conn_output:
        p.error("--max-output must be at least --max-conn-output")
    if not 1 << 20 <= a.max_peer_output <= 1 << 34:
        p.error("--max-peer-output must be between 1 MiB and 16 GiB")
    if a.election_ticks <= a.heartbeat_ticks:
        p.error("--election-ticks must be more than --heartbeat-ticks: a follower would campaign between heartbeats")
    if a.link_down_ticks < 0:
        p.error("--link-down-ticks must be >= 0")
    if len(a.peer_secret_file) > 2:
        p.error("--peer-secret-file may be given at most twice (new and old, while rotating)")
    if a.admin_password_file is not None:
        if not (a.init or a.initial_cluster):
            p.error("--admin-password-file needs --init or --initial-cluster")
        try:
            read_password_file(a.admin_password_file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            p.error(f"--admin-password-file: {exc}")
    return NodeOptions(
        id=a.id, ws_addr=a.ws_addr, config_file=a.config_file, data_dir=a.data_dir, in_memory=a.in_memory,
        init=a.init, tick_ms=a.tick_ms, election_ticks=a.election_ticks, heartbeat_ticks=a.heartbeat_ticks,
        link_down_ticks=a.link_down_ticks,
        snapshot_threshold=a.snapshot_threshold, snapshot_keep=a.snapshot_keep,
        snapshot_threshold_bytes=a.snapshot_threshold_bytes, snapshot_keep_bytes=a.snapshot_keep_bytes,
        snapshot_build=a.snapshot_build,
        max_frame_bytes=a.max_frame_bytes, max_batch_copy=a.max_batch_copy, max_inflight_per_conn=a.max_inflight,
        max_connections=a.max_connections, request_timeout=a.request_timeout, peer_overrides=dict(a.peer_override),
        notify_retain=a.notify_retain, notify_max_per_conn=a.notify_max_per_conn,
        notify_queue_limit=a.notify_queue_limit, notify_queue_bytes=a.notify_queue_bytes,
        initial_cluster=a.initial_cluster, join=a.join,
        join_as_learner=a.join_as_learner, metrics=not a.no_metrics,
        tls_cert_file=a.tls_cert_file, tls_key_file=a.tls_key_file,
        tls_ca_file=a.tls_ca_file, peer_secret_files=a.peer_secret_file, peer_cert_auth=a.peer_cert_auth,
        handshake_timeout=a.handshake_timeout, max_conn_output=a.max_conn_output, max_output=a.max_output,
        stuck_timeout=a.stuck_timeout, max_peer_output=a.max_peer_output, admin_password_file=a.admin_password_file,
        console=not a.no_console,
    ), a


def _stop_on(node: "Node", sig: signal.Signals) -> None:
    if not node.stopping:
        why = (": it stops the node as SIGTERM does (qcore reads its files only at start-up: restart the node "
               "to take new ones)") if sig == signal.SIGHUP else ""
        log.info("received %s%s", sig.name, why)
    asyncio.ensure_future(node.stop())


class _StopDuringStartup(KeyboardInterrupt):
    """A stop signal received before the node served, raised wherever start-up is: a
    KeyboardInterrupt, which no `except Exception` swallows and asyncio and uvloop re-raise
    from any callback, as they do Ctrl-C's."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


async def _run(opts: NodeOptions, announce: bool = True) -> int:
    from qcore.node.server import Node

    node = Node(opts)
    loop = asyncio.get_running_loop()
    # SIGHUP (a closed terminal; a "reload" to PostgreSQL users) stops the node as SIGTERM does,
    # with the leadership handed over, instead of killing it unannounced: there is nothing to reload.
    # Unless it is ignored (nohup): then it stays ignored.
    hup = [signal.SIGHUP] if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN else []
    stops = (signal.SIGINT, signal.SIGTERM, *hup)
    # Until the node serves, a stop signal raises _StopDuringStartup wherever start-up is (replaying
    # a long log or reading a large config file are long calls the loop cannot interrupt), and main()
    # stops there; if it was raised where it is swallowed (a gc callback), the node stops as soon as
    # it has started.
    interrupted: list[signal.Signals] = []

    def interrupt(signum: int, frame: object) -> None:
        sig = signal.Signals(signum)
        interrupted.append(sig)
        raise _StopDuringStartup(sig)

    for sig in stops:
        signal.signal(sig, interrupt)
    await node.start()
    for sig in stops:
        loop.add_signal_handler(sig, _stop_on, node, sig)
    if interrupted:
        _stop_on(node, interrupted[0])
    if announce:  # (with --log-format json, stdout and stderr carry only JSON lines)
        print(f"qcore node {opts.id} listening on {'wss' if node.tls else 'ws'}://{opts.ws_addr}", flush=True)
    await node.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from qcore.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:2] == ["snapshot", "restore"]:
        from qcore.cli.restore import main as restore_main

        return restore_main(argv[2:])
    if argv[:1] == ["snapshot"]:  # not a node's flags: say which tool has the other snapshot commands
        print("qcore snapshot: the command here is `qcore snapshot restore FILE --data-dir DIR --id N "
              "--initial-cluster ...`; `snapshot save` and `snapshot status` are qcore-cli's", file=sys.stderr)
        return 2
    if argv and argv[0] == "gen-secret":
        return gen_secret(argv[1:])
    opts, a = parse_args(argv)
    configure_logging(opts.id, a.log_level, a.log_format)
    gc_policy.install()
    malloc_policy.install()
    try:
        import uvloop

        runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    from qcore.node.cluster_identity import DataDirMismatch
    from qcore.node.driver import EXIT_NEEDS_UPGRADE
    from qcore.node.entries import LevelUnsupported
    from qcore.node.options import StartupError
    from qcore.node.peer_auth import SecretFileError
    from qcore.node.tls import TlsConfigError
    from qcore.store.config import ConfigError
    from qcore.storage import DataDirDamaged

    json_logs = a.log_format == "json"
    try:
        return runner(_run(opts, announce=not json_logs))
    except (ConfigError, TlsConfigError, SecretFileError, DataDirMismatch, StartupError) as exc:  # read at start-up
        return _fatal(str(exc), 2, json_logs)
    except LevelUnsupported as exc:  # its own snapshot holds entries of a newer build's level
        return _fatal(str(exc), EXIT_NEEDS_UPGRADE, json_logs)
    except DataDirDamaged as exc:  # never skipped nor repaired: say how to bring the node back
        return _fatal(f"{exc}. {damaged_data_dir_advice(opts.id)}", 1, json_logs)
    except OSError as exc:
        return _fatal(str(exc), 1, json_logs)
    except Exception as exc:  # StorageError and the like: a clear one-line reason
        return _fatal(f"{type(exc).__name__}: {exc}", 1, json_logs)
    except KeyboardInterrupt as stop:  # a stop signal before the node served: what it wrote is as after a kill -9
        log.info("received %s during start-up: stopped", stop.sig.name if isinstance(stop, _StopDuringStartup) else "SIGINT")
        return 0


def damaged_data_dir_advice(node_id: int) -> str:
    """What brings back a node whose data dir is damaged (docs/operations.md, "A damaged data dir")."""
    return (f"Leave its files as they are (a copy may help find the cause) and bring node {node_id} back "
            f"from the cluster: qcore-cli remove-node {node_id}, then start it on a new, empty data dir and "
            f"add it again (add-learner, or --join); or, for a single node or a cluster that lost its "
            f"quorum, from a backup (qcore snapshot restore). See docs/operations.md, 'A damaged data dir'")


def _fatal(message: str, code: int, json_logs: bool) -> int:
    """Why the node stopped, in one line on stderr: `qcore: ...`, or with
    `--log-format json` a CRITICAL log line like every other line; returns ``code``."""
    if json_logs:
        log.critical(message)
    else:
        print(f"qcore: {message}", file=sys.stderr)
    return code


def gen_secret(argv: list[str]) -> int:
    """`qcore gen-secret FILE`: a new peer secret, mode 0600; never overwrites."""
    from qcore.node.peer_auth import write_secret

    p = argparse.ArgumentParser(prog="qcore gen-secret",
                                description="Write a new peer secret (32 random bytes, hex) to FILE with mode 0600.")
    p.add_argument("file", type=Path)
    a = p.parse_args(argv)
    try:
        write_secret(a.file)
    except FileExistsError:
        print(f"qcore gen-secret: {a.file} exists; not overwriting it (it may be a cluster's secret)",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"qcore gen-secret: {a.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote a new peer secret to {a.file} (mode 0600); give it to every node with --peer-secret-file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
