"""A full audit of a Store's invariants, for tests and simulators.

Checks: every entity has exactly its complete schema's fields, each of its
default's variant (a Choice in range, a Timestamp write time); Parent and
Children agree both ways with no duplicates; the type index and the id
counter match the entities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .schema import CHILDREN, PARENT
from .types import Choice, Timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def check_invariants(store: Store) -> list[str]:
    """The problems found, [] if the state is sound."""
    bad: list[str] = []
    ents = store._ents
    for n, e in ents.items():
        if e.eid.id != n:
            bad.append(f"entity under key {n} has id {e.eid}")
        cs = store._complete.get(e.eid.typ)
        if cs is None:
            bad.append(f"{e.eid}: type has no schema")
            continue
        if set(e.fields) != set(cs):
            bad.append(f"{e.eid}: fields {sorted(e.fields)} != schema {sorted(cs)}")
        for name, cell in e.fields.items():
            fs = cs.get(name)
            if fs is None:
                continue
            v = cell[0]
            if v.__class__ is not fs.default_value.__class__:
                bad.append(f"{e.eid}.{name}: {v!r} is not {fs.default_value.tag}")
            elif v.__class__ is Choice and not 0 <= v.v < len(fs.choices or ()):
                bad.append(f"{e.eid}.{name}: choice {v.v} out of range")
            if cell[1].__class__ is not Timestamp:
                bad.append(f"{e.eid}.{name}: write_time {cell[1]!r}")
        pc = e.fields.get(PARENT)
        if pc is not None and pc[0].v is not None:
            p = ents.get(pc[0].v.id)
            if p is None or p.eid != pc[0].v:
                bad.append(f"{e.eid}: Parent {pc[0].v} does not exist")
            elif CHILDREN not in p.fields or e.eid not in p.fields[CHILDREN][0].v:
                bad.append(f"{e.eid}: Parent {p.eid} does not list it in Children")
        cc = e.fields.get(CHILDREN)
        if cc is not None:
            kids = cc[0].v
            if len(set(kids)) != len(kids):
                bad.append(f"{e.eid}: duplicate Children")
            for k in kids:
                ke = ents.get(k.id)
                if ke is None or ke.eid != k:
                    bad.append(f"{e.eid}: child {k} does not exist")
                elif PARENT not in ke.fields or ke.fields[PARENT][0].v != e.eid:
                    bad.append(f"{e.eid}: child {k} has another Parent")
        if n >= store._next_id:
            bad.append(f"{e.eid}: id not below next_id {store._next_id}")
    index = sorted((n, t) for t, lst in store._by_type.items() for n in lst)
    if index != sorted((n, e.eid.typ) for n, e in ents.items()):
        bad.append("type index does not match the entities")
    for t, lst in store._by_type.items():
        if lst != sorted(lst):
            bad.append(f"type index of {t} is not sorted")
    return bad
