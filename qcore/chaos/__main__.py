"""``python -m qcore.chaos --nodes 5 --duration 1800 --seed 7``: one or more chaos runs.

``python -m qcore.chaos --failover 20``: instead, measure the time from
``kill -9`` of the leader to the next acknowledged write, 20 times
(qcore.chaos.failover).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from qcore.chaos.failover import FailoverConfig, measure_failover
from qcore.chaos.linearizability import History, check_ops, explain_robust
from qcore.chaos.nemesis import FAULTS
from qcore.chaos.run import RunConfig, RunReport, run
from qcore.run_guard import children_die_with_run


def _dump_tasks() -> None:
    """SIGUSR1: print every asyncio task's stack (what is a long run waiting for?)."""
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


async def _run_with_dump(cfg: RunConfig) -> RunReport:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    return await run(cfg)


def _check_file(path: Path) -> int:
    """Re-check a recorded history offline: 0 linearizable, 1 not."""
    bad = 0
    for key, ops in sorted(History.load(path).items(), key=lambda kv: kv[0]):
        if not check_ops(ops):
            bad += 1
            why = explain_robust(ops)
            print(f"key {key}: " + (why.render() if why else "not linearizable"))
    print(f"{path}: {'linearizable' if not bad else f'{bad} keys NOT linearizable'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    with children_die_with_run("python -m qcore.chaos"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog="python -m qcore.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=5, help="voters")
    p.add_argument("--spares", type=int, default=1, help="extra nodes for membership changes")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults per seed")
    p.add_argument("--seed", type=int, default=1, help="first seed")
    p.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds to run")
    p.add_argument("--workers", type=int, default=8, help="concurrent client processes")
    p.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}")
    p.add_argument("--registers", type=int, default=0, help="keys to pre-create (default: from the duration)")
    p.add_argument("--ops-per-key", type=int, default=150)
    p.add_argument("--dir", type=Path, default=None, help="run directory (kept); default a temp dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir even when the run passes")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--node-arg", action="append", default=[], help="extra argument for every node (repeatable)")
    p.add_argument("--tls", action="store_true",
                   help="TLS on every connection and a peer secret (certificates made for the run)")
    p.add_argument("--users", action="store_true",
                   help="users on: the harness manages the cluster as admin, the workload is a user of its own")
    p.add_argument("--check", type=Path, default=None, metavar="HISTORY.jsonl",
                   help="only re-check a recorded history (a run's history.jsonl) and exit")
    p.add_argument("--failover", type=int, default=0, metavar="KILLS",
                   help="measure kill -9 of the leader -> next acknowledged write, KILLS times "
                        "(with --nodes, --workers as the number of clients, --seed, --tls, --dir, --keep)")
    a = p.parse_args(argv)
    if a.check is not None:
        return _check_file(a.check)
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.failover:
        fo = FailoverConfig(kills=a.failover, nodes=a.nodes, clients=a.workers, seed=a.seed, tls=a.tls,
                            base_dir=a.dir, keep=a.keep, node_args=a.node_arg)
        measured = asyncio.run(measure_failover(fo))
        print(measured.render(), flush=True)
        return 0 if measured.ok else 1
    faults = tuple(f for f in a.faults.split(",") if f)
    unknown = set(faults) - set(FAULTS)
    if unknown:
        p.error(f"unknown faults {sorted(unknown)}")
    worst = 0
    for seed in range(a.seed, a.seed + a.seeds):
        cfg = RunConfig(nodes=a.nodes, spares=a.spares, duration=a.duration, seed=seed, workers=a.workers,
                        faults=faults, registers=a.registers or max(200, int(a.duration * 6)),
                        ops_per_key=a.ops_per_key, base_dir=a.dir / f"seed-{seed}" if a.dir else None,
                        keep=a.keep, node_args=a.node_arg, tls=a.tls, users=a.users)
        print(f"=== seed {seed}: {cfg.replay()}", flush=True)
        report = asyncio.run(_run_with_dump(cfg))
        print(report.render(), flush=True)
        if report.log_tails:
            print(report.log_tails, flush=True)
        worst = max(worst, report.exit_code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
