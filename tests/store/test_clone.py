"""Store.clone(): a copy at one moment that another thread serialises while
the original goes on applying (qcore.node.state_machine.snapshot_builder).

Whatever the original does after the clone, the clone's snapshot is the one
the original would have taken at the clone point, and no mutable object is
reachable from both.
"""

from __future__ import annotations

from array import array
from typing import Any

from hypothesis import HealthCheck, given, settings

from qcore.store import (
    DeleteEntity,
    EntityId,
    EntityReference,
    GetChildren,
    Store,
    String,
    Timestamp,
    UpdateEntity,
    Value,
    Write,
)
from qcore.store.catalog import Catalog

from .helpers import T1, create, make_store
from .test_properties import EXAMPLES, live_entities, resolve, seeded, steps

_IMMUTABLE = (str, int, float, bool, bytes, type(None), type, tuple, frozenset, Value, Timestamp, EntityId,
              # a Catalog is never changed in place (a schema change builds a new one): shared on purpose
              Catalog)


def _mutable_ids(root: object) -> dict[int, object]:
    """Every mutable object reachable from ``root``, by id."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        o = stack.pop()
        if isinstance(o, _IMMUTABLE) or id(o) in seen:
            continue
        seen[id(o)] = o
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, set)):
            stack.extend(o)
        elif isinstance(o, (array, bytearray)):
            pass
        else:
            slots = [s for c in type(o).__mro__ for s in getattr(c, "__slots__", ())]
            assert slots, f"{type(o).__name__} is neither known immutable nor a slotted store object"
            stack.extend(getattr(o, s) for s in slots if hasattr(o, s))
    return seen


def _state(s: Store) -> dict[EntityId, Any]:
    """Every entity's cells (Children read from the tree) and children page."""
    return {e: (s.entity_fields(e), s.query(GetChildren(e, None)).response) for e in live_entities(s)}


def _assert_clone_is_the_moment(clone: Store, snap: bytes, state: dict[EntityId, Any], original: Store) -> None:
    assert clone.snapshot() == snap
    assert Store.restore(clone.snapshot()).snapshot() == snap
    assert _state(clone) == state
    assert clone.check_invariants() == []
    shared = _mutable_ids(clone).keys() & _mutable_ids(original).keys()
    assert not shared, [type(_mutable_ids(clone)[i]).__name__ for i in shared]
    assert clone.snapshot(consume=True) == snap  # as a node writes it out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, steps)
def test_a_clone_keeps_the_state_of_its_moment_while_the_original_goes_on(first, second) -> None:
    a = seeded()
    for cmd, now, _ in first:
        a.apply(resolve(cmd, a), now)
    clone = a.clone()
    snap, state = a.snapshot(), _state(a)
    for cmd, now, q in second:
        a.apply(resolve(cmd, a), now)
        a.query(resolve(q, a))
    _assert_clone_is_the_moment(clone, snap, state, a)


def test_compaction_repacking_and_rebuilds_of_the_original_leave_the_clone_alone() -> None:
    """The paths that replace the original's arrays and lists (table
    compaction, String buffer repacking, ChildList rebuilds) leave the clone's."""
    s = make_store()
    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(200)]
    big = "x" * 1000
    for k in kids[:100]:
        s.apply(UpdateEntity([Write(k, "Email", String(big), writer_id=root)]), T1)
    s.apply(UpdateEntity([Write(kids[0], "Manager", EntityReference(kids[1]))]), T1)
    clone = s.clone()
    snap, state = s.snapshot(), _state(s)
    for k in kids[:150]:
        assert s.apply(DeleteEntity(k), T1)[0].error is None  # compaction, tree rebuild
    for k in kids[150:]:
        s.apply(UpdateEntity([Write(k, "Email", String(big + "y"))]), T1)  # garbage: repacking
    s.apply(UpdateEntity([Write(kids[199], "Parent", EntityReference(None))]), Timestamp(3_000, 0))
    assert len(s.entities.tables["User"].ids) < 200  # the original was compacted
    assert len(s.tree.lists[root.id].keys) < 200  # ... and its children list rebuilt
    _assert_clone_is_the_moment(clone, snap, state, s)


def test_a_clone_of_an_empty_store_is_empty() -> None:
    s = Store()
    c = s.clone()
    assert c.snapshot() == s.snapshot() and c.entity_count() == 0 and c.next_id == 1
