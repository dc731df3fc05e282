"""Hypothesis: random command sequences keep the store's invariants, failed
commands change nothing, queries never mutate, and two stores fed the same
commands (or one restored from a snapshot) stay byte-identical."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.store import (
    AdjustBehavior,
    Blob,
    Bool,
    Choice,
    CreateEntity,
    DeleteEntity,
    EntityExists,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldExists,
    FieldSchema,
    FindEntities,
    Float,
    GetChildren,
    GetCompleteSchema,
    GetEntityTypes,
    GetSchema,
    Int,
    PageOpts,
    PushCondition,
    Read,
    SetSchema,
    Store,
    String,
    Timestamp,
    TimestampValue,
    UpdateEntity,
    Write,
)

from .helpers import ADMIN, FOLDER, OBJECT, USER

EXAMPLES = int(os.environ.get("QCORE_HYPOTHESIS_EXAMPLES", "120"))
TYPES = ["Object", "Folder", "User", "Admin", "Extra"]
FIELDS = ["Name", "Parent", "Children", "Email", "Age", "Score", "Role", "Manager", "Friends", "Active", "Avatar",
          "Seen", "Level", "Description", "X"]
PATHS = FIELDS + ["Parent->Name", "Parent->Children->0->Age", "Manager->Email", "Children->1->Name",
                  "Friends->0->Parent->Description", "Manager->Manager->Age"]

# "?"-typed ids are placeholders resolved against the store's live entities at
# apply time (most hit an existing entity; a few miss), so that writes, moves
# and deletes mostly succeed; the other ids are arbitrary (mostly missing).
eids = st.one_of(
    st.builds(EntityId, st.just("?"), st.integers(0, 40)),
    st.builds(EntityId, st.just("?"), st.integers(0, 40)),
    st.builds(EntityId, st.just("?"), st.integers(0, 40)),
    st.builds(EntityId, st.sampled_from(TYPES), st.integers(1, 14)),
)
timestamps = st.builds(Timestamp, st.integers(0, 10**10), st.integers(0, 999_999_999))
values = st.one_of(
    st.builds(Int, st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 5)),
    st.builds(Float, st.floats(allow_nan=False, allow_infinity=False, width=64) | st.sampled_from([0.0, 1.5])),
    st.builds(String, st.text(max_size=4)),
    st.builds(Bool, st.booleans()),
    st.builds(Choice, st.integers(-1, 3)),
    st.builds(EntityReference, st.none() | eids),
    st.builds(EntityList, st.lists(eids, max_size=3).map(tuple)),
    st.builds(Blob, st.binary(max_size=3)),
    st.builds(TimestampValue, timestamps),
)
requests = st.one_of(
    st.builds(Read, eids, st.sampled_from(PATHS)),
    st.builds(
        Write,
        eids,
        st.sampled_from(PATHS),
        values | st.none(),
        st.sampled_from(list(PushCondition)),
        st.sampled_from(list(AdjustBehavior)),
        st.none() | timestamps,
        st.none() | eids,
    ),
)
TYPED = {
    "Name": st.builds(String, st.text(max_size=3)),
    "Email": st.builds(String, st.text(max_size=3)),
    "Description": st.builds(String, st.text(max_size=3)),
    "Age": st.builds(Int, st.integers(-3, 3)),
    "Level": st.builds(Int, st.integers(-3, 3)),
    "Score": st.builds(Float, st.sampled_from([0.0, -1.5, 2.25])),
    "Role": st.builds(Choice, st.integers(0, 2)),
    "Active": st.builds(Bool, st.booleans()),
    "Manager": st.builds(EntityReference, st.none() | eids),
    "Parent": st.builds(EntityReference, st.none() | eids),
    "Friends": st.builds(EntityList, st.lists(eids, max_size=3).map(tuple)),
    "Avatar": st.builds(Blob, st.binary(max_size=2)),
    "Seen": st.builds(TimestampValue, timestamps),
}
typed_writes = st.sampled_from(sorted(TYPED)).flatmap(
    lambda f: st.builds(
        Write,
        eids,
        st.sampled_from([f, f, f"Parent->{f}", f"Children->0->{f}"]),
        TYPED[f],
        st.sampled_from(list(PushCondition)),
        st.sampled_from([AdjustBehavior.Set, AdjustBehavior.Set, AdjustBehavior.Add, AdjustBehavior.Subtract]),
        st.none() | timestamps,
        st.none() | eids,
    )
)
field_schemas = st.builds(
    lambda name, v, rank, choices: FieldSchema(name, v, rank, None, None, choices),
    st.sampled_from(FIELDS[3:]),
    values,
    st.integers(0, 9),
    st.none() | st.just(("a", "b", "c")),
)
schemas = st.builds(
    lambda t, inherit, fss: EntitySchema(t, inherit, {f.field_type: f for f in fss}),
    st.sampled_from(TYPES),
    st.none() | st.sampled_from(TYPES + ["Nope"]),
    st.lists(field_schemas, max_size=3),
)
creates = st.builds(CreateEntity, st.sampled_from(["User", "Folder", "Admin"]), st.none() | eids, st.just("n"))
updates = st.builds(UpdateEntity, st.lists(requests, min_size=1, max_size=4))
typed_updates = st.builds(UpdateEntity, st.lists(typed_writes | typed_writes | requests, min_size=1, max_size=3))
mutations = st.one_of(
    st.builds(CreateEntity, st.sampled_from(TYPES + ["Nope"]), st.none() | eids, st.text(max_size=3)),
    creates,
    creates,
    creates,
    st.builds(DeleteEntity, eids),
    updates,
    typed_updates,
    typed_updates,
    typed_updates,
    st.builds(lambda e, p: UpdateEntity([Write(e, "Parent", EntityReference(p))]), eids, st.none() | eids),
    st.builds(SetSchema, schemas),
)
page_opts = st.none() | st.builds(PageOpts, st.integers(-1, 4), st.none() | st.sampled_from(["0", "3", "x", "User"]))
queries = st.one_of(
    st.builds(UpdateEntity, st.lists(st.builds(Read, eids, st.sampled_from(PATHS)), max_size=3)),
    st.builds(GetSchema, st.sampled_from(TYPES)),
    st.builds(GetCompleteSchema, st.sampled_from(TYPES)),
    st.builds(FindEntities, st.sampled_from(TYPES), page_opts),
    st.builds(GetEntityTypes, page_opts),
    st.builds(GetChildren, eids, page_opts),
    st.builds(EntityExists, eids),
    st.builds(FieldExists, st.sampled_from(TYPES), st.sampled_from(FIELDS)),
)
steps = st.lists(st.tuples(mutations, timestamps, queries), min_size=1, max_size=25)


def live_entities(store: Store) -> list[EntityId]:
    """Every entity, by id (through the public API)."""
    out = set()
    for typ in store.query(GetEntityTypes(None)).response.items:
        out.update(store.query(FindEntities(typ, None)).response.items)
    return sorted(out, key=lambda e: e.id)


def resolve(obj, store: Store):
    """Replace placeholder ids ("?", k) by the k-th live entity (or a missing id)."""
    if isinstance(obj, EntityId):
        if obj.typ != "?":
            return obj
        live = live_entities(store)
        if not live or obj.id >= 36:
            return EntityId("User", 10_000 + obj.id)
        return live[obj.id % len(live)]
    if isinstance(obj, (list, tuple)):
        return type(obj)(resolve(x, store) for x in obj)
    if isinstance(obj, EntityReference):
        return EntityReference(resolve(obj.v, store))
    if isinstance(obj, EntityList):
        return EntityList(resolve(obj.v, store))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: resolve(getattr(obj, f.name), store)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, dict):
        return {k: resolve(v, store) for k, v in obj.items()}
    return obj


def seeded() -> Store:
    s = Store()
    for sch in (OBJECT, FOLDER, USER, ADMIN):
        s.apply(SetSchema(sch), Timestamp(1, 0))
    root = s.apply(CreateEntity("Folder", None, "root"), Timestamp(1, 0))[0].response
    for typ in ("User", "Admin", "Folder"):
        s.apply(CreateEntity(typ, root, typ.lower()), Timestamp(1, 0))
    return s


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_sequences_keep_invariants_and_are_deterministic(seq):
    a, b = seeded(), seeded()
    for cmd, now, q in seq:
        cmd, q = resolve(cmd, a), resolve(q, a)
        before = a.snapshot()
        resp, changes = a.apply(cmd, now)
        resp_b, changes_b = b.apply(cmd, now)
        assert resp == resp_b and changes == changes_b
        assert a.check_invariants() == []
        after = a.snapshot()
        if getattr(resp, "error", None) is not None:
            assert after == before, f"failed {cmd!r} changed state: {resp.error}"
            assert changes == []
        else:
            for c in changes:
                assert c.write_time.__class__ is Timestamp
        # queries never mutate
        a.query(q)
        assert a.snapshot() == after
        assert a.snapshot() == b.snapshot()
    restored = Store.restore(a.snapshot())
    assert restored.snapshot() == a.snapshot()
    assert restored.check_invariants() == []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, steps)
def test_restored_store_continues_identically(first, second):
    a = seeded()
    for cmd, now, _ in first:
        a.apply(resolve(cmd, a), now)
    b = Store.restore(a.snapshot())
    for cmd, now, _ in second:
        cmd = resolve(cmd, a)
        ra, ca = a.apply(cmd, now)
        rb, cb = b.apply(cmd, now)
        assert ra == rb and ca == cb
    assert a.snapshot() == b.snapshot()
