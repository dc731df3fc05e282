"""The user messages on the wire (qcore.protocol.auth): AuthAdmin requests as
a client sends them, the changes as the log carries them, and no password
in a repr or an error."""

from __future__ import annotations

import pytest

from qcore.protocol import messages as m
from qcore.protocol.auth import (
    AuthAdmin,
    Authenticate,
    AuthStatus,
    RoleList,
    UserList,
    decode_admin_request,
    decode_change,
    encode_change,
)
from qcore.protocol.values import CodecError
from qcore.store import EntityId
from qcore.store.auth import (
    AuthDisable,
    AuthEnable,
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

SECRET = "hunter2-do-not-print"
READ = {"entity_type": "Sensor", "field": "*", "access": ["read"]}


def test_every_request_decodes() -> None:
    cases = {
        "UserAdd": ({"user": "a", "password": SECRET, "roles": ["r"], "entity": {"typ": "User", "id": 3}},
                    (UserAdd("a", "", ("r",), EntityId("User", 3)), SECRET)),
        "UserSetPassword": ({"user": "a", "password": SECRET}, (UserSetPassword("a", ""), SECRET)),
        "UserDelete": ({"user": "a"}, (UserDelete("a"), None)),
        "UserGrantRole": ({"user": "a", "role": "r"}, (UserGrantRole("a", "r"), None)),
        "UserRevokeRole": ({"user": "a", "role": "r"}, (UserRevokeRole("a", "r"), None)),
        "RoleAdd": ({"role": "r", "permissions": [READ]},
                    (RoleAdd("r", (Permission("Sensor", "*", frozenset({"read"})),)), None)),
        "RoleSetPermissions": ({"role": "r", "permissions": []}, (RoleSetPermissions("r", ()), None)),
        "RoleDelete": ({"role": "r"}, (RoleDelete("r"), None)),
        "AuthEnable": ({}, (AuthEnable(), None)),
        "AuthDisable": ({}, (AuthDisable(), None)),
        "UserList": ({}, (UserList(), None)),
        "RoleList": ({}, (RoleList(), None)),
        "AuthStatus": ({}, (AuthStatus(), None)),
    }
    for tag, (body, expected) in cases.items():
        assert decode_admin_request({tag: body}) == expected, tag


@pytest.mark.parametrize("request_obj,where", [
    ({"UserAdd": {"user": "a", "password": 5}}, "request.UserAdd.password"),
    ({"UserAdd": {"user": "a", "password": ""}}, "request.UserAdd.password"),
    ({"UserAdd": {"user": "", "password": SECRET}}, "request.UserAdd.user"),
    ({"UserAdd": {"user": "a", "password": SECRET, "roles": "admin"}}, "request.UserAdd.roles"),
    ({"UserAdd": {"user": "a", "password": SECRET, "entity": {"typ": 1}}}, "request.UserAdd.entity"),
    ({"RoleSetPermissions": {"role": "r"}}, "request.RoleSetPermissions.permissions"),
    ({"RoleAdd": {"role": "r", "permissions": [{"entity_type": "S", "access": ["fly"]}]}},
     "request.RoleAdd.permissions[0].access[0]"),
    ({"Nope": {}}, "unknown AuthAdmin request 'Nope'"),
    ({"UserList": {}, "RoleList": {}}, "one key"),
])
def test_a_bad_request_says_where_and_never_quotes_a_password(request_obj, where) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CodecError) as info:
        decode_admin_request(request_obj)
    assert where in str(info.value)
    assert SECRET not in str(info.value)


def test_changes_round_trip_in_their_logged_form_with_hashes_only() -> None:
    for c in (UserAdd("a", "$argon2id$x", ("r",), EntityId("User", 3)), UserAdd("b", "$argon2id$y"),
              UserSetPassword("a", "$argon2id$z"), UserDelete("a"), UserGrantRole("a", "r"),
              UserRevokeRole("a", "r"), RoleAdd("r", (Permission("*", "*", frozenset({"read", "write"})),)),
              RoleSetPermissions("r", ()), RoleDelete("r"), AuthEnable(), AuthDisable(), InitAdmin("$argon2id$w")):
        assert decode_change(encode_change(c)) == c
    with pytest.raises(CodecError):
        decode_change({"UserAdd": {"user": "a"}})
    with pytest.raises(CodecError):
        decode_change({"Explode": {}})


def test_passwords_stay_out_of_reprs_and_the_messages_are_registered() -> None:
    msgs = [Authenticate(1, "alice", SECRET), AuthAdmin(2, {"UserSetPassword": {"user": "a", "password": SECRET}}),
            m.Init(3, [], admin_password=SECRET)]
    for msg in msgs:
        assert SECRET not in repr(msg)
        assert m.decode_message(m.encode_message(msg)) == msg
    assert m.encode_message(m.Init(4, [])) == b'{"Init":{"id":4,"nodes":[]}}'  # as the seed shows it
