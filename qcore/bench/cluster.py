"""Start a qcore cluster on loopback the way a user would, over the wire.

Nodes are started as ``python -m qcore --id N --ws-addr 127.0.0.1:P
--config-file schemas.yaml --data-dir DIR`` with fresh data dirs and the
shipped (durable) settings. The cluster is formed with ``Init`` on node 1,
``AddLearner`` for the others and one ``ChangeMembership`` (SPEC 2.1); the
bench's entity type is created with ``SetSchema`` and its entities with
``CreateEntity``, pipelined, each then given a 64-byte ``Payload``.

With ``users=True`` (system ``qcore-users``) the cluster starts with users on
(Init's ``admin_password``), is set up as admin, and the load generator
authenticates as user ``bench``, whose one role allows exactly what the
workloads do, so every request's permissions are checked as for any user.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from pathlib import Path
from typing import Any, Callable

from qcore.bench.procs import Child, ChildGroup, wait_listening
from qcore.bench.targets import BENCH_TYPE, INT_FIELD, STRING_FIELD, write_op
from qcore.bench.admin_conn import AdminConn, AdminError, check_ok
from qcore.local_procs import free_ports, node_argv
from qcore.local_tls import LocalTls

logger = logging.getLogger(__name__)

#: The config file every bench node starts with: only the conventional Object base type.
SCHEMAS_YAML = """\
schemas:
  - entity_type: Object
    inherit: null
    fields:
      Name:     {default_value: {String: ""}, rank: 0}
      Parent:   {default_value: {EntityReference: null}, rank: 1}
      Children: {default_value: {EntityList: []}, rank: 2}
tree: []
"""


def _field(name: str, default: dict[str, Any], rank: int) -> dict[str, Any]:
    return {
        "field_type": name,
        "default_value": default,
        "rank": rank,
        "read_permission": None,
        "write_permission": None,
        "choices": None,
    }


BENCH_SCHEMA: dict[str, Any] = {
    "entity_type": BENCH_TYPE,
    "inherit": "Object",
    "fields": {
        STRING_FIELD: _field(STRING_FIELD, {"String": ""}, 3),
        INT_FIELD: _field(INT_FIELD, {"Int": 0}, 4),
    },
}


class QcoreCluster(ChildGroup):
    """``nodes`` qcore processes forming one cluster."""

    system = "qcore"
    target = "qcore"

    def __init__(self, nodes: int, workdir: Path, extra_args: list[str] | None = None,
                 tls: LocalTls | None = None, users: bool = False) -> None:
        """``tls``: serve TLS with a peer secret (system ``qcore-tls``); ``users``: users on,
        the load generator a checked user (system ``qcore-users``)."""
        self.nodes = nodes
        self.tls = tls
        self.client_tls = tls.client() if tls is not None else None
        # users on: (admin password, the load generator's (user, password))
        self.users = (secrets.token_hex(12), ("bench", secrets.token_hex(12))) if users else None
        self.system = "qcore" + ("-tls" if tls is not None else "") + ("-users" if users else "")
        self.workdir = workdir / f"{self.system}-{nodes}"
        self.extra_args = [*(tls.node_args() if tls is not None else []), *(extra_args or [])]
        self.ports = free_ports(nodes)
        self.endpoints = [f"127.0.0.1:{p}" for p in self.ports]
        self.children: list[Child] = []
        self.leader = self.endpoints[0]

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "schemas.yaml"
        config.write_text(SCHEMAS_YAML)
        for i, ep in enumerate(self.endpoints, start=1):
            argv = node_argv(i, ep, config, self.workdir / f"node-{i}", *self.extra_args)
            self.children.append(Child(f"qcore node {i}", argv, self.workdir / f"node-{i}.log"))
        for child, port in zip(self.children, self.ports):
            await wait_listening(child, "127.0.0.1", port)
        await self._form()

    @property
    def _admin_login(self) -> tuple[str, str] | None:
        return ("admin", self.users[0]) if self.users is not None else None

    async def _form(self) -> None:
        first = await AdminConn.open(self.endpoints[0], self.client_tls)
        if self.users is not None:
            check_ok("Init", (await first.request("Init", nodes=[], admin_password=self.users[0]))["response"])
            await first.close()
            first = await AdminConn.open(self.endpoints[0], self.client_tls, self._admin_login)
        else:
            check_ok("Init", (await first.request("Init", nodes=[]))["response"])
        try:
            await self._wait_leader(first)
            for i, ep in enumerate(self.endpoints[1:], start=2):
                check_ok(f"AddLearner {i}", (await first.request("AddLearner", timeout=60, node_id=i, node_addr=ep))["response"])
            if self.nodes > 1:
                members = list(range(1, self.nodes + 1))
                check_ok("ChangeMembership", (await first.request("ChangeMembership", timeout=60, members=members))["response"])
            await first.perform("SetSchema", entity_schema=BENCH_SCHEMA)
            if self.users is not None:
                user, password = self.users[1]
                check_ok("RoleAdd", (await first.request("AuthAdmin", request={"RoleAdd": {"role": "bench", "permissions": [
                    {"entity_type": BENCH_TYPE, "field": "*", "access": ["read", "write", "create"]}]}}))["response"])
                check_ok("UserAdd", (await first.request("AuthAdmin", request={"UserAdd": {
                    "user": user, "password": password, "roles": ["bench"], "entity": None}}))["response"])
            leader = (await first.request("GetMetrics"))["response"].get("current_leader")
            if isinstance(leader, int) and 1 <= leader <= self.nodes:
                # Endpoints leader first, as for the peers: client i meets the same role everywhere.
                self.leader = self.endpoints[leader - 1]
                self.endpoints.insert(0, self.endpoints.pop(leader - 1))
        finally:
            await first.close()
        logger.info("qcore cluster of %d formed on %s", self.nodes, self.endpoints)

    async def _wait_leader(self, conn: AdminConn, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            metrics = (await conn.request("GetMetrics"))["response"]
            if metrics.get("state") == "Leader":
                return
            if time.monotonic() > deadline:
                raise AdminError(f"node 1 did not become leader: {metrics}")
            await asyncio.sleep(0.05)  # polling metrics: the protocol has no leader-elected event

    async def prepare(self, entities: int) -> dict[str, Any]:
        """Create ``entities`` bench entities, each with a 64-byte ``Payload`` as the peers' keys
        get a 64-byte value (so reads fetch the same size everywhere, whether or not writes ran
        first); returns the load generator's target parameters."""
        ids = await create_entities(self.leader, entities, tls=self.client_tls, login=self._admin_login,
                                    writes=_fill_payload)
        sample = ids if len(ids) <= 10_000 else [ids[i] for i in range(0, len(ids), len(ids) // 10_000)][:10_000]
        params: dict[str, Any] = {"entities": sample}
        if self.tls is not None:
            params["tls_ca"] = str(self.tls.ca)
        if self.users is not None:
            params["login"] = list(self.users[1])
        return params


def _fill_payload(eid: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The write every bench entity gets once created: a 64-byte Payload (etcd's and
    PySyncObj's fills write 64 bytes per key)."""
    return [write_op(eid, STRING_FIELD, {"String": "x" * 64})]


async def create_entities(
    endpoint: str,
    count: int,
    connections: int = 4,
    window: int = 256,
    tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
    *,
    entity_type: str = BENCH_TYPE,
    parent_of: Callable[[int], dict[str, Any] | None] | None = None,
    writes: Callable[[dict[str, Any], int], list[dict[str, Any]]] | None = None,
) -> list[list[Any]]:
    """Create ``count`` entities with many requests in flight; returns ``[[type, id], ...]``.

    Entity ``k`` (0-based) goes under ``parent_of(k)`` (default: none) and,
    if ``writes`` is given, gets ``writes(eid, k)`` written right after it is
    created (one UpdateEntity). A request that fails (e.g. "leadership
    changed ... not applied" during an election) is retried a few times: a
    fill should survive an election, and the number of retries is logged so
    an unstable cluster is still noticed.
    """
    out: list[list[Any]] = []
    retries = 0
    per_conn = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    starts = [sum(per_conn[:i]) for i in range(connections)]

    async def worker(n: int, tag: int) -> None:
        conn = await AdminConn.open(endpoint, tls, login)
        sem = asyncio.Semaphore(window)

        async def retried(command: str, **fields: Any) -> dict[str, Any]:
            nonlocal retries
            for attempt in range(10):
                try:
                    return await conn.perform(command, timeout=120, **fields)
                except AdminError:
                    if attempt == 9:
                        raise
                    retries += 1
                    await asyncio.sleep(0.1 * (attempt + 1))  # back off while an election settles
            raise AssertionError("unreachable")

        async def one(k: int) -> None:
            g = starts[tag] + k
            async with sem:
                parent = parent_of(g) if parent_of is not None else None
                resp = await retried("CreateEntity", entity_type=entity_type, parent_id=parent, name=f"e{tag}-{k}")
                eid = resp["response"]
                if writes is not None:
                    await retried("UpdateEntity", request=writes(eid, g))
                out.append([eid["typ"], eid["id"]])

        try:
            # Tasks in chunks: a million pending coroutines at once would cost memory, not speed.
            for start in range(0, n, 10_000):
                await asyncio.gather(*(one(k) for k in range(start, min(n, start + 10_000))))
        finally:
            await conn.close()

    await asyncio.gather(*(worker(n, t) for t, n in enumerate(per_conn) if n))
    if retries:
        logger.warning("creating %d entities needed %d retries (leader changes or timeouts)", count, retries)
    return out


class ExternalQcore(QcoreCluster):
    """A qcore cluster someone else started (``qcore bench run --connect``), e.g. under a profiler.

    It must already be initialised (start a single node with ``--init``, or
    form the cluster yourself); the bench only sets its schema and creates its
    entities. List the leader first: client *i* goes to endpoint *i mod n*.
    """

    def __init__(self, endpoints: list[str]) -> None:
        self.tls = self.client_tls = None
        self.users = None
        self.nodes = len(endpoints)
        self.endpoints = list(endpoints)
        self.leader = self.endpoints[0]
        self.children = []
        self.extra_args = []

    async def start(self) -> None:
        conn = await AdminConn.open(self.leader)
        try:
            await conn.perform("SetSchema", entity_schema=BENCH_SCHEMA)
        finally:
            await conn.close()

    def rss_bytes(self) -> list[int]:
        return []

    def check_alive(self) -> None:
        """Not ours to watch."""

    def stop(self) -> None:
        """Not ours to stop."""
