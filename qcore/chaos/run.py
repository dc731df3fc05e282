"""One chaos run: form a cluster, load it under faults, heal, check, report.

Phases (TigerBeetle's VOPR has the same two): a *safety* phase with the
workload and the nemesis running together, then a *liveness* phase that heals
everything and requires the cluster to serve a write again within a bound.
Then the checks:

1. final reads of every key used, through every member node, added to the
   history (so "no acknowledged write lost" is part of the linearizability
   check) and compared across nodes (no divergence);
2. linearizability of every key's history;
3. recovery time after each leader kill: kill -> next acknowledged write.

Exit codes distinguish what went wrong, so a loop over seeds flags only real
problems: 0 ok, 1 not linearizable or an acknowledged write lost, 2 nodes
diverge, 3 liveness (no recovery after healing), 4 a node crashed by itself,
5 the harness itself failed (cluster could not be formed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qcore.chaos.cluster import Cluster, Logins
from qcore.chaos.linearizability import CheckResult, SearchBudgetExceeded, check_ops, explain_robust
from qcore.chaos.nemesis import FAULTS, Nemesis
from qcore.chaos.raw_client import RawClient, read_value
from qcore.chaos.workload import Workload
from qcore.local_tls import make_local_tls

logger = logging.getLogger(__name__)

__all__ = ["RunConfig", "RunReport", "run", "EXIT_OK", "EXIT_NONLINEAR", "EXIT_DIVERGED",
           "EXIT_LIVENESS", "EXIT_CRASH", "EXIT_HARNESS"]

EXIT_OK, EXIT_NONLINEAR, EXIT_DIVERGED, EXIT_LIVENESS, EXIT_CRASH, EXIT_HARNESS = 0, 1, 2, 3, 4, 5


@dataclass
class RunConfig:
    nodes: int = 3
    spares: int = 1
    duration: float = 60.0
    seed: int = 1
    workers: int = 6
    faults: tuple[str, ...] = FAULTS
    registers: int = 400
    active_keys: int = 3
    ops_per_key: int = 150
    op_timeout: float = 5.0
    liveness_timeout: float = 60.0
    base_dir: Path | None = None
    keep: bool = False
    max_configs: int = 500_000
    node_args: list[str] = field(default_factory=list)
    quiet: tuple[float, float] = (2.0, 5.0)  # seconds between faults
    hold: tuple[float, float] = (2.0, 6.0)  # seconds a fault lasts
    program: list[str] | None = None  # the node command before its arguments; default python -m qcore
    tls: bool = False  # TLS on every connection and a peer secret (qcore.chaos.secure)
    users: bool = False  # users on (SPEC 8.3): the harness is admin, the workload a user of its own

    def replay(self) -> str:
        return (f"python -m qcore.chaos --nodes {self.nodes} --spares {self.spares} --duration {self.duration:g} "
                f"--seed {self.seed} --workers {self.workers} --faults {','.join(self.faults)}"
                + (" --tls" if self.tls else "") + (" --users" if self.users else "")
                + "".join(f" --node-arg={a}" for a in self.node_args))


@dataclass
class RunReport:
    config: RunConfig
    exit_code: int = EXIT_OK
    ops: int = 0
    ok: int = 0
    fail: int = 0
    unknown: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    fault_errors: list[str] = field(default_factory=list)
    keys_checked: int = 0
    keys_unchecked: int = 0
    nonlinear: list[CheckResult] = field(default_factory=list)
    lost_write_keys: list[str] = field(default_factory=list)
    divergent: list[str] = field(default_factory=list)
    recovery: list[float] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    log_tails: str = ""
    run_dir: str | None = None  # kept for inspection (node logs, data dirs)

    @property
    def linearizable(self) -> bool:
        return not self.nonlinear

    def render(self) -> str:
        c = self.config
        rec = "n/a"
        if self.recovery:
            rec = f"median {statistics.median(self.recovery):.2f}s, worst {max(self.recovery):.2f}s ({len(self.recovery)} leader kills)"
        lines = [
            f"chaos run seed={c.seed} nodes={c.nodes}+{c.spares} spare duration={c.duration:g}s "
            f"workers={c.workers} elapsed={self.elapsed:.0f}s",
            f"  operations: {self.ops} (ok {self.ok}, fail {self.fail}, unknown {self.unknown})",
            f"  faults injected: {sum(self.faults.values())} {dict(sorted(self.faults.items()))}",
            f"  linearizable: {'yes' if self.linearizable else 'NO'} "
            f"({self.keys_checked} keys checked, {self.keys_unchecked} over the search budget)",
            f"  acknowledged writes lost: {len(self.lost_write_keys)} keys {self.lost_write_keys[:10]}",
            f"  divergent keys across nodes: {len(self.divergent)} {self.divergent[:5]}",
            f"  recovery (leader kill -> next ok write): {rec}",
        ]
        if self.errors:
            top = sorted(self.errors.items(), key=lambda kv: -kv[1])[:8]
            lines.append("  errors seen: " + "; ".join(f"{k} x{v}" for k, v in top))
        for e in self.fault_errors[:10]:
            lines.append(f"  nemesis error: {e}")
        for cr in self.crashes:
            lines.append(f"  CRASH: {cr}")
        for p in self.problems:
            lines.append(f"  PROBLEM: {p}")
        for r in self.nonlinear[:3]:
            lines.append(r.render())
        if self.run_dir:
            lines.append(f"  run directory (node logs, data): {self.run_dir}")
        lines.append(f"  exit code {self.exit_code}; replay: {c.replay()}")
        return "\n".join(lines)


async def _register_ids(client: RawClient) -> list[int]:
    """The ids of every Register entity, paging through FindEntities."""
    ids: list[int] = []
    cursor: Any = None
    while True:
        reply = await client.perform({"FindEntities": {"entity_type": "Register",
                                                       "page_opts": {"limit": 1000, "cursor": cursor}}},
                                     10.0, writes=False)
        if reply.outcome != "ok":
            raise RuntimeError(f"FindEntities failed: {reply.error}")
        page = reply.body["response"]
        ids += [int(e["id"]) for e in page["items"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            return sorted(ids)


async def _liveness(cluster: Cluster, workload: Workload, key: int, timeout: float) -> float | None:
    """Seconds until a write succeeds after healing, or None."""
    start = time.monotonic()
    clients = {n: RawClient(cluster.nodes[n].addr, name=f"live{n}", tls=cluster.client_tls, login=cluster.worker_login)
               for n in sorted(cluster.voters)}
    try:
        while time.monotonic() - start < timeout:
            for n, c in clients.items():
                reply = await workload.run_op(f"live{n}", c, key, "add", 1, timeout=5.0)
                if reply.outcome == "ok":
                    return time.monotonic() - start
            await asyncio.sleep(0.2)
        return None
    finally:
        for c in clients.values():
            await c.close()


async def _converge(cluster: Cluster, timeout: float = 30.0) -> str | None:
    """Wait until every member has applied as far as the leader; None or a problem."""
    deadline = time.monotonic() + timeout
    applied: dict[int, int] = {}
    while time.monotonic() < deadline:
        applied = {}
        for n in sorted(cluster.members):
            try:
                applied[n] = int((await cluster.metrics(n)).get("last_applied", {}).get("index", 0) or 0)
            except Exception:  # noqa: BLE001 - not converged yet
                applied[n] = -1
        if len(set(applied.values())) == 1:
            return None
        await asyncio.sleep(0.2)
    return f"members did not converge on last_applied in {timeout:.0f}s: {applied}"


async def _final_reads(cluster: Cluster, workload: Workload, keys: list[int], report: RunReport) -> None:
    """Read every used key through every member (nodes in parallel); record the
    reads in the history; compare the values across nodes."""
    values: dict[int, dict[int, int | None]] = {k: {} for k in keys}

    async def through(n: int) -> None:
        client = RawClient(cluster.nodes[n].addr, name=f"final{n}", tls=cluster.client_tls, login=cluster.worker_login)
        failures = 0
        try:
            for key in keys:
                for _attempt in range(3):
                    reply = await workload.run_op(f"final{n}", client, key, "read", None, timeout=10.0)
                    if reply.outcome == "ok":
                        values[key][n] = read_value(reply.body)
                        failures = 0
                        break
                else:
                    failures += 1
                    report.problems.append(f"final read of key {key} on node {n} failed: {reply.error}")
                    if failures >= 3:
                        report.problems.append(f"node {n} stopped answering reads: its final reads are skipped")
                        return
        finally:
            await client.close()

    await asyncio.gather(*(through(n) for n in sorted(cluster.members)))
    for key, seen in values.items():
        if len({v for v in seen.values() if v is not None}) > 1:
            report.divergent.append(f"{key}: {seen}")


def _check(workload: Workload, report: RunReport, max_configs: int) -> None:
    for key, ops in sorted(workload.history.ops_by_key().items(), key=lambda kv: int(kv[0])):
        try:
            ok = check_ops(ops, 0, max_configs)
        except SearchBudgetExceeded:
            report.keys_unchecked += 1
            continue
        report.keys_checked += 1
        if ok:
            continue
        res = CheckResult(key, False, len(ops), explanation=explain_robust(ops, 0, max_configs))
        report.nonlinear.append(res)
        during = [o for o in ops if not str(o.process).startswith("final")]
        try:
            if check_ops(during, 0, max_configs):
                report.lost_write_keys.append(key)  # only the final reads contradict it
        except SearchBudgetExceeded:
            pass


def _recovery(leader_kills: list[float], write_completions: list[float]) -> list[float]:
    done = sorted(write_completions)
    out = []
    for k in leader_kills:
        nxt = next((t for t in done if t > k), None)
        if nxt is not None:
            out.append(nxt - k)
    return out


async def run(cfg: RunConfig) -> RunReport:
    """Do one run; the report's ``exit_code`` says how it went."""
    report = RunReport(cfg)
    # Separate streams: the workload draws at a timing-dependent rate, and must
    # not shift the nemesis schedule, which a seed has to replay.
    nemesis_rng = random.Random(f"nemesis-{cfg.seed}")
    rng = random.Random(f"workload-{cfg.seed}")
    started = time.monotonic()
    tmp = Path(cfg.base_dir) if cfg.base_dir else Path(tempfile.mkdtemp(prefix=f"qcore-chaos-{cfg.seed}-"))
    logger.info("chaos run seed %d in %s; replay: %s", cfg.seed, tmp, cfg.replay())
    tls = make_local_tls(tmp / "tls") if cfg.tls else None
    cluster = Cluster(tmp, cfg.nodes, cfg.spares, registers=cfg.registers,
                      extra_args=[*(tls.node_args() if tls else []), *cfg.node_args],
                      program=cfg.program, client_tls=tls.client() if tls else None,
                      logins=Logins.fresh() if cfg.users else None)
    workload: Workload | None = None
    try:
        try:
            await cluster.start()
            await cluster.form()
            keys = await _register_ids(cluster.admin(1))
        except Exception as e:  # noqa: BLE001
            report.exit_code = EXIT_HARNESS
            report.problems.append(f"could not form the cluster: {e!r}")
            return report
        live_key, keys = keys[-1], keys[:-1]
        workload = Workload({n: cluster.nodes[n].addr for n in cluster.nodes}, keys, rng,
                            workers=cfg.workers, active_keys=cfg.active_keys, ops_per_key=cfg.ops_per_key,
                            timeout=cfg.op_timeout, tls=cluster.client_tls, login=cluster.worker_login)
        nemesis = Nemesis(cluster, nemesis_rng, faults=cfg.faults, quiet=cfg.quiet, hold=cfg.hold)
        workload.start()
        logger.info("safety phase: workload and nemesis for %.0fs", cfg.duration)
        await nemesis.run(cfg.duration)
        logger.info("healing every fault")
        await nemesis.heal_all()
        await workload.stop()
        logger.info("liveness phase: %d ops recorded", workload.stats.ok + workload.stats.fail + workload.stats.unknown)
        # Liveness: healed, the cluster must take a write again.
        took = await _liveness(cluster, workload, live_key, cfg.liveness_timeout)
        if took is None:
            report.exit_code = EXIT_LIVENESS
            report.problems.append(f"no write succeeded within {cfg.liveness_timeout:.0f}s after healing")
        else:
            await cluster.refresh_membership()
            problem = await _converge(cluster)
            if problem:
                report.problems.append(problem)
            logger.info("final reads of %d keys through members %s", len(workload.rotation.used) + 1,
                        sorted(cluster.members))
            await _final_reads(cluster, workload, workload.rotation.used + [live_key], report)
        workload.history.dump(tmp / "history.jsonl")
        logger.info("checking linearizability (history in %s)", tmp / "history.jsonl")
        _check(workload, report, cfg.max_configs)
        report.faults = nemesis.summary()
        report.fault_errors = [f"{e.kind} {e.detail}: {e.error}" for e in nemesis.events if e.error]
        report.recovery = _recovery(nemesis.leader_kills, workload.write_completions)
    finally:
        if workload is not None:
            s = workload.stats
            report.ok, report.fail, report.unknown, report.errors = s.ok, s.fail, s.unknown, s.errors
            report.ops = s.ok + s.fail + s.unknown
        report.crashes = cluster.crashes()
        await cluster.stop()
        report.elapsed = time.monotonic() - started
        if report.exit_code == EXIT_OK:
            if report.crashes:
                report.exit_code = EXIT_CRASH
            elif report.nonlinear:
                report.exit_code = EXIT_NONLINEAR
            elif report.divergent:
                report.exit_code = EXIT_DIVERGED
        if report.exit_code != EXIT_OK or report.problems:
            report.log_tails = cluster.tails()
        if report.exit_code == EXIT_OK and not cfg.keep and not cfg.base_dir:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            report.run_dir = str(tmp)
    return report
