"""``qcore bench``: command line of the benchmark suite.

Subcommands (``run`` is the default):

- ``run``: start qcore clusters of each size (and the ``--vs`` peers of the
  same size), run every workload at every concurrency, interleaving the
  systems run by run, print the table and qcore/peer ratios, write JSON and
  PNG charts. The load generator's ceiling (a no-op server) takes part in
  the rotation of the first cluster size, cell by cell.
- ``ceiling``: only the no-op server measurement.
- ``scale``: throughput and node memory with 10k, 100k, 1M entities, bytes
  per entity (node RSS, in-process tracemalloc), ten written fields, and
  creating under one parent against spreading over 1,000.
- ``snapshot``: snapshot size, write time and restore time of the store
  (in-process) at 1M entities.
- ``metrics-cost``: 3-node write throughput with and without the per-request
  metrics (``--no-metrics``), alternating, round after round.
- ``users-cost``: the same with users on (every request's permissions
  checked) against users off. ``run --users`` also measures a cluster with
  users on (system ``qcore-users``) in the full rotation.
- ``tls-cost``: the same with TLS and a peer secret against plain; ``run
  --tls`` measures ``qcore-tls`` in the full rotation.
- ``export``: import (``qcore --config-file F --init``) and export
  (``qcore-cli export``) of a 1M-entity tree, end to end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from qcore.bench import report
from qcore.bench.cluster import ExternalQcore, QcoreCluster
from qcore.bench.etcd import INSTALL_HINT as ETCD_HINT
from qcore.bench.etcd import EtcdCluster, etcd_binary
from qcore.bench.loadgen import run_async
from qcore.bench.machine import describe, one_line
from qcore.bench.peers import PYSYNCOBJ_INSTALL_HINT, NoopServer, PysyncobjCluster, pysyncobj_installed
from qcore.bench.runner import RunResult, measure
from qcore.bench.targets import WORKLOADS, make_target
from qcore.local_tls import make_local_tls
from qcore.run_guard import children_die_with_run

logger = logging.getLogger(__name__)

PEERS = ("etcd", "pysyncobj")
#: Where results go: the committed reference run's directory, but never by default for a --quick
#: (smoke) run, which would overwrite it in a checkout; bench/out is ignored by git.
RESULTS_DIR = Path("bench/results")
QUICK_OUT_DIR = Path("bench/out")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for n in names:
        if n not in WORKLOADS:
            raise argparse.ArgumentTypeError(f"unknown workload {n!r} (choose from {', '.join(WORKLOADS)})")
    return names


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)")
    p.add_argument("--procs", type=int, default=1, help="load-generator processes per run (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where JSON and PNG go (default {RESULTS_DIR}; with --quick {QUICK_OUT_DIR})")
    p.add_argument("--workdir", type=Path, default=None, help="where data dirs go (default: a fresh dir in /var/tmp)")
    p.add_argument("--keep-workdir", action="store_true", help="keep data dirs and server logs afterwards")
    p.add_argument("--qcore-arg", action="append", default=[], help="extra argument for every qcore node (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qcore bench", description="Measure qcore (and its peers) on this machine.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="the full comparison (default)")
    _common(run)
    run.add_argument("--nodes", type=_ints, default=[1, 3, 5], help="cluster sizes (default 1,3,5)")
    run.add_argument("--workloads", type=_names, default=list(WORKLOADS), help=f"default {','.join(WORKLOADS)}")
    run.add_argument("--concurrency", type=_ints, default=[1, 16, 64, 256], help="clients (default 1,16,64,256)")
    run.add_argument("--vs", action="append", choices=PEERS, default=[], help="also measure a peer (repeatable)")
    run.add_argument("--no-qcore", action="store_true", help="measure only the peers (and the ceiling)")
    run.add_argument(
        "--connect", default=None, metavar="HOST:PORT[,...]",
        help="drive an already running, initialised qcore cluster (leader first) instead of starting one, e.g. one under a profiler",
    )
    run.add_argument("--no-ceiling", action="store_true", help="skip the no-op server measurement")
    run.add_argument("--entities", type=int, default=1000, help="entities/keys the workloads spread over (default 1000)")
    run.add_argument("--pysyncobj-batch", action="store_true", help="PySyncObj with its default batching (~100 ms/write)")
    run.add_argument("--quick", action="store_true", help="3 nodes, write+read, 1 and 64 clients, 3 s runs")
    run.add_argument("--tls", action="store_true",
                     help="also measure qcore with TLS and a peer secret (system qcore-tls), interleaved with plain qcore")
    run.add_argument("--users", action="store_true",
                     help="also measure qcore with users on (system qcore-users), interleaved with plain qcore")

    ceiling = sub.add_parser("ceiling", help="only the load generator's ceiling against a no-op server")
    _common(ceiling)
    ceiling.add_argument("--workloads", type=_names, default=["write", "read"])
    ceiling.add_argument("--concurrency", type=_ints, default=[1, 16, 64, 256])

    scale = sub.add_parser("scale", help="throughput and memory against entity count")
    _common(scale)
    scale.add_argument("--sizes", type=_ints, default=[10_000, 100_000, 1_000_000])
    scale.add_argument("--nodes", type=int, default=3)
    scale.add_argument("--workload", choices=WORKLOADS, default="write")
    scale.add_argument("--concurrency", type=int, default=64)
    scale.add_argument("--wide-entities", type=int, default=200_000,
                       help="entities of the ten-field shape on one node (0 skips; default 200000)")
    scale.add_argument("--flat-entities", type=int, default=100_000,
                       help="creates under one parent, and as many spread over 1,000 (0 skips; default 100000)")
    scale.add_argument("--no-in-process", action="store_true", help="skip the in-process memory/snapshot measurement")
    scale.add_argument("--no-traced", action="store_true", help="skip tracemalloc (it slows the in-process build)")
    scale.add_argument("--quick", action="store_true", help="small sizes for a smoke run (1k, 5k; 5k wide and flat)")

    for name, what in (("metrics-cost", "write throughput with and without per-request metrics"),
                       ("users-cost", "write throughput with users on (permissions checked) and off"),
                       ("tls-cost", "write throughput with TLS and a peer secret on and off")):
        cost = sub.add_parser(name, help=what)
        _common(cost)
        cost.add_argument("--nodes", type=int, default=3)
        cost.add_argument("--workload", choices=WORKLOADS, default="write")
        cost.add_argument("--concurrency", type=_ints, default=[1, 64])
        cost.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
        cost.add_argument("--entities", type=int, default=1000)
        cost.add_argument("--quick", action="store_true", help="2 rounds of 2 s at 64 clients (a smoke run)")

    exp = sub.add_parser("export", help="import and export of a big tree, end to end")
    exp.add_argument("--entities", type=int, default=1_000_000)
    exp.add_argument("--out", type=Path, default=Path("bench/results"))
    exp.add_argument("--workdir", type=Path, default=None)
    exp.add_argument("--keep-workdir", action="store_true", help="keep the config file, the export and the node log")
    exp.add_argument("-v", "--verbose", action="store_true")

    charts = sub.add_parser("charts", help="redraw the PNG charts from a results.json")
    charts.add_argument("results", type=Path, nargs="?", default=Path("bench/results/results.json"))
    charts.add_argument("-v", "--verbose", action="store_true")

    snap = sub.add_parser("snapshot", help="store snapshot size / write / restore time (in-process)")
    snap.add_argument("--entities", type=int, default=1_000_000)
    snap.add_argument("--out", type=Path, default=Path("bench/results"))
    snap.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    with children_die_with_run("qcore bench"):
        return _main(argv)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (no command: ``run``), with --out's default filled in."""
    args_list = list(argv)
    if not args_list or args_list[0].startswith("-") and args_list[0] not in ("-h", "--help"):
        args_list.insert(0, "run")
    args = build_parser().parse_args(args_list)
    if "out" in vars(args) and args.out is None:
        args.out = QUICK_OUT_DIR if getattr(args, "quick", False) else RESULTS_DIR
    return args


def _main(argv: list[str] | None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "charts":
        return _redraw(args.results)
    if args.command == "snapshot":
        from qcore.bench.snapshot import run_snapshot_bench

        return run_snapshot_bench(args.entities, args.out)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qcore-bench-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    workdir.mkdir(parents=True, exist_ok=True)
    rc = 1
    try:
        if args.command == "ceiling":
            results = run_async(_ceiling(args, workdir, args.workloads, args.concurrency))
            print(report.table(results))
            rc = 1 if any(r.failed for r in results) else 0
        elif args.command in ("metrics-cost", "users-cost", "tls-cost"):
            from qcore.bench.feature_cost import run_metrics_cost, run_tls_cost, run_users_cost

            if args.quick:
                args.rounds, args.duration, args.warmup, args.concurrency = 2, 2.0, 0.5, [64]
            cost = {"metrics-cost": run_metrics_cost, "users-cost": run_users_cost,
                    "tls-cost": run_tls_cost}[args.command]
            rc = run_async(cost(args, workdir))
        elif args.command == "export":
            from qcore.bench.export_import import run_export_import

            rc = run_export_import(args.entities, workdir, args.out)
        elif args.command == "scale":
            from qcore.bench.scale import run_scale

            if args.quick:
                args.sizes, args.wide_entities, args.flat_entities = [1_000, 5_000], 5_000, 5_000
                args.duration, args.warmup = min(args.duration, 2.0), min(args.warmup, 0.5)

            rc = run_async(run_scale(args, workdir))
        else:
            rc = run_async(_run(args, workdir))
        return rc
    finally:
        if args.keep_workdir or rc != 0:
            print(f"data dirs and server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _redraw(path: Path) -> int:
    """Charts from a stored run, e.g. after changing how they are drawn."""
    doc = orjson.loads(path.read_bytes())
    runs = [RunResult.from_json(r) for r in doc.get("results", []) + doc.get("ceiling", [])]
    written = report.charts(runs, path.parent)
    print("wrote " + ", ".join(str(p) for p in written) if written else "no charts (matplotlib missing or no runs)")
    return 0 if written else 1


async def _ceiling(args: argparse.Namespace, workdir: Path, workloads: list[str], concs: list[int]) -> list[RunResult]:
    """The load generator against a server that does nothing: the most any system can show."""
    noop = NoopServer(workdir)
    results = []
    await noop.start()
    try:
        params = await noop.prepare(1000)
        for wl in workloads:
            for conc in concs:
                for system, target, eps in (("noop", "noop", noop.endpoints), ("noop-http", "noop-http", noop.http_endpoints)):
                    r = await measure(
                        system=system, nodes=1, target=target, params=params, endpoints=eps, workload=wl,
                        concurrency=conc, duration=args.duration, warmup=args.warmup, procs=args.procs,
                    )
                    _progress(r)
                    results.append(r)
    finally:
        noop.stop()
    return results


def _progress(r: RunResult) -> None:
    if r.failed:
        print(f"  {r.system} x{r.nodes} {r.workload} c={r.concurrency}: FAILED {r.failed.splitlines()[0] if r.failed else ''}", flush=True)
    else:
        f = r.figures
        print(
            f"  {r.system} x{r.nodes} {r.workload} c={r.concurrency}: {f['ops_per_s']:.0f} ops/s "
            f"p50 {f['p50_ms']:.2f} ms p99 {f['p99_ms']:.2f} ms errors {int(f['errors'])}",
            flush=True,
        )


class _HttpView:
    """The no-op server's HTTP side as a system of its own in the rotation."""

    system = target = "noop-http"
    nodes = 1

    def __init__(self, noop: NoopServer) -> None:
        self._noop = noop
        self.endpoints = noop.http_endpoints

    async def start(self) -> None:
        """Started with the WebSocket side."""

    async def prepare(self, entities: int) -> dict[str, Any]:
        return await self._noop.prepare(entities)

    def rss_bytes(self) -> list[int]:
        return self._noop.rss_bytes()

    def stop(self) -> None:
        """Stopped with the WebSocket side."""


def _systems(args: argparse.Namespace, nodes: int, workdir: Path, notes: list[str]) -> list[Any]:
    systems: list[Any] = []
    if args.connect:
        if nodes == args.nodes[0]:
            systems.append(ExternalQcore([e.strip() for e in args.connect.split(",") if e.strip()]))
    elif not args.no_qcore:
        systems.append(QcoreCluster(nodes, workdir, args.qcore_arg))
        if args.tls:
            systems.append(QcoreCluster(nodes, workdir, args.qcore_arg, tls=make_local_tls(workdir / "tls")))
        if args.users:
            systems.append(QcoreCluster(nodes, workdir, args.qcore_arg, users=True))
    if "etcd" in args.vs:
        if etcd_binary() is None:
            notes.append(f"etcd skipped: not installed; install with: {ETCD_HINT}")
        else:
            systems.append(EtcdCluster(nodes, workdir))
    if "pysyncobj" in args.vs:
        if not pysyncobj_installed():
            notes.append(f"pysyncobj skipped: not installed; install with: {PYSYNCOBJ_INSTALL_HINT}")
        else:
            systems.append(PysyncobjCluster(nodes, workdir, batch=args.pysyncobj_batch))
    return systems


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    if args.quick:
        args.nodes, args.workloads, args.concurrency = [3], ["write", "read"], [1, 64]
        args.duration, args.warmup = min(args.duration, 3.0), min(args.warmup, 1.0)
    machine = describe(workdir)
    print(f"machine: {one_line(machine)}", flush=True)
    if machine["data_dir_fs"] == "tmpfs":
        print("WARNING: data dirs are on tmpfs: fsync is free there, write figures are not durable ones", flush=True)
    notes: list[str] = []
    results: list[RunResult] = []
    ceiling: list[RunResult] = []
    started = time.time()
    for nodes in args.nodes:
        systems = _systems(args, nodes, workdir, notes)
        if not args.no_ceiling and nodes == args.nodes[0]:
            # The ceiling joins the rotation of the first size, so it is measured
            # under the same conditions (other load on the machine) as its neighbours.
            noop = NoopServer(workdir)
            systems += [noop, _HttpView(noop)]
        live: list[tuple[Any, dict[str, Any]]] = []
        try:
            for s in systems:
                try:
                    await s.start()
                    live.append((s, await s.prepare(args.entities)))
                except Exception as exc:  # noqa: BLE001 - one system failing must not stop the others
                    notes.append(f"{s.system} x{nodes} could not start: {exc}")
                    print(f"{s.system} x{nodes} could not start: {exc}", flush=True)
            print(f"{nodes}-node clusters: {', '.join(s.system for s, _ in live) or 'none'}", flush=True)
            for wl in args.workloads:
                for conc in args.concurrency:
                    for s, params in live:  # interleaved: each system in turn for the same cell
                        target = s.target
                        if wl not in make_target(target, params).workloads:
                            continue
                        if target == "noop-http" and wl not in ("write", "read"):
                            continue
                        r = await measure(
                            system=s.system, nodes=s.nodes, target=target, params=params, endpoints=s.endpoints,
                            workload=wl, concurrency=conc, duration=args.duration, warmup=args.warmup, procs=args.procs,
                        )
                        r.extra["rss_bytes"] = s.rss_bytes()
                        r.extra["loadavg_1m"] = os.getloadavg()[0]  # other load on the machine skews figures
                        _progress(r)
                        (ceiling if target.startswith("noop") else results).append(r)
        finally:
            for s in systems:
                s.stop()
    rows = report.ratios(results)
    print()
    if ceiling:
        print("Load generator ceiling (no-op server; a system near these numbers is client-bound):")
        print(report.table(ceiling))
        print()
    print(report.table(results))
    print()
    print("qcore / peer (ops x > 1: qcore faster; p50 x, p99 x < 1: qcore quicker):")
    print(report.ratio_table(rows))
    print()
    print("Targets (issue 8):")
    print(report.targets(results))
    loads = [r.extra["loadavg_1m"] for r in results if "loadavg_1m" in r.extra]
    if loads:
        notes.append(
            f"1-minute load average during the runs: {min(loads):.1f} .. {max(loads):.1f} on {os.cpu_count()} CPUs"
            " (it counts the bench's own processes and those waiting on the disk)"
        )
    for n in notes:
        print(f"note: {n}")
    document = {
        "kind": "qcore-bench-run",
        "started_unix": started,
        "machine": machine,
        "config": {
            "nodes": args.nodes, "workloads": args.workloads, "concurrency": args.concurrency, "duration": args.duration,
            "warmup": args.warmup, "procs": args.procs, "entities": args.entities, "vs": args.vs,
            "pysyncobj_batch": args.pysyncobj_batch, "qcore_args": args.qcore_arg,
        },
        "ceiling": [r.to_json() for r in ceiling],
        "results": [r.to_json() for r in results],
        "ratios": rows,
        "notes": notes,
    }
    report.write_json(args.out / "results.json", document)
    (args.out / "table.txt").write_text(
        f"machine: {one_line(machine)}\n\nceiling:\n{report.table(ceiling)}\n\n{report.table(results)}\n\n"
        f"qcore / peer:\n{report.ratio_table(rows)}\n\ntargets (issue 8):\n{report.targets(results)}\n"
        + "".join(f"note: {n}\n" for n in notes)
    )
    charts = report.charts(results + ceiling, args.out)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'table.txt'}" + "".join(f", {c}" for c in charts))
    failed = [r for r in results if r.failed]
    return 1 if failed or any("could not start" in n for n in notes) else 0
