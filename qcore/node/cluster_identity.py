"""Which cluster a node belongs to, so that nodes of different clusters
never exchange Raft messages (etcd's cluster id).

A cluster's identity is fixed when it is formed and kept in the data dir
(`cluster.json`):

* `--initial-cluster`: derived from the member list and the config file's
  digest, so every member computes the same one without talking, and
  members whose config files differ compute different ones;
* `Init`: a random id plus the config file's digest;
* `qcore snapshot restore`: derived from the member list and the snapshot's
  checksum (a restored cluster is a new cluster);
* a node that joins (`--join`, `AddLearner`) has none and adopts the first
  one a peer's connection carries.

`cluster.json` also names the node whose data dir it is: a node started
with another `--id` on it refuses to start (`DataDirMismatch`), as etcd
refuses a member id mismatch, since running on another member's term, vote
and log breaks Raft's guarantees (a vote cast twice in one term).

Outbound peer connections carry it in their path
(`/raft?...&cluster=ID&config=DIGEST`); the receiver refuses a different
one at the handshake (HTTP 403, the reason in the body) and logs why. Both
sides remember the refusal for a minute, for /ready and GetMetrics.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from qcore.storage import DataDirDamaged
from qcore.storage.fs import FileSystem

log = logging.getLogger(__name__)

FILE_NAME = "cluster.json"
#: In a data dir: a `qcore snapshot restore` into it (a mount point) that did not finish moving its files in.
UNFINISHED_RESTORE = ".restoring"
_REMEMBER = 60.0  # seconds a refusal counts for /ready
_LOG_EVERY = 30.0  # seconds between two log lines about the same peer


@dataclass(frozen=True, slots=True)
class Identity:
    cluster_id: str
    config_sha256: str | None = None


def config_digest(load_config_json: Any) -> str:
    """The digest of a config file's content (not its formatting or comments)."""
    return hashlib.sha256(orjson.dumps(load_config_json, option=orjson.OPT_SORT_KEYS)).hexdigest()


def derived_id(members: dict[int, str], salt: str) -> str:
    """The same id on every member that is given the same members and salt."""
    text = "qcore-cluster\n" + "".join(f"{i}={a}\n" for i, a in sorted(members.items())) + salt
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def random_id() -> str:
    return secrets.token_hex(8)


def from_path(path: str) -> Identity | None:
    """The identity a peer connection's request path declares, if any."""
    query = parse_qs(urlsplit(path).query)
    ids = query.get("cluster")
    if not ids:
        return None
    configs = query.get("config")
    return Identity(ids[0], configs[0] if configs else None)


def explain(me: int, ours: Identity, peer: int, theirs: Identity) -> str:
    if ours.config_sha256 and theirs.config_sha256 and ours.config_sha256 != theirs.config_sha256:
        return (
            f"node {me} and node {peer} were started with different config files (sha256 "
            f"{ours.config_sha256[:12]}… and {theirs.config_sha256[:12]}…): every member of a cluster "
            f"formed with --initial-cluster must be started with the same config file"
        )
    return (
        f"node {me} belongs to cluster {ours.cluster_id} and node {peer} to cluster {theirs.cluster_id} "
        f"(different --initial-cluster member lists or --admin-password-file, or two different clusters)"
    )


class DataDirMismatch(Exception):
    """The data dir holds another node's state (`cluster.json` names another id)."""


class ClusterIdentity:
    def __init__(self, node_id: int, data_dir: Path | None) -> None:
        """`data_dir` None: kept in memory only (--in-memory)."""
        self._me = node_id
        self._path = data_dir / FILE_NAME if data_dir is not None else None
        self.current: Identity | None = self._load()
        self._refused: dict[int, tuple[float, str]] = {}  # peer -> (when, why)
        self._logged: dict[int, float] = {}

    def _load(self) -> Identity | None:
        if self._path is None or not self._path.exists():
            return None
        try:
            obj = orjson.loads(self._path.read_bytes())
            identity = Identity(str(obj["cluster_id"]), obj.get("config_sha256"))
            owner = obj.get("node_id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            # Written atomically (write_identity): a crash cannot leave it so, damage or an edit did.
            raise DataDirDamaged(str(self._path.parent),
                                 f"{FILE_NAME} is not the cluster identity qcore writes ({exc})") from None
        if owner is None:  # written before cluster.json named its node: it is this node's from now on
            write_identity(self._path.parent, identity, self._me)
        elif owner != self._me:
            raise DataDirMismatch(
                f"data dir {self._path.parent} holds the state of node {owner}, not of --id {self._me}: "
                f"start node {owner} on it, or give node {self._me} its own data dir")
        return identity

    def set(self, identity: Identity) -> None:
        """Adopt `identity` and make it durable before anything depends on it."""
        if self._path is not None:  # first: an identity that failed to be written (a full disk) is not adopted
            write_identity(self._path.parent, identity, self._me)
        self.current = identity
        log.info("cluster id %s (config sha256 %s)", identity.cluster_id, identity.config_sha256)

    def query(self) -> str:
        """What outbound peer connections add to their path (`&cluster=...`)."""
        cur = self.current
        if cur is None:
            return ""
        params = {"cluster": cur.cluster_id}
        if cur.config_sha256:
            params["config"] = cur.config_sha256
        return "&" + urlencode(params)

    def check_inbound(self, peer_id: int, addr: str, theirs: Identity | None, trusted: bool = True) -> str | None:
        """None to accept a peer's connection, or why it is refused. Only a
        ``trusted`` caller (peer authentication off, or a peer that has
        authenticated: qcore.node.peer_gate) teaches a joining node its cluster
        or has its refusal remembered and logged; anyone else who declares
        another cluster is only refused."""
        ours = self.current
        if theirs is None:
            return None  # a peer that has no identity yet (or predates them)
        if ours is None:
            if trusted:
                self.set(theirs)  # a joining node learns its cluster from the first peer that calls
            return None
        if theirs.cluster_id == ours.cluster_id:
            return None
        why = explain(self._me, ours, peer_id, theirs)
        if trusted:
            self._note(peer_id, f"refusing Raft messages from node {peer_id} at {addr}: {why}")
        return why

    def note_refused_by(self, peer_id: int, why: str) -> None:
        """A peer refused our connection: for not being of its cluster, or for having
        been removed from it (qcore.node.removal)."""
        self._note(peer_id, f"node {peer_id} refuses our Raft messages: {why}")

    def _note(self, peer_id: int, why: str) -> None:
        now = time.monotonic()
        self._refused[peer_id] = (now, why)
        if now - self._logged.get(peer_id, -_LOG_EVERY) >= _LOG_EVERY:
            self._logged[peer_id] = now
            log.error("%s", why)

    def refusals(self) -> list[str]:
        """Refusals of the last minute, either way."""
        now = time.monotonic()
        return [why for when, why in self._refused.values() if now - when < _REMEMBER]


def write_identity(data_dir: Path, identity: Identity, node_id: int) -> None:
    """Write `cluster.json`, the cluster's identity and the id of the node whose dir it is, atomically and durably;
    an OSError that names the file if it cannot be (a full disk)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    tmp = path.with_name(FILE_NAME + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"cluster_id": identity.cluster_id, "config_sha256": identity.config_sha256,
                                  "node_id": node_id}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        FileSystem().fsync_dir(str(data_dir))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
