"""`qcore`: start a node (the seed's command line), or `qcore bench ...`.

    qcore --id 1 --ws-addr 127.0.0.1:8080 --config-file schemas.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from qcore.node import gc_policy
from qcore.node.options import NodeOptions

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


def parse_args(argv: list[str]) -> tuple[NodeOptions, str]:
    p = argparse.ArgumentParser(prog="qcore", description="Run a qcore node (or `qcore bench --help`).")
    p.add_argument("--id", type=int, required=True, help="this node's Raft id (u64, > 0)")
    p.add_argument("--ws-addr", type=_addr, required=True, help="host:port to serve on; peers reach this node here")
    p.add_argument("--config-file", type=Path, default=None,
                   help="schema + initial tree YAML, read only when this node initialises a cluster (Init, --init);"
                        " default: schemas.yaml in the working directory if there is one, else the schema shipped"
                        " with qcore")
    p.add_argument("--data-dir", type=Path, default=None, help="durable Raft state (default ./data/node-<id>)")
    p.add_argument("--in-memory", action="store_true", help="keep Raft state in memory only (nothing survives a restart)")
    p.add_argument("--init", action="store_true", help="initialise a single-node cluster at start-up if uninitialised")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--tick-ms", type=int, default=50, help="Raft tick length in milliseconds")
    p.add_argument("--election-ticks", type=int, default=20, help="election timeout in ticks (randomised up to 2x)")
    p.add_argument("--heartbeat-ticks", type=int, default=2, help="heartbeat interval in ticks")
    p.add_argument("--snapshot-threshold", type=int, default=20_000, help="applied entries between snapshots")
    p.add_argument("--snapshot-keep", type=int, default=2_000,
                   help="log entries kept behind a snapshot for slow followers (beyond them, a snapshot is sent)")
    p.add_argument("--max-frame-bytes", type=int, default=16 << 20, help="largest accepted client frame")
    p.add_argument("--max-inflight", type=int, default=4096, help="requests in flight per connection")
    p.add_argument("--max-connections", type=int, default=10_000)
    p.add_argument("--request-timeout", type=float, default=10.0, help="seconds before a request fails")
    p.add_argument("--notify-retain", type=int, default=100_000,
                   help="committed changes kept so a watch can resume with from_index")
    p.add_argument("--notify-max-per-conn", type=int, default=1_000, help="notification registrations per connection")
    p.add_argument("--notify-queue-limit", type=int, default=10_000,
                   help="undelivered notifications per connection before it reads from the retained window")
    p.add_argument("--peer-override", type=_peer_override, action="append", default=[], metavar="ID=HOST:PORT",
                   help="reach peer ID at this address instead of its membership address (testing proxies)")
    a = p.parse_args(argv)
    if a.id <= 0 or a.id >= 1 << 64:
        p.error("--id must be a positive 64-bit integer")
    return NodeOptions(
        id=a.id, ws_addr=a.ws_addr, config_file=a.config_file, data_dir=a.data_dir, in_memory=a.in_memory,
        init=a.init, tick_ms=a.tick_ms, election_ticks=a.election_ticks, heartbeat_ticks=a.heartbeat_ticks,
        snapshot_threshold=a.snapshot_threshold, snapshot_keep=a.snapshot_keep, max_frame_bytes=a.max_frame_bytes, max_inflight_per_conn=a.max_inflight,
        max_connections=a.max_connections, request_timeout=a.request_timeout, peer_overrides=dict(a.peer_override),
        notify_retain=a.notify_retain, notify_max_per_conn=a.notify_max_per_conn,
        notify_queue_limit=a.notify_queue_limit,
    ), a.log_level


async def _run(opts: NodeOptions) -> int:
    from qcore.node.server import Node

    node = Node(opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(node.stop()))
    await node.start()
    print(f"qcore node {opts.id} listening on ws://{opts.ws_addr}", flush=True)
    await node.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from qcore.bench import main as bench_main

        return bench_main(argv[1:])
    opts, level = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, level),
        format=f"%(asctime)s node={opts.id} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    gc_policy.install()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    from qcore.store.config import ConfigError

    try:
        return runner(_run(opts))
    except ConfigError as exc:  # read at start-up by an uninitialised node
        print(f"qcore: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"qcore: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # StorageError and the like: a clear one-line reason
        print(f"qcore: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
