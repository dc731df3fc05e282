"""Linearizability checking of per-key register histories.

A chaos run records, for every client operation, when it was invoked, when
it completed and how: ``ok`` (the node answered and the answer is the
result), ``fail`` (the operation certainly had no effect) or ``unknown`` (a
timeout or a dropped connection: it may have taken effect at any moment after
its invocation, or never). This module decides whether such a history could
have come from a single register that executes each operation atomically at
some instant between its invocation and its completion (Herlihy & Wing).

Two algorithms are used, on purpose:

* :func:`check_ops` — Wing & Gong's search with Lowe's memoisation of
  (linearised set, state), the algorithm of Knossos' ``wgl`` checker and of
  porcupine. Depth-first, so a linearizable history is usually confirmed
  quickly. It gives the verdict.
* :func:`explain` — a breadth-first "just in time" linearisation (Knossos'
  ``linear`` checker): it walks the events in time order keeping every
  reachable configuration (state, pending ops already linearised). When a
  completion leaves no configuration, that completion is the first point at
  which the history cannot be linearised, and the configurations just before
  the culprit's invocation say what the register could have held. That gives
  the smallest offending *time window* that can be explained soundly (see
  ``docs/chaos.md``).

Unknown outcomes are modelled as a completion at +infinity: the operation may
be linearised anywhere after its invocation, and "never" is the same as
"after everything else" since nothing observes the state at the end. Failed
operations and reads with an unknown outcome constrain nothing and are
dropped before the search.

The model is a register holding an int: ``read`` returns the value, ``set``
replaces it, ``add`` adds a delta (the node echoes a write request, so a
write's result carries no information and is not checked).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

Kind = Literal["read", "set", "add"]
Outcome = Literal["ok", "fail", "unknown"]

__all__ = [
    "Op",
    "CheckResult",
    "Explanation",
    "SearchBudgetExceeded",
    "History",
    "check_ops",
    "check_history",
    "explain",
    "explain_by_prefix",
    "explain_robust",
    "step",
]


@dataclass(frozen=True)
class Op:
    """One completed (or abandoned) operation on one key.

    ``value`` is the value written by ``set``, the delta of ``add``, or the
    value returned by an ``ok`` ``read`` (None for a read that did not
    complete). ``complete`` is ``math.inf`` for an unknown outcome.
    """

    id: int
    process: int | str
    kind: Kind
    value: int | None
    invoke: float
    complete: float
    outcome: Outcome
    note: str | None = field(default=None, compare=False)  # e.g. the error text of a fail/unknown

    def describe(self) -> str:
        """A one-line human form, e.g. ``#12 p3 set(7) [1.234, 1.240] ok``."""
        if self.kind == "read":
            body = f"read() -> {self.value}" if self.outcome == "ok" else "read()"
        else:
            body = f"{self.kind}({self.value})"
        end = "inf" if math.isinf(self.complete) else f"{self.complete:.6f}"
        note = f" ({self.note})" if self.note else ""
        return f"#{self.id} p{self.process} {body} [{self.invoke:.6f}, {end}] {self.outcome}{note}"

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "process": self.process, "kind": self.kind, "value": self.value,
                "invoke": self.invoke, "complete": None if math.isinf(self.complete) else self.complete,
                "outcome": self.outcome, "note": self.note}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Op:
        complete = math.inf if d["complete"] is None else float(d["complete"])
        return Op(int(d["id"]), d["process"], d["kind"], d["value"], float(d["invoke"]), complete,
                  d["outcome"], d.get("note"))


def step(state: int, op: Op) -> tuple[bool, int]:
    """The register model: is ``op`` legal in ``state``, and the state after it."""
    if op.kind == "read":
        return state == op.value, state
    if op.kind == "set":
        assert op.value is not None
        return True, op.value
    assert op.value is not None
    return True, state + op.value


def _relevant(ops: Iterable[Op]) -> list[Op]:
    """Drop what constrains nothing: failed ops and reads without a result."""
    out: list[Op] = []
    for op in ops:
        if op.outcome == "fail":
            continue
        if op.kind == "read" and op.outcome != "ok":
            continue
        if op.outcome == "unknown" and not math.isinf(op.complete):
            op = Op(op.id, op.process, op.kind, op.value, op.invoke, math.inf, "unknown")
        out.append(op)
    return out


class SearchBudgetExceeded(Exception):
    """The search visited more configurations than allowed; no verdict."""


@dataclass
class Explanation:
    """Why a history is not linearizable, as the smallest sound time window.

    ``culprit`` is the operation whose completion first leaves no possible
    linearisation. ``states_before`` are the values the register could hold
    at ``window_start`` (the last completion before the culprit's
    invocation), each with the still-open operations that would already have
    taken effect. ``window`` lists every operation that was open at
    ``window_start`` or overlaps the culprit: no order of these, from any of
    those states, explains the culprit's result.
    """

    culprit: Op
    window_start: float
    states_before: list[tuple[int, list[int]]] | None  # None: too costly to enumerate
    window: list[Op]

    def render(self) -> str:
        lines = [
            f"not linearizable: {self.culprit.describe()} cannot be linearized",
            f"  at t={self.window_start:.6f} (last completion before it was invoked) "
            "the register could hold:",
        ]
        if self.states_before is None:
            lines.append("    (not enumerated: too many configurations)")
        else:
            for state, applied in self.states_before[:20]:
                extra = f" (if open writes {applied} took effect already)" if applied else ""
                lines.append(f"    {state}{extra}")
            if len(self.states_before) > 20:
                lines.append(f"    ... {len(self.states_before) - 20} more")
        lines.append("  operations in the window (open at that time or concurrent with it):")
        for op in self.window:
            mark = "  <== culprit" if op.id == self.culprit.id else ""
            lines.append(f"    {op.describe()}{mark}")
        return "\n".join(lines)


@dataclass
class CheckResult:
    """The verdict for one key, with an explanation when it is negative."""

    key: str
    linearizable: bool
    ops: int
    explanation: Explanation | None = None
    configurations: int = 0

    def render(self) -> str:
        if self.linearizable:
            return f"key {self.key}: linearizable ({self.ops} ops)"
        assert self.explanation is not None
        return f"key {self.key}: " + self.explanation.render()


# --- Wing & Gong with memoisation -------------------------------------------------


def check_ops(ops: Sequence[Op], initial: int = 0, max_configs: int = 2_000_000) -> bool:
    """Is this one-key history linearizable? (WGL search with memoisation).

    The events are kept in a doubly linked list ordered by time (invocations
    before completions at equal times, so touching intervals count as
    concurrent). The search repeatedly tries to linearise an op whose
    invocation comes before the first pending completion; reaching a
    completion means the op it completes was not linearised in time, so the
    search backtracks. A (linearised set, state) pair already explored is
    never explored again: from it the outcome is the same.
    """
    rel = _relevant(ops)
    n = len(rel)
    if n == 0:
        return True
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(rel):
        events.append((op.invoke, 0, i))
        events.append((op.complete, 1, i))
    events.sort()
    size = len(events)
    head = size  # sentinel node index
    nxt = list(range(1, size + 1)) + [0]
    prv = [head] + list(range(0, size - 1)) + [-1]
    nxt[size - 1] = -1
    nxt[head] = 0
    is_call = [ev[1] == 0 for ev in events]
    op_of = [ev[2] for ev in events]
    ret_node = [0] * n
    for node, ev in enumerate(events):
        if ev[1] == 1:
            ret_node[ev[2]] = node

    def lift(node: int) -> None:
        nxt[prv[node]] = nxt[node]
        if nxt[node] != -1:
            prv[nxt[node]] = prv[node]
        r = ret_node[op_of[node]]
        nxt[prv[r]] = nxt[r]
        if nxt[r] != -1:
            prv[nxt[r]] = prv[r]

    def unlift(node: int) -> None:
        r = ret_node[op_of[node]]
        nxt[prv[r]] = r
        if nxt[r] != -1:
            prv[nxt[r]] = r
        nxt[prv[node]] = node
        if nxt[node] != -1:
            prv[nxt[node]] = node

    state = initial
    linearized = 0
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, int]] = []
    node = nxt[head]
    while nxt[head] != -1:
        if node == -1:  # pragma: no cover - a completion always precedes the end
            raise AssertionError("ran off the event list")
        if is_call[node]:
            i = op_of[node]
            ok, new_state = step(state, rel[i])
            if ok:
                new_lin = linearized | (1 << i)
                key = (new_lin, new_state)
                if key not in seen:
                    seen.add(key)
                    if len(seen) > max_configs:
                        raise SearchBudgetExceeded(f"{len(seen)} configurations")
                    stack.append((node, state))
                    state = new_state
                    linearized = new_lin
                    lift(node)
                    node = nxt[head]
                    continue
            node = nxt[node]
        else:
            if not stack:
                return False
            node, state = stack.pop()
            linearized &= ~(1 << op_of[node])
            unlift(node)
            node = nxt[node]
    return True


# --- just-in-time linearisation, for explanations ----------------------------------


def explain(
    ops: Sequence[Op], initial: int = 0, max_configs: int = 2_000_000
) -> Explanation | None:
    """Walk the history in time order; None if linearizable, else the window.

    A configuration is (state, frozenset of open ops already linearised).
    At each completion of op X, every configuration is extended by
    linearising open ops (any order) until X is among them; the ones that
    cannot reach X die. No configuration left means no linearisation of the
    history so far exists, and X is the culprit.
    """
    rel = _relevant(ops)
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(rel):
        events.append((op.invoke, 0, i))
        if not math.isinf(op.complete):
            events.append((op.complete, 1, i))
    events.sort()
    configs: set[tuple[int, frozenset[int]]] = {(initial, frozenset())}
    open_ops: set[int] = set()
    configs_at_invoke: dict[int, tuple[float, set[tuple[int, frozenset[int]]], frozenset[int]]] = {}
    last_completion = -math.inf
    for t, kind, i in events:
        if kind == 0:
            open_ops.add(i)
            configs_at_invoke[i] = (last_completion, configs, frozenset(open_ops - {i}))
            continue
        # Configurations that already linearised X survive as they are; the
        # others must linearise open ops (any order) until X is among them.
        survivors = {c for c in configs if i in c[1]}
        frontier = [c for c in configs if i not in c[1]]
        seen: set[tuple[int, frozenset[int]]] = set(frontier)
        while frontier:
            state, lin = frontier.pop()
            for j in open_ops:
                if j in lin:
                    continue
                ok, new_state = step(state, rel[j])
                if not ok:
                    continue
                cfg = (new_state, lin | {j})
                if cfg in seen:
                    continue
                seen.add(cfg)
                if len(seen) > max_configs:
                    raise SearchBudgetExceeded(f"{len(seen)} configurations")
                if j == i:
                    survivors.add(cfg)
                else:
                    frontier.append(cfg)
        open_ops.discard(i)
        configs = _prune({(s, lin - {i}) for s, lin in survivors}, rel)
        if not configs:
            return _window(rel, i, configs_at_invoke[i])
        last_completion = t
    return None


def _prune(configs: set[tuple[int, frozenset[int]]], rel: list[Op]) -> set[tuple[int, frozenset[int]]]:
    """Drop configurations dominated by another one.

    (s, F + A1) dominates (s, F + A2) when both have linearised the same
    operations with a finite completion (F) and A1 is a subset of A2 among the
    unknown ones: an unknown op not yet linearised may still be linearised
    later or never, so whatever can follow the second can follow the first.
    Without this the configurations double with every unknown write.
    """
    groups: dict[tuple[int, frozenset[int]], list[frozenset[int]]] = {}
    for state, lin in configs:
        unknown = frozenset(j for j in lin if math.isinf(rel[j].complete))
        groups.setdefault((state, lin - unknown), []).append(unknown)
    out: set[tuple[int, frozenset[int]]] = set()
    for (state, finite), unknowns in groups.items():
        kept: list[frozenset[int]] = []
        for a in sorted(unknowns, key=len):
            if not any(k <= a for k in kept):
                kept.append(a)
                out.add((state, finite | a))
    return out


def explain_by_prefix(ops: Sequence[Op], initial: int = 0, max_configs: int = 2_000_000) -> Explanation | None:
    """The culprit and its window without the states: for when :func:`explain`
    exceeds its budget.

    Binary search, with the WGL checker, for the shortest failing prefix of the
    history (prefixes of a linearizable history are linearizable, so failure is
    monotone); an op still running at the cut becomes unknown.
    """
    rel = _relevant(ops)
    returns = sorted((op.complete, op.invoke, i) for i, op in enumerate(rel) if not math.isinf(op.complete))

    def prefix(k: int) -> list[Op]:
        cut_time, _, cut_op = returns[k]
        done = {i for _, _, i in returns[: k + 1]}
        out = []
        for i, op in enumerate(rel):
            if i in done:
                out.append(op)
            elif op.invoke <= cut_time:
                out.append(Op(op.id, op.process, op.kind, op.value if op.kind != "read" else None,
                              op.invoke, math.inf, "unknown"))
        return out

    if not returns or check_ops(prefix(len(returns) - 1), initial, max_configs):
        return None
    lo, hi = 0, len(returns) - 1  # prefix(hi) fails
    while lo < hi:
        mid = (lo + hi) // 2
        if check_ops(prefix(mid), initial, max_configs):
            lo = mid + 1
        else:
            hi = mid
    culprit = returns[hi][2]
    x = rel[culprit]
    start = max((op.complete for op in rel if op.complete < x.invoke), default=-math.inf)
    window = [op for op in rel if op.invoke <= x.complete and op.complete > start]
    window.sort(key=lambda o: (o.invoke, o.id))
    return Explanation(culprit=x, window_start=start, states_before=None, window=window)


def _window(
    rel: list[Op],
    culprit: int,
    before: tuple[float, set[tuple[int, frozenset[int]]], frozenset[int]],
) -> Explanation:
    start, configs, open_then = before
    x = rel[culprit]
    # Reads change nothing, so only the writes among the already-linearised
    # open ops tell how a state was reached.
    states = sorted({(s, tuple(sorted(rel[j].id for j in lin if rel[j].kind != "read"))) for s, lin in configs})
    window = [
        op
        for k, op in enumerate(rel)
        if k in open_then or k == culprit or (op.invoke <= x.complete and op.complete >= x.invoke)
    ]
    window.sort(key=lambda o: (o.invoke, o.id))
    return Explanation(culprit=x, window_start=start, states_before=[(s, list(a)) for s, a in states], window=window)


def explain_robust(ops: Sequence[Op], initial: int = 0, max_configs: int = 2_000_000) -> Explanation | None:
    """:func:`explain`, falling back to :func:`explain_by_prefix` over budget."""
    try:
        return explain(ops, initial, max_configs)
    except SearchBudgetExceeded:
        return explain_by_prefix(ops, initial, max_configs)


# --- history recording ---------------------------------------------------------------


@dataclass
class _Pending:
    process: int | str
    key: str
    kind: Kind
    arg: int | None
    invoke: float


@dataclass
class History:
    """Records invoke/complete events of many processes on many keys.

    Times are whatever the caller passes (``time.monotonic()`` in chaos
    runs); only their order matters. Operations never completed are
    unknown when :meth:`ops_by_key` is called.
    """

    _next_id: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _done: dict[str, list[Op]] = field(default_factory=dict)

    def invoke(self, process: int | str, key: str, kind: Kind, arg: int | None, t: float) -> int:
        """Start an operation; returns its id for :meth:`complete`."""
        op_id = self._next_id
        self._next_id += 1
        self._pending[op_id] = _Pending(process, key, kind, arg, t)
        return op_id

    def complete(self, op_id: int, t: float, outcome: Outcome, result: int | None = None,
                 note: str | None = None) -> Op:
        """Finish an operation. For reads ``result`` is the value read."""
        p = self._pending.pop(op_id)
        value = result if p.kind == "read" else p.arg
        end = math.inf if outcome == "unknown" else t
        op = Op(op_id, p.process, p.kind, value, p.invoke, end, outcome, note)
        self._done.setdefault(p.key, []).append(op)
        return op

    def ops_by_key(self) -> dict[str, list[Op]]:
        """Every op per key; ops still pending are reported as unknown."""
        out = {k: list(v) for k, v in self._done.items()}
        for op_id, p in self._pending.items():
            value = None if p.kind == "read" else p.arg
            out.setdefault(p.key, []).append(
                Op(op_id, p.process, p.kind, value, p.invoke, math.inf, "unknown")
            )
        return out

    def all_ops(self) -> list[Op]:
        return [op for ops in self.ops_by_key().values() for op in ops]

    def dump(self, path: str | os.PathLike[str]) -> None:
        """One JSON object per line: the key and the op (for offline checking)."""
        with open(path, "w") as f:
            for key, ops in sorted(self.ops_by_key().items()):
                for op in ops:
                    f.write(json.dumps({"key": key, **op.to_json()}) + "\n")

    @staticmethod
    def load(path: str | os.PathLike[str]) -> dict[str, list[Op]]:
        """Read a :meth:`dump` back, per key."""
        out: dict[str, list[Op]] = {}
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                out.setdefault(d.pop("key"), []).append(Op.from_json(d))
        return out


def check_history(
    history: History, initial: int = 0, max_configs: int = 2_000_000
) -> list[CheckResult]:
    """Check every key; explain the ones that fail."""
    results: list[CheckResult] = []
    for key, ops in sorted(history.ops_by_key().items()):
        ok = check_ops(ops, initial, max_configs)
        res = CheckResult(key=key, linearizable=ok, ops=len(ops))
        if not ok:
            res.explanation = explain_robust(ops, initial, max_configs)
            if res.explanation is None:  # pragma: no cover - the two algorithms disagree
                raise AssertionError(f"checkers disagree on key {key}")
        results.append(res)
    return results
