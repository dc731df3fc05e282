"""The store checked against a deliberately simple reference model (a dict of
field values plus a parent map), driven by hypothesis' rule-based testing.

The model knows nothing about indirection, schemas or undo logs: it only says
what every field must read after each successful command, so a bug in the
fast paths (wrong entity, wrong arithmetic, lost Children update, a failed
batch leaking a write) shows up as a difference."""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from qcore.store import (
    AdjustBehavior,
    CreateEntity,
    DeleteEntity,
    EntityList,
    EntityReference,
    GetChildren,
    Int,
    PageOpts,
    PushCondition,
    Read,
    String,
    Timestamp,
    UpdateEntity,
    Write,
)

from .helpers import make_store

STEPS = int(os.environ.get("QCORE_MODEL_STEPS", "30"))
I64 = (-(2**63), 2**63 - 1)


class StoreVsModel(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.store = make_store()
        self.clock = 10
        self.values: dict = {}  # (eid, field) -> Value
        self.times: dict = {}  # (eid, field) -> Timestamp
        self.parent: dict = {}  # eid -> parent eid | None
        self.children: dict = {}  # eid -> its children, in Children order (appended on create / move)
        self.order: list = []  # live eids in creation order
        self.next_id = 1

    def now(self) -> Timestamp:
        self.clock += 1
        return Timestamp(self.clock, 0)

    def kids(self, p):
        return tuple(self.children[p])

    @rule(typ=st.sampled_from(["User", "Folder"]), pick=st.integers(0, 50), top=st.booleans(), name=st.text(max_size=3))
    def create(self, typ, pick, top, name):
        parent = None if top or not self.order else self.order[pick % len(self.order)]
        now = self.now()
        resp, _ = self.store.apply(CreateEntity(typ, parent, name), now)
        assert resp.error is None
        eid = resp.response
        assert eid.id == self.next_id and eid.typ == typ
        self.next_id += 1
        self.order.append(eid)
        self.parent[eid] = parent
        self.children[eid] = []
        if parent is not None:
            self.children[parent].append(eid)
        self.values[(eid, "Name")] = String(name)
        for f in ("Name", "Parent", "Children"):
            self.times[(eid, f)] = now
        if typ == "User":
            self.values[(eid, "Age")] = Int(0)
            self.values[(eid, "Email")] = String("")
            self.values[(eid, "Friends")] = EntityList(())
            for f in ("Age", "Email", "Friends"):
                self.times[(eid, f)] = now
        if parent is not None:
            self.times[(parent, "Children")] = now

    @precondition(lambda self: self.order)
    @rule(pick=st.integers(0, 50))
    def delete(self, pick):
        victim = self.order[pick % len(self.order)]
        doomed = {victim}
        changed = True
        while changed:
            changed = False
            for e in self.order:
                if e not in doomed and self.parent[e] in doomed:
                    doomed.add(e)
                    changed = True
        now = self.now()
        resp, _ = self.store.apply(DeleteEntity(victim), now)
        assert resp.error is None
        if self.parent[victim] is not None:
            self.times[(self.parent[victim], "Children")] = now
            self.children[self.parent[victim]].remove(victim)
        self.order = [e for e in self.order if e not in doomed]
        for k in [k for k in self.values if k[0] in doomed]:
            del self.values[k]

    @precondition(lambda self: self.order)
    @rule(pick=st.integers(0, 50), to=st.integers(0, 50), detach=st.booleans(), changes=st.booleans())
    def move(self, pick, to, detach, changes):
        e = self.order[pick % len(self.order)]
        new = None if detach else self.order[to % len(self.order)]
        a, cycle = new, False
        while a is not None:
            cycle = cycle or a == e
            a = self.parent[a]
        now = self.now()
        pc = PushCondition.Changes if changes else PushCondition.Always
        resp, _ = self.store.apply(UpdateEntity([Write(e, "Parent", EntityReference(new), pc)]), now)
        if cycle:
            assert resp.error is not None and "itself or its descendant" in resp.error
            return
        assert resp.error is None, resp.error
        old = self.parent[e]
        if changes and old == new:
            return
        self.times[(e, "Parent")] = now
        if old != new:
            if old is not None:
                self.children[old].remove(e)
                self.times[(old, "Children")] = now
            if new is not None:
                self.children[new].append(e)
                self.times[(new, "Children")] = now
            self.parent[e] = new

    @precondition(lambda self: any(e.typ == "User" for e in self.order))
    @rule(
        picks=st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["Age", "Email", "Friends"]),
                                 st.integers(-3, 3), st.sampled_from(list(AdjustBehavior)),
                                 st.sampled_from(list(PushCondition))), min_size=1, max_size=4),
        fail_at=st.none() | st.integers(0, 4),
    )
    def batch(self, picks, fail_at):
        users = [e for e in self.order if e.typ == "User"]
        reqs, expect_vals, expect_times = [], dict(self.values), dict(self.times)
        now = self.now()
        ok = True
        for i, (pick, field, n, beh, pc) in enumerate(picks):
            u = users[pick % len(users)]
            old = expect_vals[(u, field)]
            if field == "Age":
                v = Int(n * 10**17 if abs(n) == 3 else n)
                new = {AdjustBehavior.Set: v.v, AdjustBehavior.Add: old.v + v.v,
                       AdjustBehavior.Subtract: old.v - v.v}[beh]
                if not I64[0] <= new <= I64[1]:
                    ok = False
                new = Int(new) if ok else None
            elif field == "Email":
                v = String("x" * (n % 3))
                if beh is AdjustBehavior.Subtract:
                    ok = False
                    new = None
                else:
                    new = v if beh is AdjustBehavior.Set else String(old.v + v.v)
            else:
                v = EntityList(tuple(users[(pick + k) % len(users)] for k in range(n % 3)))
                if beh is AdjustBehavior.Set:
                    new = v
                elif beh is AdjustBehavior.Add:
                    new = EntityList(old.v + v.v)
                else:
                    new = EntityList(tuple(x for x in old.v if x not in v.v))
            if fail_at == i:
                reqs.append(Write(u, "Nope", v))
                ok = False
            else:
                reqs.append(Write(u, field, v, pc, beh))
            if not ok:
                break
            if not (pc is PushCondition.Changes and new == old):
                expect_vals[(u, field)] = new
                expect_times[(u, field)] = now
        resp, changes = self.store.apply(UpdateEntity(reqs), now)
        if ok:
            assert resp.error is None, resp.error
            self.values, self.times = expect_vals, expect_times
        else:
            assert resp.error is not None and resp.error.startswith(f"request[{len(reqs) - 1}]: ")
            assert changes == []

    @invariant()
    def reads_match_model(self):
        if not hasattr(self, "store"):
            return
        for (eid, field), v in self.values.items():
            r = self.store.query(UpdateEntity([Read(eid, field)])).response[0]
            assert r.value == v, (eid, field)
            assert r.write_time == self.times[(eid, field)], (eid, field)
        for e in self.order:
            got = self.store.query(UpdateEntity([Read(e, "Children"), Read(e, "Parent")])).response
            assert got[0].value == EntityList(self.kids(e))
            assert got[0].write_time == self.times[(e, "Children")]
            assert got[1].value == EntityReference(self.parent[e])
            assert got[1].write_time == self.times[(e, "Parent")]
            walked, cursor = [], None
            while True:
                page = self.store.query(GetChildren(e, PageOpts(2, cursor))).response
                walked.extend(page.items)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert tuple(walked) == self.kids(e)
        assert self.store.entity_count() == len(self.order)
        assert self.store.check_invariants() == []


StoreVsModel.TestCase.settings = settings(max_examples=STEPS, stateful_step_count=25, deadline=None)
test_store_matches_reference_model = StoreVsModel.TestCase
