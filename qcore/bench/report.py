"""Turning results into the table, the qcore/peer ratios, JSON and charts.

The table is plain text and always printed; the charts need matplotlib
(``pip install 'qcore[bench]'``) and are skipped with a note without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import orjson

from qcore.bench.runner import RunResult

logger = logging.getLogger(__name__)

#: Peer runs whose semantics differ from qcore's for a workload (shown next to ratios).
CAVEATS = {
    ("pysyncobj", "read"): "local read (PySyncObj has no linearizable read)",
    ("pysyncobj", "mixed"): "reads are local",
    ("pysyncobj", "create"): "set of a new key",
    ("etcd", "create"): "put of a new key",
    ("etcd", "batch"): "txn of 10 puts",
}


def table(results: Iterable[RunResult]) -> str:
    """The results table: one row per measurement."""
    head = f"{'system':<10} {'nodes':>5} {'workload':<8} {'conc':>5} {'ops/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        prefix = f"{r.system:<10} {r.nodes:>5} {r.workload:<8} {r.concurrency:>5}"
        if r.failed:
            lines.append(f"{prefix} FAILED: {r.failed.splitlines()[0][:80] if r.failed else ''}")
            continue
        f = r.figures
        lines.append(
            f"{prefix} {f['ops_per_s']:>10.0f} {f['p50_ms']:>8.2f} {f['p90_ms']:>8.2f} {f['p99_ms']:>8.2f} "
            f"{f['p99.9_ms']:>9.2f} {int(f['errors']):>7}"
        )
    return "\n".join(lines)


def ratios(results: list[RunResult]) -> list[dict[str, Any]]:
    """qcore/peer for every (nodes, workload, concurrency) both measured."""
    by_key = {(r.system, r.nodes, r.workload, r.concurrency): r for r in results if not r.failed}
    out = []
    for (system, nodes, workload, conc), peer in sorted(by_key.items()):
        if system in ("qcore", "noop", "noop-http"):
            continue
        q = by_key.get(("qcore", nodes, workload, conc))
        if q is None or peer.figures["ops_per_s"] <= 0:
            continue
        out.append(
            {
                "peer": system,
                "nodes": nodes,
                "workload": workload,
                "concurrency": conc,
                "qcore_ops_per_s": q.figures["ops_per_s"],
                "peer_ops_per_s": peer.figures["ops_per_s"],
                "throughput_ratio": q.figures["ops_per_s"] / peer.figures["ops_per_s"],
                "p50_ratio": _safe_div(q.figures["p50_ms"], peer.figures["p50_ms"]),
                "p99_ratio": _safe_div(q.figures["p99_ms"], peer.figures["p99_ms"]),
                "note": CAVEATS.get((system, workload), ""),
            }
        )
    return out


def _safe_div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """Throughput ratio > 1 means qcore is faster; latency ratio < 1 means qcore is quicker."""
    if not rows:
        return "(no qcore/peer pairs measured)"
    head = f"{'qcore vs':<10} {'nodes':>5} {'workload':<8} {'conc':>5} {'qcore/s':>9} {'peer/s':>9} {'ops x':>7} {'p50 x':>7} {'p99 x':>7}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['peer']:<10} {r['nodes']:>5} {r['workload']:<8} {r['concurrency']:>5} {r['qcore_ops_per_s']:>9.0f} "
            f"{r['peer_ops_per_s']:>9.0f} {r['throughput_ratio']:>7.2f} {r['p50_ratio']:>7.2f} {r['p99_ratio']:>7.2f}  {r['note']}"
        )
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Compact JSON (histograms make indented files several times larger), one final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE))


_COLOURS = {"qcore": "tab:blue", "etcd": "tab:orange", "pysyncobj": "tab:green", "noop": "0.45", "noop-http": "0.75"}
_STYLES = {1: ("-", "o"), 3: ("--", "s"), 5: (":", "^")}


def _style(system: str, nodes: int) -> dict[str, Any]:
    """Colour by system, line and marker by cluster size; the no-op ceiling in grey."""
    line, marker = _STYLES.get(nodes, ("-.", "x"))
    if system.startswith("noop"):
        line, marker = "-.", "."
    return {"color": _COLOURS.get(system, "tab:red"), "linestyle": line, "marker": marker}


def charts(results: list[RunResult], out_dir: Path, cdf_concurrency: int = 64) -> list[Path]:
    """Throughput vs concurrency and latency CDFs per workload; [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no charts (pip install 'qcore[bench]')")
        return []
    ok = [r for r in results if not r.failed and r.figures.get("ops", 0) > 0]
    if not ok:
        return []
    workloads = list(dict.fromkeys(r.workload for r in ok))
    series = list(dict.fromkeys((r.system, r.nodes) for r in ok))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    cols = min(3, len(workloads))
    rows = (len(workloads) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        for system, nodes in series:
            pts = sorted((r.concurrency, r.figures["ops_per_s"]) for r in ok if r.workload == wl and (r.system, r.nodes) == (system, nodes))
            if pts:
                label = f"{system} (ceiling)" if system.startswith("noop") else f"{system} x{nodes}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **_style(system, nodes))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        concs = sorted({r.concurrency for r in ok if r.workload == wl})
        ax.set_xticks(concs, [str(c) for c in concs])
        ax.set_title(f"{wl}: throughput")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("ops/s (log)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    fig.tight_layout()
    path = out_dir / "throughput.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)

    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        for r in ok:
            if r.workload == wl and r.concurrency == cdf_concurrency:
                cdf = r.hist.cdf()
                style = _style(r.system, r.nodes)
                style.pop("marker")
                label = f"{r.system} (ceiling)" if r.system.startswith("noop") else f"{r.system} x{r.nodes}"
                ax.plot([p[0] for p in cdf], [p[1] for p in cdf], label=label, **style)
        ax.set_xscale("log")
        ax.set_title(f"{wl}: latency CDF at {cdf_concurrency} clients")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    fig.tight_layout()
    path = out_dir / "latency_cdf.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


def scale_chart(rows: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """Throughput and RSS against entity count (the scale bench)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ok = [r for r in rows if r.get("ops_per_s")]
    if not ok:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = [r["entities"] for r in ok]
    a1.plot(xs, [r["ops_per_s"] for r in ok], marker="o")
    a1.set_xscale("log")
    a1.set_title(f"{ok[0]['workload']} throughput vs entities")
    a1.set_xlabel("entities")
    a1.set_ylabel("ops/s")
    a2.plot(xs, [max(r["rss_bytes"]) / 2**20 for r in ok], marker="o")
    a2.set_xscale("log")
    a2.set_title("largest node RSS vs entities")
    a2.set_xlabel("entities")
    a2.set_ylabel("MiB")
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.set_ylim(bottom=0)  # from zero, so noise does not look like a trend
    fig.tight_layout()
    path = out_dir / "scale.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cell(results: list[RunResult], system: str, nodes: int, workload: str, conc: int) -> RunResult | None:
    for r in results:
        if (r.system, r.nodes, r.workload, r.concurrency) == (system, nodes, workload, conc) and not r.failed:
            return r
    return None


#: Issue 8's targets for one run: (label, qcore cell, peer cell, figure, wanted ratio, "min" or "max").
TARGETS = (
    ("3 nodes, 64 clients, durable writes >= 1.5x etcd", (3, "write", 64), "etcd", "ops_per_s", 1.5, "min"),
    ("3 nodes, 64 clients, writes >= 1.0x PySyncObj's non-durable peak", (3, "write", 64), "pysyncobj*", "ops_per_s", 1.0, "min"),
    ("3 nodes, 64 clients, linearizable reads >= 1.5x etcd", (3, "read", 64), "etcd", "ops_per_s", 1.5, "min"),
    ("3 nodes, 1 client, write p50 <= etcd's", (3, "write", 1), "etcd", "p50_ms", 1.0, "max"),
    ("1 node, 64 clients, durable writes >= 1.5x etcd", (1, "write", 64), "etcd", "ops_per_s", 1.5, "min"),
    ("3 nodes, 64 clients, write p99 <= etcd's", (3, "write", 64), "etcd", "p99_ms", 1.0, "max"),
)


def targets(results: list[RunResult]) -> str:
    """The issue's targets that this run measured, each with qcore/peer and met or not."""
    lines = []
    for label, (nodes, wl, conc), peer, figure, wanted, kind in TARGETS:
        q = _cell(results, "qcore", nodes, wl, conc)
        if peer.endswith("*"):  # the peer's peak over every concurrency measured
            peer = peer[:-1]
            cells = [r for r in results if (r.system, r.nodes, r.workload) == (peer, nodes, wl) and not r.failed]
            p = max(cells, key=lambda r: r.figures[figure], default=None)
        else:
            p = _cell(results, peer, nodes, wl, conc)
        if q is None or p is None or p.figures[figure] <= 0:
            continue
        ratio = q.figures[figure] / p.figures[figure]
        met = ratio >= wanted if kind == "min" else ratio <= wanted
        lines.append(
            f"  {'MET ' if met else 'MISS'} {label}: qcore {q.figures[figure]:.2f} / {peer} {p.figures[figure]:.2f}"
            f" ({p.concurrency} clients) = {ratio:.2f}"
        )
    return "\n".join(lines) if lines else "  (no target cells measured)"
