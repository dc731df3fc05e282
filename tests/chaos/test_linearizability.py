"""The linearizability checker against a brute-force reference and known anomalies."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.chaos.linearizability import (
    History,
    Op,
    SearchBudgetExceeded,
    check_history,
    check_ops,
    explain,
    explain_by_prefix,
    step,
)

INF = math.inf


def brute_force(ops: list[Op], initial: int = 0) -> bool:
    """Try every subset of unknown ops and every order: the definition itself."""
    relevant = [o for o in ops if o.outcome != "fail" and not (o.kind == "read" and o.outcome != "ok")]
    must = [o for o in relevant if o.outcome == "ok"]
    maybe = [o for o in relevant if o.outcome == "unknown"]
    for r in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, r):
            for order in itertools.permutations(must + list(chosen)):
                if _legal(order, initial):
                    return True
    return False


def _legal(order: tuple[Op, ...], initial: int) -> bool:
    for a_idx, a in enumerate(order):
        for b in order[a_idx + 1 :]:
            if b.complete < a.invoke:  # b finished before a started but is placed after it
                return False
    state = initial
    for op in order:
        ok, state = step(state, op)
        if not ok:
            return False
    return True


def op(i: int, kind: str, value: int | None, invoke: float, complete: float, outcome: str = "ok") -> Op:
    if outcome == "unknown":
        complete = INF
    return Op(i, i, kind, value, invoke, complete, outcome)  # type: ignore[arg-type]


@st.composite
def histories(draw: st.DrawFn, max_ops: int = 6) -> list[Op]:
    n = draw(st.integers(0, max_ops))
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(["read", "set", "add"]))
        invoke = draw(st.integers(0, 12))
        length = draw(st.integers(0, 6))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "unknown"]))
        value = draw(st.integers(-1, 3))
        if kind == "read" and outcome != "ok":
            value = None
        ops.append(op(i, kind, value, float(invoke), float(invoke + length), outcome))
    return ops


@settings(max_examples=600, deadline=None)
@given(histories())
def test_wgl_and_jit_agree_with_brute_force(ops: list[Op]) -> None:
    expected = brute_force(ops)
    assert check_ops(ops) == expected
    assert (explain(ops) is None) == expected
    assert (explain_by_prefix(ops) is None) == expected


@st.composite
def linearizable_histories(draw: st.DrawFn) -> list[Op]:
    """Build a history from a real sequential execution with linearisation points
    inside each interval, so the answer is known to be yes, at sizes brute force
    cannot reach."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1, 40))
    points = sorted(rng.uniform(0, 100) for _ in range(n))
    state = 0
    ops = []
    for i, p in enumerate(points):
        kind = rng.choice(["read", "set", "add"])
        outcome = rng.choice(["ok"] * 6 + ["unknown", "fail"])
        if outcome == "fail":
            value = rng.randint(100, 200)
            ops.append(op(i, kind if kind != "read" else "set", value, p - rng.uniform(0, 5), p + rng.uniform(0, 5), "fail"))
            continue
        if kind == "read":
            value = state
        elif kind == "set":
            value = rng.randint(-5, 50)
            state = value
        else:
            value = rng.randint(1, 5)
            state += value
        if outcome == "unknown" and kind == "read":
            value = None
        ops.append(op(i, kind, value, p - rng.uniform(0, 5), p + rng.uniform(0, 5), outcome))
    return ops


@settings(max_examples=200, deadline=None)
@given(linearizable_histories())
def test_real_executions_are_linearizable(ops: list[Op]) -> None:
    assert check_ops(ops)
    assert explain(ops) is None


def test_stale_read_is_caught_with_its_window() -> None:
    ops = [
        op(0, "set", 1, 0, 1),
        op(1, "set", 2, 2, 3),
        op(2, "read", 1, 4, 5),  # the write of 2 completed before this read began
    ]
    assert not check_ops(ops)
    why = explain(ops)
    assert why is not None
    assert why.culprit.id == 2
    assert why.window_start == 3
    assert why.states_before == [(2, [])]
    assert [o.id for o in why.window] == [2]
    assert "#2 p2 read() -> 1" in why.render()
    cheap = explain_by_prefix(ops)
    assert cheap is not None and cheap.culprit.id == 2 and cheap.states_before is None
    assert "not enumerated" in cheap.render()


def test_lost_write_is_caught() -> None:
    # add(5) was acknowledged, yet a later read still sees the value before it.
    ops = [
        op(0, "set", 10, 0, 1),
        op(1, "add", 5, 2, 3),
        op(2, "read", 15, 4, 5),
        op(3, "read", 10, 6, 7),
    ]
    assert not check_ops(ops)
    why = explain(ops)
    assert why is not None and why.culprit.id == 3
    assert why.states_before == [(15, [])]


def test_read_of_never_written_value_is_caught() -> None:
    ops = [op(0, "set", 1, 0, 10), op(1, "read", 7, 1, 2)]
    assert not check_ops(ops)
    why = explain(ops)
    assert why is not None and why.culprit.id == 1
    # The concurrent set is in the window: neither order explains 7.
    assert {o.id for o in why.window} == {0, 1}


def test_failed_write_must_not_be_observed() -> None:
    ops = [op(0, "set", 9, 0, 1, "fail"), op(1, "read", 9, 2, 3)]
    assert not check_ops(ops)


def test_unknown_write_may_take_effect_late_or_never() -> None:
    late = [op(0, "set", 9, 0, 0, "unknown"), op(1, "read", 0, 1, 2), op(2, "read", 9, 3, 4)]
    assert check_ops(late)
    never = [op(0, "set", 9, 0, 0, "unknown"), op(1, "read", 0, 1, 2), op(2, "read", 0, 3, 4)]
    assert check_ops(never)
    # ...but once observed it cannot be un-applied.
    flicker = late + [op(3, "read", 0, 5, 6)]
    assert not check_ops(flicker)


def test_unknown_add_applied_at_most_once() -> None:
    ops = [op(0, "add", 3, 0, 0, "unknown"), op(1, "read", 6, 1, 2)]
    assert not check_ops(ops)
    assert check_ops(ops[:1] + [op(1, "read", 3, 1, 2)])


def test_concurrent_ops_may_take_effect_in_either_order() -> None:
    ops = [op(0, "set", 1, 0, 5), op(1, "set", 2, 0, 5), op(2, "read", 1, 6, 7)]
    assert check_ops(ops)
    ops2 = [op(0, "set", 1, 0, 5), op(1, "set", 2, 0, 5), op(2, "read", 2, 6, 7)]
    assert check_ops(ops2)


def test_history_recorder_and_per_key_results() -> None:
    h = History()
    a = h.invoke(1, "k1", "set", 5, 0.0)
    h.complete(a, 1.0, "ok")
    b = h.invoke(2, "k1", "read", None, 2.0)
    h.complete(b, 3.0, "ok", 4)  # stale: 5 was written before
    c = h.invoke(1, "k2", "add", 2, 0.0)  # never completes: unknown
    d = h.invoke(2, "k2", "read", None, 5.0)
    h.complete(d, 6.0, "ok", 2)
    results = {r.key: r for r in check_history(h)}
    assert results["k2"].linearizable
    assert not results["k1"].linearizable
    assert "k1" in results["k1"].render() and "<== culprit" in results["k1"].render()
    assert c in {o.id for o in h.all_ops()}


def test_budget_is_enforced() -> None:
    # Many unknown adds concurrent with a read whose value cannot be reached
    # force the search to enumerate subsets.
    ops = [op(i, "add", 1 << i, 0, 0, "unknown") for i in range(14)]
    ops.append(op(99, "read", -1, 1, 2))
    try:
        check_ops(ops, max_configs=1000)
    except SearchBudgetExceeded:
        return
    raise AssertionError("budget not enforced")


def test_history_dump_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = History()
    a = h.invoke(1, "k", "set", 5, 0.0)
    h.complete(a, 1.0, "ok")
    b = h.invoke(2, "k", "add", 2, 0.5)
    h.complete(b, 2.0, "unknown", note="timed out")
    h.invoke(3, "k", "read", None, 3.0)  # never completed
    h.dump(tmp_path / "h.jsonl")
    assert History.load(tmp_path / "h.jsonl") == h.ops_by_key()
    assert History.load(tmp_path / "h.jsonl")["k"][1].note == "timed out"


def test_offline_check_of_a_recorded_history(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from qcore.chaos.__main__ import main

    h = History()
    for t, (kind, arg, result) in enumerate([("set", 1, None), ("set", 2, None), ("read", None, 1)]):
        op_id = h.invoke(1, "7", kind, arg, float(2 * t))  # type: ignore[arg-type]
        h.complete(op_id, float(2 * t + 1), "ok", result)
    h.dump(tmp_path / "bad.jsonl")
    assert main(["--check", str(tmp_path / "bad.jsonl")]) == 1
    assert "<== culprit" in capsys.readouterr().out
    ok = History()
    ok.complete(ok.invoke(1, "7", "set", 3, 0.0), 1.0, "ok")
    ok.dump(tmp_path / "ok.jsonl")
    assert main(["--check", str(tmp_path / "ok.jsonl")]) == 0
