"""Real node processes on loopback: start, kill -9, pause, restart, form a cluster.

Each node is ``python -m qcore`` in its own process with its own data dir
under the run's directory; its stdout/stderr go to ``node-<id>.log`` there
(appended across restarts, with a marker line per start). Peer links go
through :class:`qcore.chaos.proxy.Network` (``--peer-override``) so that the
nemesis can cut them; clients connect to the nodes directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qcore.chaos.proxy import Network
from qcore.chaos.raw_client import NodeRemoved, RawClient
from qcore.local_procs import free_ports, log_tail, node_argv

logger = logging.getLogger(__name__)

__all__ = ["NodeProcess", "Cluster", "Logins", "registers_config"]


@dataclass(frozen=True)
class Logins:
    """The users of a ``--users`` run: the harness manages the cluster as admin,
    and the workload reads and writes as a user whose one role allows exactly that."""

    admin_password: str
    worker: tuple[str, str]

    @classmethod
    def fresh(cls) -> "Logins":
        return cls(secrets.token_hex(12), ("worker", secrets.token_hex(12)))

    @property
    def admin(self) -> tuple[str, str]:
        return ("admin", self.admin_password)

    #: What the workload's role grants: read and write the registers, nothing else.
    WORKER_PERMISSIONS = ({"entity_type": "Register", "field": "Value", "access": ["read", "write"]},)


def registers_config(count: int) -> str:
    """The schema file of a chaos run: ``count`` Register entities with an Int ``Value``."""
    lines = [
        "schemas:",
        "  - entity_type: Object",
        "    inherit: null",
        "    fields:",
        "      Name: {default_value: {String: \"\"}, rank: 0}",
        "      Parent: {default_value: {EntityReference: null}, rank: 1}",
        "      Children: {default_value: {EntityList: []}, rank: 2}",
        "  - entity_type: Root",
        "    inherit: Object",
        "    fields: {}",
        "  - entity_type: Register",
        "    inherit: Object",
        "    fields:",
        "      Value: {default_value: {Int: 0}, rank: 3}",
        "tree:",
        "  - entity_type: Root",
        "    name: Root",
        "    children:",
    ]
    lines += [f"      - {{entity_type: Register, name: r{i}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


@dataclass
class NodeProcess:
    id: int
    port: int
    data_dir: Path
    log_path: Path
    config_file: Path
    peer_overrides: dict[int, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "qcore"])
    proc: asyncio.subprocess.Process | None = None
    paused: bool = False
    expected_exit: bool = True  # False while running: an exit is then a crash
    crashes: list[str] = field(default_factory=list)
    _watchers: set[asyncio.Task[None]] = field(default_factory=set)  # the loop keeps only weak references

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def command(self) -> list[str]:
        overrides = [arg for j, addr in sorted(self.peer_overrides.items()) for arg in ("--peer-override", f"{j}={addr}")]
        return node_argv(self.id, self.addr, self.config_file, self.data_dir, *overrides, *self.extra_args,
                         program=self.program)

    async def start(self) -> None:
        assert not self.running, f"node {self.id} already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== chaos: start node {self.id} at {time.time():.3f}: {' '.join(self.command())}\n".encode())
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )
        self.paused = False
        self.expected_exit = False
        watcher = asyncio.get_running_loop().create_task(self._watch(self.proc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not self.expected_exit and proc is self.proc:
            msg = f"node {self.id} exited by itself with code {code}"
            logger.error(msg)
            self.crashes.append(msg)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    async def kill(self) -> None:
        """kill -9 (after resuming a paused node the signal still lands)."""
        self.expected_exit = True
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()
        self.paused = False

    async def terminate(self, timeout: float = 10.0) -> None:
        """A graceful stop; kill -9 if it does not exit in time."""
        self.expected_exit = True
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                await self.kill()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines) or "(no log)"


class Cluster:
    """N voters (ids 1..N) plus ``spares`` extra nodes for membership changes.

    Spares are started with the others (an uninitialised node only serves
    metrics and Raft) and join through AddLearner when the nemesis wants them.
    """

    def __init__(self, base_dir: Path, nodes: int, spares: int = 0, registers: int = 64,
                 proxies: bool = True, extra_args: list[str] | None = None,
                 program: list[str] | None = None, client_tls: ssl.SSLContext | None = None,
                 logins: Logins | None = None) -> None:
        """``client_tls``: the nodes serve TLS (``extra_args`` has their flags); clients verify with this.
        ``logins``: form the cluster with users on (SPEC 8.3) and talk to it as them."""
        self.client_tls = client_tls
        self.logins = logins
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = self.base_dir / "schemas.yaml"
        self.config_file.write_text(registers_config(registers))
        ids = list(range(1, nodes + spares + 1))
        ports = dict(zip(ids, free_ports(len(ids))))
        self.network: Network | None = Network(ports) if proxies else None
        self.nodes: dict[int, NodeProcess] = {
            i: NodeProcess(i, ports[i], self.base_dir / f"node-{i}", self.base_dir / f"node-{i}.log",
                           self.config_file, extra_args=list(extra_args or []),
                           program=list(program or [sys.executable, "-m", "qcore"]))
            for i in ids
        }
        self.size = nodes  # the number of voters the nemesis keeps coming back to
        self.voters: set[int] = set(range(1, nodes + 1))
        self.members: set[int] = set(self.voters)  # voters and learners
        self._admin: dict[int, RawClient] = {}

    # --- process control ---------------------------------------------------------------

    def admin(self, node: int) -> RawClient:
        if node not in self._admin:
            self._admin[node] = RawClient(self.nodes[node].addr, name=f"admin{node}", tls=self.client_tls,
                                           login=self.logins.admin if self.logins else None)
        return self._admin[node]

    async def _drop_admin(self, node: int) -> None:
        c = self._admin.pop(node, None)
        if c is not None:
            await c.close()

    async def start(self) -> None:
        """Start every process (voters and spares) and wait until each answers."""
        if self.network is not None:
            await self.network.start()
            for n in self.nodes.values():
                n.peer_overrides = self.network.peer_overrides(n.id)
        for n in self.nodes.values():
            await n.start()
        for n in self.nodes.values():
            await self.wait_answering(n.id)

    async def wait_answering(self, node: int, timeout: float = 30.0) -> dict[str, Any]:
        """Poll GetMetrics until the process answers (it is a separate process:
        there is no event to await)."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.nodes[node].running:
                raise RuntimeError(f"node {node} is not running:\n{self.nodes[node].tail()}")
            try:
                return await self.metrics(node, timeout=2.0)
            except NodeRemoved:
                return {}  # it answers; that it was removed is all it can say (users on)
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                await self._drop_admin(node)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node} does not answer GetMetrics: {e!r}\n{self.nodes[node].tail()}") from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def metrics(self, node: int, timeout: float = 2.0) -> dict[str, Any]:
        resp = await self.admin(node).management("GetMetrics", {}, timeout)
        if isinstance(resp, dict) and "Ok" in resp and isinstance(resp["Ok"], dict):
            resp = resp["Ok"]
        return dict(resp)

    @property
    def worker_login(self) -> tuple[str, str] | None:
        return self.logins.worker if self.logins else None

    async def form(self) -> None:
        """Init node 1 alone, then AddLearner + ChangeMembership for the other voters
        (with users: Init makes the admin, and the workload's user is added)."""
        init: dict[str, Any] = {"nodes": []}
        if self.logins is not None:
            init["admin_password"] = self.logins.admin_password
        await self.admin(1).management("Init", init, 30.0)
        await self._drop_admin(1)  # opened before users were on
        await self.wait_leader({1})
        if self.logins is not None:
            user, password = self.logins.worker
            await self._leader_call("AuthAdmin", {"request": {"RoleAdd": {
                "role": "registers", "permissions": list(Logins.WORKER_PERMISSIONS)}}}, 30.0)
            await self._leader_call("AuthAdmin", {"request": {"UserAdd": {
                "user": user, "password": password, "roles": ["registers"], "entity": None}}}, 30.0)
        for i in sorted(self.voters - {1}):
            await self.add_learner(i)
        await self.change_membership(sorted(self.voters))

    async def add_learner(self, node: int, timeout: float = 60.0) -> None:
        await self._leader_call("AddLearner", {"node_id": node, "node_addr": self.nodes[node].addr}, timeout)
        self.members.add(node)

    async def change_membership(self, voters: list[int], timeout: float = 60.0) -> None:
        await self._leader_call("ChangeMembership", {"members": voters}, timeout)
        self.voters = set(voters)

    async def remove_node(self, node: int, timeout: float = 60.0) -> None:
        """RemoveNode: a voter by joint consensus, as change_membership without it would."""
        await self._leader_call("RemoveNode", {"node_id": node}, timeout)
        self.voters.discard(node)
        self.members.discard(node)

    async def _leader_call(self, msg: str, fields: dict[str, Any], timeout: float) -> Any:
        """Send a management write to any live voter (the node forwards it)."""
        last: Exception | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = await self.find_leader()
            targets = [leader] if leader else [v for v in sorted(self.voters) if self.nodes[v].running]
            for t in targets:
                try:
                    return await self.admin(t).management(msg, fields, max(1.0, deadline - time.monotonic()))
                except Exception as e:  # noqa: BLE001 - retried until the deadline
                    last = e
                    await self._drop_admin(t)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{msg} {fields} failed: {last!r}")

    async def refresh_membership(self) -> None:
        """Take voters and learners from the leader's metrics (after faults, the
        harness's own bookkeeping may be behind a membership change that failed
        half-way)."""
        leader = await self.find_leader()
        if leader is None:
            return
        m = (await self.metrics(leader)).get("membership_config") or {}
        membership = m.get("membership") or {}
        configs = membership.get("configs") or []
        voters = {int(v) for c in configs for v in c}
        learners = {int(v) for v in membership.get("learners") or []}
        if voters:
            self.voters = voters
            self.members = voters | learners

    async def find_leader(self) -> int | None:
        """The leader of the highest term that some live, unpaused node reports."""
        best: tuple[int, int] | None = None
        for n in self.nodes.values():
            if not n.running or n.paused:
                continue
            try:
                m = await self.metrics(n.id, timeout=1.0)
            except Exception:  # noqa: BLE001
                await self._drop_admin(n.id)
                continue
            if m.get("state") == "Leader":
                term = int(m.get("current_term", 0))
                if best is None or term > best[0]:
                    best = (term, n.id)
        return best[1] if best else None

    async def wait_leader(self, among: set[int] | None = None, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = await self.find_leader()
            if leader is not None and (among is None or leader in among):
                return leader
            await asyncio.sleep(0.1)
        raise RuntimeError("no leader elected in time\n" + self.tails())

    async def kill(self, node: int) -> None:
        await self.nodes[node].kill()
        await self._drop_admin(node)
        if self.network is not None:
            self.network.reset_node(node)

    async def restart(self, node: int) -> None:
        if self.nodes[node].running:
            await self.kill(node)
        await self.nodes[node].start()
        await self.wait_answering(node)

    async def restart_all(self) -> None:
        """Whole-cluster crash: kill -9 every node, then start them all."""
        for n in list(self.nodes):
            if self.nodes[n].running:
                await self.kill(n)
        for proc in self.nodes.values():
            await proc.start()
        for n in self.nodes:
            await self.wait_answering(n)

    def pause(self, node: int) -> None:
        self.nodes[node].pause()

    def resume(self, node: int) -> None:
        self.nodes[node].resume()

    async def stop(self) -> None:
        for c in list(self._admin):
            await self._drop_admin(c)
        for n in self.nodes.values():
            if n.running:
                await n.terminate()
        if self.network is not None:
            await self.network.stop()

    def crashes(self) -> list[str]:
        return [c for n in self.nodes.values() for c in n.crashes]

    def tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- node {n.id} log tail ({n.log_path}) ---\n{n.tail(lines)}" for n in self.nodes.values())
