"""A quick (smoke) run, as the README runs it in a checkout, leaves the committed reference
results under bench/results alone: its output goes to bench/out, which git ignores."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from qcore.bench.cli import main as bench_main


def test_a_quick_run_writes_to_bench_out_not_over_the_committed_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committed = tmp_path / "bench" / "results" / "results.json"
    committed.parent.mkdir(parents=True)
    committed.write_text('{"the": "committed full run"}\n')
    monkeypatch.chdir(tmp_path)  # a checkout: the default --out is relative to it
    rc = bench_main(["--quick", "--no-ceiling", "--duration", "0.3", "--warmup", "0.1",
                     "--workdir", str(tmp_path / "work")])
    assert rc == 0
    assert committed.read_text() == '{"the": "committed full run"}\n'
    quick = orjson.loads((tmp_path / "bench" / "out" / "results.json").read_bytes())
    assert {(r["system"], r["nodes"]) for r in quick["results"]} == {("qcore", 3)}
