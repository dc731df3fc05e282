"""What each workload sends to each system, and how a reply is judged.

A target turns (workload, client, sequence number) into one request for its
system and says whether the reply was a success. The load generator is the
same for every system; only this mapping differs, so the "same workload
shape" promise of ``qcore bench --vs`` is kept in one file:

==========  ==================================  ==========================  ==========================
workload    qcore (WebSocket JSON)              etcd (JSON gateway)         pysyncobj (bench server)
==========  ==================================  ==========================  ==========================
write       UpdateEntity [Write Set 64 B Str]   /v3/kv/put 64 B value       replicated set(k, 64 B)
add         UpdateEntity [Write Add Int 1]      (no equivalent)             replicated add(k, 1)
read        UpdateEntity [Read] linearizable    /v3/kv/range linearizable   local get (stale: it has
                                                                            no linearizable read)
mixed       90% read / 10% write                90% range / 10% put         90% get / 10% set
create      CreateEntity                        put of a new key            replicated set of a new key
batch       UpdateEntity with 10 Set writes     /v3/kv/txn with 10 puts     replicated set of 10 keys
==========  ==================================  ==========================  ==========================
"""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson

from qcore.bench.conns import HttpConn, WsConn
from qcore.tls import client_context

WORKLOADS = ("write", "add", "read", "mixed", "create", "batch")

#: Field names of the bench entity type (see qcore.bench.cluster).
BENCH_TYPE = "BenchItem"
STRING_FIELD = "Payload"
INT_FIELD = "Counter"


def payload(client: int, seq: int) -> str:
    """A 64-byte ASCII value that differs per write."""
    return f"{client:08x}{seq:08x}" * 4


class Target:
    """Base: a request factory and a reply judge for one system."""

    name = "base"
    workloads: frozenset[str] = frozenset(WORKLOADS)

    async def open(self, endpoint: str) -> Any:
        raise NotImplementedError

    def request(self, workload: str, client: int, seq: int, rng: random.Random) -> Any:
        raise NotImplementedError

    def ok(self, reply: Any) -> bool:
        raise NotImplementedError


def write_op(eid: dict[str, Any], field: str, value: dict[str, Any], adjust: str = "Set") -> dict[str, Any]:
    """One ``Write`` request of an UpdateEntity batch."""
    return {
        "Write": {
            "entity_id": eid,
            "field_type": field,
            "value": value,
            "push_condition": "Always",
            "adjust_behavior": adjust,
            "write_time": None,
            "writer_id": None,
        }
    }


def _read(eid: dict[str, Any], field: str) -> dict[str, Any]:
    return {"Read": {"entity_id": eid, "field_type": field, "value": None, "write_time": None, "writer_id": None}}


class QcoreTarget(Target):
    """qcore's wire protocol (SPEC 2.2); also served by the no-op server."""

    name = "qcore"

    def __init__(self, entities: list[list[Any]], tls_ca: str | None = None, login: list[str] | None = None) -> None:
        """``tls_ca``: the nodes serve TLS; verify them against this CA file. ``login``:
        [user, password] each connection authenticates as (users on)."""
        if not entities:
            raise ValueError("qcore target needs at least one entity")
        self._entities = [{"typ": t, "id": int(i)} for t, i in entities]
        self._tls = client_context(tls_ca) if tls_ca else None
        self._login = login

    async def open(self, endpoint: str) -> WsConn:
        conn = await WsConn.open(endpoint, self._tls)
        if self._login is not None:
            reply = orjson.loads(await conn.call(authenticate_frame(*self._login)))
            if "Ok" not in (reply.get("AuthenticateResponse") or {}).get("response", {}):
                await conn.close()
                raise ConnectionError(f"cannot authenticate at {endpoint}: {reply}")
        return conn

    def request(self, workload: str, client: int, seq: int, rng: random.Random) -> bytes:
        ents = self._entities
        if workload == "mixed":
            workload = "read" if rng.random() < 0.9 else "write"
        if workload == "write":
            reqs = [write_op(rng.choice(ents), STRING_FIELD, {"String": payload(client, seq)})]
        elif workload == "read":
            reqs = [_read(rng.choice(ents), STRING_FIELD)]
        elif workload == "add":
            reqs = [write_op(rng.choice(ents), INT_FIELD, {"Int": 1}, "Add")]
        elif workload == "batch":
            reqs = [write_op(e, STRING_FIELD, {"String": payload(client, seq)}) for e in rng.sample(ents, min(10, len(ents)))]
        elif workload == "create":
            cmd = {"CreateEntity": {"entity_type": BENCH_TYPE, "parent_id": None, "name": f"c{client}-{seq}"}}
            return orjson.dumps({"Perform": {"id": f"{client}-{seq}", "request": cmd}})
        else:
            raise ValueError(f"unknown workload {workload!r}")
        return orjson.dumps({"Perform": {"id": f"{client}-{seq}", "request": {"UpdateEntity": {"request": reqs}}}})

    def ok(self, reply: bytes) -> bool:
        msg = orjson.loads(reply)
        body = msg.get("PerformResponse")
        if body is None:
            return False
        resp = body.get("response")
        if not isinstance(resp, dict):
            return False
        for inner in resp.values():
            return isinstance(inner, dict) and inner.get("error") is None
        return False


def authenticate_frame(user: str, password: str) -> bytes:
    """The Authenticate a load-generator connection sends first when users are on."""
    return orjson.dumps({"Authenticate": {"id": "login", "user": user, "password": password}})


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


class EtcdTarget(Target):
    """etcd v3's grpc-gateway JSON API over keep-alive HTTP/1.1."""

    name = "etcd"
    workloads = frozenset({"write", "read", "mixed", "create", "batch"})

    def __init__(self, keys: int) -> None:
        self._keys = [_b64(f"bench/k{i:07d}") for i in range(keys)]

    async def open(self, endpoint: str) -> HttpConn:
        return await HttpConn.open(endpoint)

    def _put(self, key: str, client: int, seq: int) -> tuple[bytes, bytes]:
        return b"/v3/kv/put", orjson.dumps({"key": key, "value": _b64(payload(client, seq))})

    def request(self, workload: str, client: int, seq: int, rng: random.Random) -> tuple[bytes, bytes]:
        if workload == "mixed":
            workload = "read" if rng.random() < 0.9 else "write"
        if workload == "write":
            return self._put(rng.choice(self._keys), client, seq)
        if workload == "read":
            return b"/v3/kv/range", orjson.dumps({"key": rng.choice(self._keys)})
        if workload == "create":
            return self._put(_b64(f"bench/c{client}-{seq}"), client, seq)
        if workload == "batch":
            value = _b64(payload(client, seq))
            ops = [{"requestPut": {"key": k, "value": value}} for k in rng.sample(self._keys, min(10, len(self._keys)))]
            return b"/v3/kv/txn", orjson.dumps({"success": ops})
        raise ValueError(f"etcd has no {workload!r} workload")

    def ok(self, reply: tuple[int, bytes]) -> bool:
        status, body = reply
        if status != 200:
            return False
        msg = orjson.loads(body)
        return "error" not in msg and "code" not in msg


class PysyncobjTarget(Target):
    """The tiny JSON-over-WebSocket server in front of each PySyncObj process."""

    name = "pysyncobj"

    def __init__(self, keys: int) -> None:
        self._keys = [f"k{i}" for i in range(keys)]

    async def open(self, endpoint: str) -> WsConn:
        return await WsConn.open(endpoint)

    def request(self, workload: str, client: int, seq: int, rng: random.Random) -> bytes:
        rid = f"{client}-{seq}"
        if workload == "mixed":
            workload = "read" if rng.random() < 0.9 else "write"
        if workload == "write":
            msg: dict[str, Any] = {"id": rid, "op": "set", "k": rng.choice(self._keys), "v": payload(client, seq)}
        elif workload == "read":
            msg = {"id": rid, "op": "get", "k": rng.choice(self._keys)}
        elif workload == "add":
            msg = {"id": rid, "op": "add", "k": "n" + rng.choice(self._keys), "v": 1}
        elif workload == "create":
            msg = {"id": rid, "op": "set", "k": f"c{client}-{seq}", "v": payload(client, seq)}
        elif workload == "batch":
            value = payload(client, seq)
            msg = {"id": rid, "op": "batch", "v": [[k, value] for k in rng.sample(self._keys, min(10, len(self._keys)))]}
        else:
            raise ValueError(f"unknown workload {workload!r}")
        return orjson.dumps(msg)

    def ok(self, reply: bytes) -> bool:
        return orjson.loads(reply).get("ok") is True


class NoopHttpTarget(EtcdTarget):
    """etcd's request shapes against the no-op HTTP server (client ceiling for HTTP)."""

    name = "noop-http"
    workloads = frozenset(WORKLOADS)

    def request(self, workload: str, client: int, seq: int, rng: random.Random) -> tuple[bytes, bytes]:
        return super().request("write" if workload == "add" else workload, client, seq, rng)


def make_target(kind: str, params: dict[str, Any]) -> Target:
    """Build the target named in a load-generator spec."""
    if kind in ("qcore", "noop"):
        return QcoreTarget(params["entities"], params.get("tls_ca"), params.get("login"))
    if kind == "etcd":
        return EtcdTarget(int(params.get("keys", 1000)))
    if kind == "noop-http":
        return NoopHttpTarget(int(params.get("keys", 1000)))
    if kind == "pysyncobj":
        return PysyncobjTarget(int(params.get("keys", 1000)))
    raise ValueError(f"unknown target {kind!r}")
