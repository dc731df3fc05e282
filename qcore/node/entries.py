"""The payload of qcore's NORMAL log entries.

One entry carries a group-committed batch of commands proposed together:
`{"t": [secs, nanos], "v": 3, "c": [[origin, seq, <CommandRequest JSON>], ...]}`.
`t` is the proposal time that fills in default write times, fixed before the
entry enters the log so that apply stays deterministic. `origin` is the
proposing process (node id plus a per-boot nonce, so a restarted node never
mistakes an old entry for one of its new requests) and `seq` its request
number; only the proposer uses them, to answer its waiters.

`v` is the entry's semantics level: which rules apply it. This build
applies levels up to ENTRY_LEVEL and writes the lowest level a node that
applies its entries declared (:func:`proposal_level`; each node declares its
ENTRY_LEVEL on its Raft connections), so a member of an older build is
never sent an entry it cannot apply; an entry without `v` was written
before levels existed (or at level 1) and is level 1. A leader lowers a
follower's batch to its own proposal level (:func:`lowered`). Every node
applies an entry by its level's rules, whatever its own build, so nodes of
two versions in one cluster (a rolling upgrade) reach the same state; a node
that meets an entry of a level above its own (a downgrade) refuses it
(:class:`LevelUnsupported`) and stops rather than guess.
Level 3 (this build): with users on, a path request (``Ref->Title``) that
follows a Write in its batch is checked where it leads once the requests
before it have run, not on the state before the batch (qcore.node.state_machine).
Level 2: with users on, CreateEntity and DeleteEntity record
the user's entity as the writer of what they change; a move (a Write of
Parent) records its Write's writer on both parents' Children; UserAdd
refuses an entity that does not exist, and DeleteEntity one a user is
linked to (or an ancestor of it). Level 1: none of these (the rules before
levels).

The entry written by Init is `{"t": [...], "v": 3, "init": <LoadConfig JSON>}`, with
`"auth": {"admin": "<password hash>"}` when it starts the cluster with users
on (SPEC 8.3); with no member heard from yet, it is level 1 (no `v`) when the
cluster starts with more than one member.

A command made by an authenticated user is logged inside an envelope naming
the user, so that the state machine checks it against the users and roles
at its own log position: `{"Attributed": {"user": "alice", "uid": 7,
"request": <CommandRequest JSON>}}`; a change to users and roles is
`{"AuthAdmin": {"user": "alice" | null, "uid": 7, "request": <auth change
JSON>}}` (qcore.protocol.auth: hashes, never passwords). `uid` is the user's
number when the connection authenticated: a user deleted and added again
under the same name has another, so a request from the old one's connection
is refused where it is applied. Entries without `uid` are checked by name
alone. A bare CommandRequest is a command by no user.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from qcore.protocol.auth import decode_change, encode_change
from qcore.protocol.values import decode_command_request
from qcore.store.auth import AuthChange

#: The semantics level of the entries this build writes, and the highest it can apply.
ENTRY_LEVEL = 3
#: An entry without ``"v"``: written by a build from before levels existed.
LEVEL_BEFORE_LEVELS = 1


class LevelUnsupported(Exception):
    """An entry needs rules newer than this build's: it must not be applied, nor anything after it."""

    def __init__(self, index: int, level: Any) -> None:
        super().__init__(f"log entry {index} needs qcore semantics level {level!r}; "
                         f"this node supports up to {ENTRY_LEVEL}: upgrade this node")
        self.index = index
        self.level = level


@dataclass(slots=True)
class Batch:
    secs: int
    nanos: int
    commands: list[list[Any]]  # [origin, seq, command JSON]
    init: Any = None
    auth: Any = None  # with init: {"admin": hash} to start with users on
    level: Any = ENTRY_LEVEL  # the rules that apply it (as logged: an int, unless the entry is corrupt)


def now_pair() -> tuple[int, int]:
    ns = time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000


def new_batch(commands: list[list[Any]], level: int = ENTRY_LEVEL) -> Batch:
    """A batch of `commands` at `level`, stamped with the current time."""
    secs, nanos = now_pair()
    return Batch(secs, nanos, commands, level=level)


def encode_batch(batch: Batch) -> bytes:
    if batch.level == LEVEL_BEFORE_LEVELS:  # as written before levels existed
        return orjson.dumps({"t": [batch.secs, batch.nanos], "c": batch.commands})
    return orjson.dumps({"t": [batch.secs, batch.nanos], "v": batch.level, "c": batch.commands})


def encode_init(load_config_json: Any, at: tuple[int, int] | None = None, auth: Any = None,
                level: int = ENTRY_LEVEL) -> bytes:
    """The config file's entry at `level`, stamped `at` (secs, nanos) or now; `auth` starts users on."""
    secs, nanos = at if at is not None else now_pair()
    entry: dict[str, Any] = {"t": [secs, nanos]}
    if level != LEVEL_BEFORE_LEVELS:  # level 1: as written before levels existed
        entry["v"] = level
    entry["init"] = load_config_json
    if auth is not None:
        entry["auth"] = auth
    return orjson.dumps(entry)


# The head of a batch as encode_batch writes it (with or without "v"): its level, read without the rest.
# Only a head with "v" is read alone: without one, a "v" may still come after the commands.
_HEAD = re.compile(rb'\{"t":\[\d+,\d+\],"v":(\d+),"c":')


def entry_level(data: bytes) -> Any:
    """The level of an entry payload (a follower's batch, before the leader appends it);
    None if it does not decode at all."""
    m = _HEAD.match(data)
    if m is not None:
        return int(m.group(1))
    try:
        return decode_batch(data).level
    except (ValueError, TypeError, KeyError):
        return None


def lowered(data: bytes, level: int) -> bytes:
    """A batch's payload at `level` at most: the same commands, applied by that level's
    rules (an older build's, which every member knows). A batch at `level` or below is
    returned as is; level 1 drops `"v"`, so the bytes are what a build before levels
    writes for the same commands. Call only on a payload this build can apply (`supported`)."""
    m = _HEAD.match(data)
    if m is None:  # level 1, or another layout (not this build's): read whole, re-encoded if above
        if b'"v"' not in data:  # no "v" key anywhere: level 1, kept by every level, so not decoded again
            return data
        batch = decode_batch(data)
        if batch.level <= level:
            return data
        batch.level = level
        return encode_batch(batch)
    if int(m.group(1)) <= level:
        return data
    v = b"" if level == LEVEL_BEFORE_LEVELS else b'"v":%d,' % level
    return data[:m.start(1) - len(b'"v":')] + v + data[m.end(1) + 1:]  # `"v":N,` replaced


HELD_BY_LOG = 0  # proposal_level's `by` when the applied log, not a member, sets the level


def proposal_level(own: int, me: int, leader: int, members: Iterable[int],
                   declared: Callable[[int], int | None],
                   applied: int = LEVEL_BEFORE_LEVELS) -> tuple[int, int | None] | None:
    """The level this node writes its entries at, and the node that holds it below `own`
    (None: `own` does; HELD_BY_LOG: `applied` does). The lowest level a member that must
    apply them can apply, but never below `applied` (capped at `own`), the highest level of
    an entry this node applied: a committed entry of a level shows that every member applies
    it (joining a member of an older build is a downgrade, not supported), so the level does
    not fall back to 1 when a member that is down has not declared one since a restart, as
    etcd's cluster version never goes down:

    - as the leader (`leader == me`): min of `own` and the level every other member of
      the configuration (voters and learners) declared on its Raft link to us; a member
      that declared none yet counts as level 1 (as etcd raises its cluster version only
      once every member reported);
    - as a follower, whose batches the leader appends: min of `own` and the leader's
      declared level (none: 1), so a leader of an older build gets batches it applies as
      every member does (and a leader of this build lowers them further to its own);
    - with no leader known (`leader == 0`): None, it proposes nothing.

    `declared(peer)`: the level the peer's latest Raft link to us declared (None: none yet).
    """
    if not leader:
        return None
    level, by = own, None
    for peer in ((leader,) if leader != me else members):
        if peer == me:
            continue
        theirs = declared(peer)
        theirs = LEVEL_BEFORE_LEVELS if theirs is None else theirs
        if theirs < level:
            level, by = theirs, peer
    floor = min(applied, own)
    if floor > level:
        return floor, HELD_BY_LOG
    return level, by


def supported(level: Any) -> bool:
    """Can this build apply an entry of `level`?"""
    return level.__class__ is int and 1 <= level <= ENTRY_LEVEL


def decode_batch(data: bytes) -> Batch:
    obj = orjson.loads(data)
    secs, nanos = obj["t"]
    return Batch(secs, nanos, obj.get("c", []), obj.get("init"), obj.get("auth"), obj.get("v", LEVEL_BEFORE_LEVELS))


@dataclass(slots=True)
class Attributed:
    """A store command made by `user` (decoded from its envelope)."""

    user: str
    command: Any
    uid: int | None = None  # the user's uid when it authenticated (None: any user of that name)


@dataclass(slots=True)
class AuthCommand:
    """A change to users and roles made by `user` (None: no user)."""

    user: str | None
    change: AuthChange
    uid: int | None = None  # as Attributed's


def attributed(user: str, request_json: Any, uid: int | None = None) -> dict[str, Any]:
    return _envelope("Attributed", user, uid, request_json)


def auth_command(user: str | None, change: AuthChange, uid: int | None = None) -> dict[str, Any]:
    return _envelope("AuthAdmin", user, uid, encode_change(change))


def _envelope(tag: str, user: str | None, uid: int | None, request_json: Any) -> dict[str, Any]:
    """`{tag: {"user", "uid", "request"}}`, without `uid` when there is none (entries as before it)."""
    env: dict[str, Any] = {"user": user, "request": request_json}
    if uid is not None:
        env["uid"] = uid
    return {tag: env}


def _uid(env: dict[str, Any]) -> int | None:
    uid = env.get("uid")
    return uid if type(uid) is int else None


def decode_command(obj: Any) -> Any:
    """A logged command: a store command, an Attributed or an AuthCommand
    (CodecError if it is none of them)."""
    if type(obj) is dict and len(obj) == 1:
        env = obj.get("Attributed")
        if type(env) is dict and type(env.get("user")) is str:
            return Attributed(env["user"], decode_command_request(env.get("request"), "Attributed.request"),
                              _uid(env))
        env = obj.get("AuthAdmin")
        if type(env) is dict and (env.get("user") is None or type(env.get("user")) is str):
            return AuthCommand(env.get("user"), decode_change(env.get("request")), _uid(env))
    return decode_command_request(obj)
