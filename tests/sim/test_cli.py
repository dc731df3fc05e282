"""`python -m qcore.sim`: output, replay command and one exit code per failure kind."""

from __future__ import annotations

import pytest

from qcore.node import replica
from qcore.raft import Ready
from qcore.raft import core as raft_core
from qcore.raft import log as raft_log
from qcore.sim.__main__ import main
from qcore.sim.runner import ExitCode


def test_clean_seeds_exit_zero_and_print_each_seed_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--start", "10", "--nodes", "3"]) == 0
    out = capsys.readouterr().out
    for seed in (10, 11, 12):
        assert f"seed {seed} ... ok" in out
    assert "3 seeds in" in out and "3 ok" in out


def test_safety_failure_exit_code_trace_and_replay(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raft_log.RaftLog, "is_up_to_date", lambda self, index, term: True)
    code = main(["--seeds", "100", "--start", "0", "--nodes", "3"])
    out = capsys.readouterr().out
    assert code == ExitCode.SAFETY == 3
    assert "FAILED: SAFETY" in out and "last events:" in out
    seed = int(out.split("FAILED")[0].rsplit("seed ", 1)[1].split()[0])
    assert f"replay: python -m qcore.sim --seeds 1 --start {seed} --nodes 3 -v" in out
    # The trace shows the last events, numbered, with their tick.
    trace = out.split("last events:\n")[1].split("\nreplay:")[0].splitlines()
    assert 10 <= len(trace) <= 50 and all(line.startswith("#") and " t=" in line for line in trace)


def test_liveness_failure_exit_code(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A core that never starts an election is safe, but never makes progress."""
    monkeypatch.setattr(raft_core.Raft, "_hup", lambda self, transfer: None)
    assert main(["--seeds", "1", "--start", "5", "--nodes", "3"]) == ExitCode.LIVENESS == 4
    assert "liveness phase" in capsys.readouterr().out


def test_crash_exit_code_names_the_core(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_tick(self: raft_core.Raft) -> None:
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(raft_core.Raft, "tick", broken_tick)
    assert main(["--seeds", "1", "--start", "5", "--nodes", "3"]) == ExitCode.CRASH == 5
    out = capsys.readouterr().out
    assert "exception in the Raft core" in out and "ZeroDivisionError: planted" in out


def test_crash_exit_code_names_the_runtime_core(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_apply(self: replica.Replica, rd: Ready) -> None:
        raise ZeroDivisionError("planted in the replica")

    monkeypatch.setattr(replica.Replica, "_apply", broken_apply)
    assert main(["--seeds", "1", "--start", "5", "--nodes", "3"]) == ExitCode.CRASH == 5
    out = capsys.readouterr().out
    assert "exception in the node's runtime core" in out and "planted in the replica" in out


def test_keep_going_reports_every_seed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raft_core.Raft, "_hup", lambda self, transfer: None)
    assert main(["--seeds", "2", "--start", "0", "--nodes", "2", "--keep-going", "--steps", "200"]) == 4
    assert "2 seeds in" in capsys.readouterr().out
