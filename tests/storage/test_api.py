"""Both engines through the storage contract, checked against a deliberately
simple reference model (a dict of index -> entry), FileStorage also across
reopenings and segment rotations."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.raft.types import Entry, HardState, Snapshot
from qcore.storage import FileStorage, MemoryStorage, StorageError

from .helpers import entries, snapshot, view


class Engine:
    """Opens either engine; for files, `reopen()` is a clean restart."""

    def __init__(self, kind: str, path: str, segment_bytes: int = 1 << 20) -> None:
        self.kind, self.path, self.segment_bytes = kind, path, segment_bytes
        self.st = self._open()

    def _open(self) -> FileStorage | MemoryStorage:
        if self.kind == "file":
            return FileStorage(self.path, segment_bytes=self.segment_bytes)
        return MemoryStorage()

    def reopen(self) -> None:
        if self.kind == "file":
            self.st.close()
            self.st = self._open()


@pytest.fixture(params=["memory", "file"])
def eng(request: pytest.FixtureRequest, tmp_path) -> Engine:
    e = Engine(request.param, str(tmp_path / "data"))
    yield e
    e.st.close()


def test_empty_store_recovers_empty(eng: Engine) -> None:
    rec = eng.st.recover()
    assert rec.hard_state == HardState() and rec.snapshot is None and rec.entries == []
    assert (eng.st.first_index(), eng.st.last_index()) == (1, 0)


def test_append_truncate_and_hard_state(eng: Engine) -> None:
    eng.st.save(HardState(1, 1, 0), entries(1, 1, 10), None, True)
    eng.st.save(HardState(2, 3, 4), entries(2, 6, 2), None, True)  # replaces 6..10
    eng.reopen()
    rec = eng.st.recover()
    assert rec.hard_state == HardState(2, 3, 4)
    assert [(e.term, e.index) for e in rec.entries] == [(1, i) for i in range(1, 6)] + [(2, 6), (2, 7)]
    assert eng.st.term(5) == 1 and eng.st.term(7) == 2 and eng.st.term(8) is None
    assert [e.index for e in eng.st.entries(3, 6)] == [3, 4, 5]


def test_received_snapshot_keeps_log_only_if_it_matches(eng: Engine) -> None:
    eng.st.save(HardState(1, 1, 2), entries(1, 1, 10), None, True)
    eng.st.save(HardState(1, 1, 5), [], snapshot(5, 1), True)  # (5, 1) is in the log: keep 6..10
    eng.reopen()
    rec = eng.st.recover()
    assert rec.snapshot.meta.index == 5 and [e.index for e in rec.entries] == list(range(6, 11))
    eng.st.save(HardState(3, 2, 8), entries(3, 9, 1), snapshot(8, 3), True)  # (8, 3) is not: drop all
    eng.reopen()
    rec = eng.st.recover()
    assert rec.snapshot.meta.index == 8 and rec.snapshot.data == b"state@8"
    assert [(e.term, e.index) for e in rec.entries] == [(3, 9)]
    assert rec.hard_state == HardState(3, 2, 8)
    assert rec.snapshot.meta.conf_state.addresses[2] == "127.0.0.1:9002"


def test_local_snapshot_compacts_and_keeps_tail(eng: Engine) -> None:
    eng.st.save(HardState(1, 1, 7), entries(1, 1, 10), None, True)
    eng.st.save_snapshot(snapshot(7, 1))
    eng.st.save_snapshot(snapshot(3, 1))  # older than what we have: ignored
    eng.reopen()
    rec = eng.st.recover()
    assert rec.snapshot.meta.index == 7 and [e.index for e in rec.entries] == [8, 9, 10]
    assert eng.st.first_index() == 8 and eng.st.term(7) == 1 and eng.st.term(6) is None
    eng.st.save(None, entries(1, 11, 2), None, True)
    eng.reopen()
    assert [e.index for e in eng.st.recover().entries] == [8, 9, 10, 11, 12]


def test_commit_never_below_snapshot(eng: Engine) -> None:
    eng.st.save(HardState(2, 1, 0), [], snapshot(20, 2), True)
    eng.reopen()
    assert eng.st.recover().hard_state == HardState(2, 1, 20)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.save(None, entries(1, 12, 1), None, True),  # gap
        lambda s: s.save(None, entries(1, 3, 1), None, True),  # below the snapshot
        lambda s: s.save(None, [Entry(1, 11), Entry(1, 13)], None, True),  # not contiguous
        lambda s: s.save(None, [], snapshot(4, 1), True),  # older snapshot
        lambda s: s.save(None, entries(1, 5, 1), snapshot(8, 1), True),  # entries inside snapshot
        lambda s: s.save_snapshot(snapshot(9, 7)),  # term does not match the log
    ],
)
def test_caller_errors_change_nothing(eng: Engine, call) -> None:
    eng.st.save(HardState(1, 1, 5), entries(1, 1, 10), None, True)
    eng.st.save_snapshot(snapshot(5, 1))
    before = view(eng.st.recover())
    with pytest.raises(ValueError):
        call(eng.st)
    assert view(eng.st.recover()) == before
    eng.reopen()
    assert view(eng.st.recover()) == before


def test_closed_storage_refuses(eng: Engine) -> None:
    eng.st.close()
    eng.st.close()  # idempotent
    with pytest.raises(StorageError):
        eng.st.save(None, entries(1, 1, 1), None, True)


# ---------------------------------------------------------------- model-based


class Model:
    """The reference: a dict of entries, the rules spelt out the slow way."""

    def __init__(self) -> None:
        self.log: dict[int, tuple[int, bytes]] = {}
        self.base = (0, 0)
        self.snap: Snapshot | None = None
        self.hs = HardState()

    def append(self, ents: list[Entry]) -> None:
        for i in [i for i in self.log if i >= ents[0].index]:
            del self.log[i]
        for e in ents:
            self.log[e.index] = (e.term, e.data)

    def install(self, snap: Snapshot, local: bool) -> None:
        i, t = snap.meta.index, snap.meta.term
        keep = local or self.log.get(i, (None,))[0] == t
        self.log = {k: v for k, v in self.log.items() if k > i and keep}
        self.base, self.snap = (i, t), snap

    def view(self) -> tuple:
        hs = self.hs
        s = self.snap
        return (
            (hs.term, hs.vote, max(hs.commit, self.base[0])),
            None if s is None else (s.meta.index, s.meta.term, s.meta.conf_state.voters, s.data),
            tuple((t, i, 0, d) for i, (t, d) in sorted(self.log.items())),
        )

    def last(self) -> int:
        return max(self.log, default=self.base[0])


ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "append", "truncate", "hs", "recv_snap", "local_snap", "reopen"]),
        st.integers(1, 20),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_matches_reference_model(tmp_path_factory, ops) -> None:
    path = str(tmp_path_factory.mktemp("model"))
    engines = [Engine("memory", path), Engine("file", path, segment_bytes=400)]
    model = Model()
    term = 1
    try:
        for op, n, flag in ops:
            calls = []
            if op in ("append", "truncate"):
                first = model.last() + 1
                if op == "truncate" and model.last() > model.base[0]:
                    first = max(model.base[0] + 1, model.last() - n + 1)
                    term += 1
                ents = [Entry(term, i, data=bytes([i % 256]) * (n % 7)) for i in range(first, first + n)]
                model.append(ents)
                calls.append(lambda s, e=ents, f=flag: s.save(None, e, None, f))
            elif op == "hs":
                term += 1
                model.hs = HardState(term, n, min(n, model.last()))
                calls.append(lambda s, h=model.hs, f=flag: s.save(h, [], None, f))
            elif op == "recv_snap":
                idx = model.base[0] + n
                t = model.log.get(idx, (term,))[0] if flag else term + 1
                term = max(term, t)
                snap = snapshot(idx, t, voters=(1, n))
                ents = [Entry(t, idx + 1, data=b"after")]
                model.install(snap, local=False)
                model.append(ents)
                calls.append(lambda s, sn=snap, e=ents: s.save(None, e, sn, True))
            elif op == "local_snap" and model.last() > model.base[0]:
                idx = min(model.last(), model.base[0] + n)
                snap = snapshot(idx, model.log[idx][0])
                model.install(snap, local=True)
                calls.append(lambda s, sn=snap: s.save_snapshot(sn))
            elif op == "reopen":
                for eng in engines:
                    eng.reopen()
            for eng in engines:
                for call in calls:
                    call(eng.st)
                assert view(eng.st.recover()) == model.view()
        engines[1].reopen()
        assert view(engines[1].st.recover()) == model.view()
    finally:
        for eng in engines:
            eng.st.close()
