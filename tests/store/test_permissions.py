"""The permission evaluator (qcore.store.permissions.Grants) against a
deliberately simple reference model.

The model expands every permission downwards into the set of (access, type,
field) triples it grants — its type and every descendant found by walking
the children, every field, or only "*" types for a type the schema does not
know — and answers a question by set membership. Grants answers by walking
a type's ancestors upwards and caches its decisions; the two must agree on
every question, asked in any order, any number of times."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.store import Store
from qcore.store.access import type_lineage
from qcore.store.permissions import (
    ACCESS,
    ANY,
    MAX_REMEMBERED,
    Grants,
    Permission,
    parse_permission,
    parse_permissions,
)

from .helpers import make_store

TYPES = [f"T{i}" for i in range(6)]
FIELDS = ["A", "B", "C"]
UNKNOWN = "Stranger"  # a type no schema has


@st.composite
def forests(draw: st.DrawFn) -> dict[str, str | None]:
    """Each type's parent: an earlier type or none (so there are no cycles)."""
    return {t: (draw(st.sampled_from([None, *TYPES[:i]])) if i else None) for i, t in enumerate(TYPES)}


permissions = st.builds(
    Permission,
    st.sampled_from([*TYPES, ANY, UNKNOWN]),
    st.sampled_from([*FIELDS, ANY]),
    st.frozensets(st.sampled_from(ACCESS), min_size=1),
)
questions = st.tuples(st.sampled_from(ACCESS), st.sampled_from([*TYPES, UNKNOWN]), st.sampled_from(FIELDS))


def model(parents: dict[str, str | None], perms: list[Permission]) -> set[tuple[str, str, str]]:
    children: dict[str, list[str]] = {t: [] for t in parents}
    for t, p in parents.items():
        if p is not None:
            children[p].append(t)
    granted: set[tuple[str, str, str]] = set()
    for p in perms:
        if p.entity_type == ANY:
            covered = [*TYPES, UNKNOWN]
        elif p.entity_type in parents:
            covered, todo = [], [p.entity_type]
            while todo:
                t = todo.pop()
                covered.append(t)
                todo.extend(children[t])
        else:
            covered = [p.entity_type]  # a permission naming an unknown type covers just that name
        for t in covered:
            for f in FIELDS:
                for a in p.access:
                    if a in ("create", "delete") or p.field in (ANY, f):
                        granted.add((a, t, f))
    return granted


def lineage_of(parents: dict[str, str | None]):  # type: ignore[no-untyped-def]
    def lineage(t: str) -> tuple[str, ...]:
        out = [t]
        while parents.get(out[-1]) is not None:
            out.append(parents[out[-1]])  # type: ignore[arg-type]
        return tuple(out)
    return lineage


@settings(max_examples=300)
@given(forests(), st.lists(permissions, max_size=6), st.lists(questions, min_size=1, max_size=40))
def test_grants_agree_with_the_model(parents, perms, asked) -> None:  # type: ignore[no-untyped-def]
    granted = model(parents, perms)
    g = Grants(perms, lineage_of(parents))
    for _ in range(2):  # the second round is answered from the cache
        for access, typ, field in asked:
            assert g.allows(access, typ, field) == ((access, typ, field) in granted), (access, typ, field)
            # every permission names one of FIELDS or "*": "something of the type" is one of them
            assert g.on_type(access, typ) == any((access, typ, f) in granted for f in FIELDS), (access, typ)


@given(questions)
def test_admin_may_do_everything_and_nobody_nothing(q) -> None:  # type: ignore[no-untyped-def]
    assert Grants([], lambda t: (t,), admin=True).allows(*q)
    assert not Grants([], lambda t: (t,)).allows(*q)


def test_lineage_from_a_store_follows_inheritance() -> None:
    store: Store = make_store()
    assert type_lineage(store, "Admin") == ("Admin", "User", "Object")
    assert type_lineage(store, "Nope") == ("Nope",)
    g = Grants([Permission("User", "Email", frozenset({"read"}))], lambda t: type_lineage(store, t))
    assert g.allows("read", "Admin", "Email") and g.allows("read", "User", "Email")
    assert not g.allows("read", "Object", "Email") and not g.allows("write", "Admin", "Email")
    assert not g.allows("read", "Admin", "Name")


def test_what_is_remembered_stays_bounded_whatever_names_clients_send() -> None:
    """Every Read or Write names a type and a field, checked before the store refuses one that
    does not exist: ever new names must not grow a user's Grants (on every node, for writes)."""
    g = Grants([Permission("T0", ANY, frozenset({"read"}))], lambda t: (t, "T0") if t.startswith("T") else (t,))
    for i in range(3 * MAX_REMEMBERED):
        assert g.allows("read", "T1", f"Field{i}") and not g.allows("write", "T1", f"Field{i}")
        assert g.on_type("read", f"T{i}") and not g.on_type("read", f"X{i}")
    tables = (g._fields, g._types, g._lineages)  # what it remembers
    assert all(0 < len(t) <= MAX_REMEMBERED for t in tables), [len(t) for t in tables]


def test_parsing_says_what_is_wrong() -> None:
    p = parse_permission({"entity_type": "Sensor", "field": "Value", "access": ["write", "read"]})
    assert p == Permission("Sensor", "Value", frozenset({"read", "write"}))
    assert p.to_json() == {"entity_type": "Sensor", "field": "Value", "access": ["read", "write"]}
    assert parse_permission({"entity_type": "*", "access": ["read"]}).field == ANY
    for bad, why in [
        ({"entity_type": "S", "access": ["fly"]}, "access[0]"),
        ({"entity_type": "S", "access": []}, "access"),
        ({"entity_type": "", "access": ["read"]}, "entity_type"),
        ({"entity_type": "S", "acces": ["read"], "access": ["read"]}, "unknown key 'acces'"),
        ("S.V=read", "expected"),
    ]:
        try:
            parse_permissions([bad])
        except ValueError as exc:
            assert why in str(exc) and "permissions[0]" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
