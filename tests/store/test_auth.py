"""The replicated auth state (qcore.store.auth): who may change it, what it
refuses, determinism, and its snapshot form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qcore.store import EntityId
from qcore.store.auth import (
    AuthDisable,
    AuthEnable,
    AuthRefused,
    AuthState,
    InitAdmin,
    RoleAdd,
    RoleDelete,
    RoleSetPermissions,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
    UserSetPassword,
)
from qcore.store.permissions import Permission

H = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
READ_ALL = Permission("*", "*", frozenset({"read"}))


def refused(st: AuthState, change, actor, kind: str, text: str = "") -> None:  # type: ignore[no-untyped-def]
    before = st.to_json()
    with pytest.raises(AuthRefused) as info:
        st.apply(change, actor)
    assert info.value.kind == kind, info.value.text
    assert text in info.value.text
    assert st.to_json() == before  # a refused change changes nothing


def started() -> AuthState:
    st = AuthState()
    st.apply(InitAdmin(H), None)
    st.apply(RoleAdd("reader", (READ_ALL,)), "admin")
    st.apply(UserAdd("alice", H, ("reader",), EntityId("User", 7)), "admin")
    return st


def test_init_admin_turns_users_on() -> None:
    st = AuthState()
    assert st.empty and not st.enabled
    st.apply(InitAdmin(H), None)
    assert st.enabled and st.users["admin"].admin and st.revision == 1 and not st.empty


def test_with_users_off_anyone_may_change_them_and_enabling_needs_an_admin() -> None:
    st = AuthState()
    st.apply(RoleAdd("reader", (READ_ALL,)), None)
    st.apply(UserAdd("bob", H, ("reader",)), None)
    refused(st, AuthEnable(), None, "rejected", "without a user with role admin")
    st.apply(UserGrantRole("bob", "admin"), None)
    st.apply(AuthEnable(), None)
    assert st.enabled
    refused(st, UserAdd("eve", H), None, "auth_required", "authentication required")


def test_only_an_admin_changes_users_but_anyone_sets_their_own_password() -> None:
    st = started()
    refused(st, UserAdd("eve", H), "alice", "permission_denied", "permission denied: alice may not UserAdd (admin only)")
    refused(st, UserSetPassword("admin", H + "x"), "alice", "permission_denied")
    refused(st, UserAdd("eve", H), "ghost", "auth_required", "ghost no longer exists")
    st.apply(UserSetPassword("alice", H + "new"), "alice")
    assert st.users["alice"].hash == H + "new"


def test_what_is_refused_and_why() -> None:
    st = started()
    refused(st, UserAdd("alice", H), "admin", "rejected", "already exists")
    refused(st, UserAdd("eve", H, ("nosuch",)), "admin", "not_found", "no role named 'nosuch'")
    refused(st, UserAdd(" eve", H), "admin", "invalid", "leading/trailing spaces")
    refused(st, UserAdd("eve", "plaintext"), "admin", "rejected", "not a password hash")
    refused(st, UserDelete("nobody"), "admin", "not_found")
    refused(st, UserRevokeRole("alice", "admin"), "admin", "rejected", "does not have role")
    refused(st, RoleAdd("admin"), "admin", "rejected", "already exists")
    refused(st, RoleDelete("admin"), "admin", "rejected", "built in")
    refused(st, RoleSetPermissions("admin", ()), "admin", "rejected", "built in")
    refused(st, UserDelete("admin"), "admin", "rejected", "last user with role admin")
    refused(st, UserRevokeRole("admin", "admin"), "admin", "rejected", "last user with role admin")
    st.apply(AuthDisable(), "admin")
    st.apply(UserDelete("admin"), None)  # with users off the last admin may go
    assert "admin" not in st.users


def test_deleting_a_role_takes_it_from_its_users_and_a_new_user_gets_a_new_uid() -> None:
    st = started()
    uid = st.users["alice"].uid
    st.apply(RoleDelete("reader"), "admin")
    assert st.users["alice"].roles == () and st.permissions_of(st.users["alice"]) == []
    st.apply(UserDelete("alice"), "admin")
    st.apply(UserAdd("alice", H), "admin")
    assert st.users["alice"].uid != uid


changes = st.sampled_from([
    RoleAdd("r1", (READ_ALL,)), RoleAdd("r2"), RoleDelete("r1"), RoleSetPermissions("r2", (READ_ALL,)),
    UserAdd("u1", H, ("r1",)), UserAdd("u2", H), UserDelete("u1"), UserGrantRole("u2", "r2"),
    UserGrantRole("u2", "admin"), UserRevokeRole("u2", "r2"), UserSetPassword("u2", H + "2"),
    AuthEnable(), AuthDisable(),
])


@given(st.lists(st.tuples(changes, st.sampled_from([None, "admin", "u1", "u2"])), max_size=25))
def test_the_same_changes_give_the_same_state_and_it_round_trips(steps) -> None:  # type: ignore[no-untyped-def]
    def run() -> AuthState:
        s = AuthState()
        s.apply(InitAdmin(H), None)
        for change, actor in steps:
            try:
                s.apply(change, actor)
            except AuthRefused:
                pass
        return s

    a, b = run(), run()
    assert a.to_json() == b.to_json()
    again = AuthState.from_json(a.to_json())
    assert again.to_json() == a.to_json()
    if a.enabled:  # users on always has an admin
        assert a.admins() >= 1


def test_a_damaged_snapshot_is_refused() -> None:
    doc = started().to_json()
    for bad in ({**doc, "v": 9}, {**doc, "users": [["alice"]]}, {**doc, "roles": [["r", [{"access": ["x"]}]]]}, []):
        with pytest.raises(ValueError):
            AuthState.from_json(bad)
