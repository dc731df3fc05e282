"""A caller's ``stop`` cuts a batch's answered Reads short (a reply size limit,
qcore.protocol.reply_size) and changes nothing else: the same state, the same
changes, the same validation of the Reads it no longer answers."""

from __future__ import annotations

from qcore.store import Int, Read, String, UpdateEntity, Write

from tests.store.helpers import T0, create, make_store


def _after_three(answered: list[Read]):
    def stop(read: Read) -> bool:
        answered.append(read)
        return len(answered) >= 3
    return stop


def test_a_read_batch_stops_where_told():
    s = make_store()
    u = create(s, "User", "u")
    batch = UpdateEntity([Read(u, "Name")] * 10)
    seen: list[Read] = []
    resp = s.query(batch, _after_three(seen))
    assert resp.error is None and len(resp.response) == 3 and resp.response == seen


def test_a_batch_that_writes_is_applied_alike_with_its_reads_cut_short():
    twins = [make_store(), make_store()]
    for s in twins:
        create(s, "User", "u")
    results = []
    for s, stop in zip(twins, (None, _after_three([]))):
        eid = create(s, "User", "v")
        batch = UpdateEntity([Read(eid, "Name")] * 5 + [Write(eid, "Age", Int(7)), Write(eid, "Email", String("e"))]
                             + [Read(eid, "Age")] * 5)
        results.append(s.apply(batch, T0, stop))
    (full, full_changes), (cut, cut_changes) = results
    assert full.error is None and cut.error is None
    assert full_changes == cut_changes
    assert twins[0].snapshot() == twins[1].snapshot()
    assert [r.__class__ for r in full.response] == [Read] * 5 + [Write] * 2 + [Read] * 5
    assert [r.__class__ for r in cut.response] == [Read] * 3 + [Write] * 2


def test_reads_no_longer_answered_are_still_checked():
    s = make_store()
    u = create(s, "User", "u")
    before = s.snapshot()
    batch = UpdateEntity([Read(u, "Name"), Write(u, "Age", Int(7)), Read(u, "NoSuchField")])
    resp, changes = s.apply(batch, T0, lambda read: True)
    assert resp.error is not None and resp.error.startswith("request[2]:") and changes == []
    assert s.snapshot() == before
