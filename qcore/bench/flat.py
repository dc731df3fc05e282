"""Flat folders: creating entities under one parent against spreading them.

Over the wire, on a cluster of its own: 1,000 parents and one more (the
flat folder) are created, then blocks of ``block`` creates alternate
between "all under the flat folder" and "round robin over the 1,000
parents" until each side has ``per_side``. Alternating blocks meet the
same machine load, so the ratio of the two rates is what the flat folder
costs; the rate of the flat folder's last 10,000 creates against its first
10,000 shows whether that cost grows as it fills (the spread side's own
last/first ratio is the control for drift in the machine's load).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from qcore.bench.cluster import create_entities

JSON = dict[str, Any]


def _round_robin(parents: list[JSON], start: int) -> Callable[[int], JSON]:
    return lambda k: parents[(start + k) % len(parents)]


def _rate(blocks: list[tuple[int, float]]) -> float:
    n = sum(b[0] for b in blocks)
    t = sum(b[1] for b in blocks)
    return n / t if t > 0 else 0.0


async def run_flat(endpoint: str, per_side: int = 100_000, parents: int = 1000, block: int = 2000) -> dict[str, Any]:
    spread = [{"typ": t, "id": i} for t, i in await create_entities(endpoint, parents)]
    flat = [{"typ": t, "id": i} for t, i in await create_entities(endpoint, 1)][0]
    one: list[tuple[int, float]] = []
    many: list[tuple[int, float]] = []
    done = 0
    while done < per_side:
        n = min(block, per_side - done)
        t0 = time.perf_counter()
        await create_entities(endpoint, n, parent_of=lambda k: flat)
        one.append((n, time.perf_counter() - t0))
        t0 = time.perf_counter()
        await create_entities(endpoint, n, parent_of=_round_robin(spread, done))
        many.append((n, time.perf_counter() - t0))
        done += n
    edge = max(1, min(10_000, per_side // 2) // block)  # blocks in "the first / last 10,000"
    out: dict[str, Any] = {
        "per_side": per_side, "parents": parents, "block": block,
        "one_parent_per_s": _rate(one), "spread_per_s": _rate(many),
        "one_first_per_s": _rate(one[:edge]), "one_last_per_s": _rate(one[-edge:]),
        "spread_first_per_s": _rate(many[:edge]), "spread_last_per_s": _rate(many[-edge:]),
        "edge_entities": edge * block,
        # every block's rate, in order: a slow block in "first" or "last" can be told from a trend
        "one_blocks_per_s": [round(n / t) for n, t in one], "spread_blocks_per_s": [round(n / t) for n, t in many],
    }
    out["one_vs_spread"] = out["one_parent_per_s"] / out["spread_per_s"] if out["spread_per_s"] else 0.0
    out["one_last_vs_first"] = out["one_last_per_s"] / out["one_first_per_s"] if out["one_first_per_s"] else 0.0
    out["spread_last_vs_first"] = (out["spread_last_per_s"] / out["spread_first_per_s"]
                                   if out["spread_first_per_s"] else 0.0)
    return out


def format_flat(r: dict[str, Any]) -> str:
    e = r["edge_entities"]
    return "\n".join([
        f"flat folder: {r['per_side']:,} creates under one parent vs spread over {r['parents']:,} parents "
        f"(alternating blocks of {r['block']:,})",
        f"  one parent  {r['one_parent_per_s']:>9,.0f} creates/s   first {e:,}: {r['one_first_per_s']:>8,.0f}/s   "
        f"last {e:,}: {r['one_last_per_s']:>8,.0f}/s",
        f"  spread      {r['spread_per_s']:>9,.0f} creates/s   first {e:,}: {r['spread_first_per_s']:>8,.0f}/s   "
        f"last {e:,}: {r['spread_last_per_s']:>8,.0f}/s",
        f"  one parent / spread = {r['one_vs_spread']:.2f}; one parent last / first = {r['one_last_vs_first']:.2f} "
        f"(spread: {r['spread_last_vs_first']:.2f})",
    ])
