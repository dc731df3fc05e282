"""Latency histograms that merge across load-generator processes.

Recording every latency and sorting at the end would make the result of a
multi-process run expensive to ship back to the orchestrator; a log-bucketed
histogram (about 1% relative resolution, like HdrHistogram's idea) is cheap
to record into, tiny to serialise and merges by adding counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Buckets per factor e: 100 gives about 1% relative width.
_SCALE = 100.0


def _bucket(micros: float) -> int:
    return int(math.log(micros) * _SCALE) if micros >= 1.0 else 0


def _bucket_value(bucket: int) -> float:
    """Midpoint (geometric) of a bucket, in microseconds."""
    return math.exp((bucket + 0.5) / _SCALE)


@dataclass
class Histogram:
    """Counts of latencies (in microseconds) per logarithmic bucket."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_us: float = 0.0

    def record(self, micros: float) -> None:
        b = _bucket(micros)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.total += 1
        if micros > self.max_us:
            self.max_us = micros

    def merge(self, other: "Histogram") -> None:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, p: float) -> float:
        """Latency in milliseconds at percentile ``p`` (0-100); 0.0 when empty."""
        if self.total == 0:
            return 0.0
        rank = max(1, math.ceil(self.total * p / 100.0))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(_bucket_value(b), self.max_us) / 1000.0
        return self.max_us / 1000.0

    def cdf(self) -> list[tuple[float, float]]:
        """(latency ms, cumulative fraction) points, for plotting."""
        out: list[tuple[float, float]] = []
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            out.append((_bucket_value(b) / 1000.0, seen / self.total))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"counts": [[b, n] for b, n in sorted(self.counts.items())], "max_us": self.max_us}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Histogram":
        h = cls()
        for b, n in data["counts"]:
            h.counts[int(b)] = int(n)
            h.total += int(n)
        h.max_us = float(data["max_us"])
        return h


PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def summarise(hist: Histogram, ops: int, errors: int, seconds: float) -> dict[str, float]:
    """The figures printed in the table for one run."""
    out: dict[str, float] = {
        "ops": float(ops),
        "errors": float(errors),
        "seconds": seconds,
        "ops_per_s": ops / seconds if seconds > 0 else 0.0,
    }
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = hist.percentile(p)
    return out
