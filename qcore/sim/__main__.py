"""`python -m qcore.sim --seeds N [--start S] [--nodes K] [--steps M] [-v]`

Runs seeds S..S+N-1 (S random if not given) and stops at the first failure
(unless --keep-going). The seed is printed before each run, so even a hang
names its seed. Exit code: 0 all clean, 3 safety, 4 liveness, 5 crash
(the first failure's code).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from qcore.sim.options import derive_options
from qcore.sim.runner import ExitCode, RunResult, replay_command, run_seed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qcore.sim", description=__doc__.split("\n\n")[1])
    p.add_argument("--seeds", type=int, default=1, help="how many seeds to run")
    p.add_argument("--start", type=int, default=None, help="first seed (default: random)")
    p.add_argument("--nodes", type=int, default=None, help="initial cluster size (default: from the seed, 1..5)")
    p.add_argument("--steps", type=int, default=None, help="simulator ticks of the safety phase")
    p.add_argument("--keep-going", action="store_true", help="run every seed even after a failure")
    p.add_argument("--trace", type=int, default=50, help="events of trace printed on failure")
    p.add_argument("-v", "--verbose", action="store_true", help="print options and every event")
    args = p.parse_args(argv)
    if args.nodes is not None and not 1 <= args.nodes <= 9:
        p.error("--nodes must be 1..9")
    start = args.start if args.start is not None else random.SystemRandom().randrange(1 << 32)

    first_failure: ExitCode | None = None
    counts = {code: 0 for code in ExitCode}
    began = time.monotonic()
    for seed in range(start, start + args.seeds):
        print(f"seed {seed} ...", end="", flush=True)
        if args.verbose:
            print(f"\noptions: {derive_options(seed, args.nodes, args.steps).describe()}", flush=True)
        result = run_seed(seed, args.nodes, args.steps, verbose=args.verbose, keep=args.trace)
        counts[result.code] += 1
        if result.ok:
            print(f" ok {_stats(result)}", flush=True)
            continue
        _report(result, args.nodes is not None, args.steps is not None)
        if first_failure is None:
            first_failure = result.code
        if not args.keep_going:
            break
    took = time.monotonic() - began
    ran = sum(counts.values())
    print(
        f"{ran} seeds in {took:.1f}s: {counts[ExitCode.OK]} ok, {counts[ExitCode.SAFETY]} safety, "
        f"{counts[ExitCode.LIVENESS]} liveness, {counts[ExitCode.CRASH]} crash"
    )
    return int(first_failure or ExitCode.OK)


def _stats(r: RunResult) -> str:
    return " ".join(f"{k}={v}" for k, v in r.stats.items())


def _report(r: RunResult, explicit_nodes: bool, explicit_steps: bool) -> None:
    print(f" FAILED: {r.code.name}", flush=True)
    print(f"seed {r.seed} failed in the {r.phase} phase at tick {r.now} (event {r.events}): {r.code.name}")
    print(r.message.rstrip())
    print(f"options: {r.opts.describe()}")
    print(f"last events:\n{r.trace}")
    print(f"replay: {replay_command(r.opts, explicit_nodes, explicit_steps)}")


if __name__ == "__main__":
    sys.exit(main())
