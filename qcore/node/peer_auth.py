"""Peer authentication by shared secret (SPEC 8.2): a sans-I/O handshake.

Both ends prove that they hold the cluster's secret without sending it,
over frames of the WebSocket connection the dialler opened:

    dialler                                        acceptor
    PeerAuth {Hello: node_id, nonce Nd, keys}  ->
                            <- PeerAuthResponse {Ok: {Challenge: node_id, nonce Na, key, mac}}
    PeerAuth {Proof: mac}                      ->
                            <- PeerAuthResponse {Ok: "Authenticated"}  (or {Err} and the connection closes)

Each MAC is HMAC-SHA256 under the chosen secret over a transcript that
binds the protocol version, the role of the side that computed it
("acceptor"/"dialler"), both node ids, both nonces and the key id. The
nonces are fresh random 32 bytes from each side, so a recorded handshake
replayed on a new connection fails (the other side's nonce differs), a
MAC of one role cannot be reflected as the other's, and a proof made for
one pair of nodes does not hold for another. MACs are compared with
`hmac.compare_digest`.

Rotation: a node may hold several secrets (``--peer-secret-file`` twice).
The dialler lists the ids of all it holds (``keys``: a keyed hash of each
secret, which tells nothing about it); the acceptor takes the first of its
own, in its order, that the dialler also holds, and says which in
``key``. So old and new secrets overlap during a rolling restart
(docs/security.md).

The classes here take and return frames as bytes and never touch a socket,
clock or task; a failure is a value (``error``), never an exception.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, refusal

__all__ = [
    "MIN_SECRET_BYTES",
    "NOT_A_PEER",
    "Acceptor",
    "Dialler",
    "PeerKeys",
    "SecretFileError",
    "load_secret",
    "write_secret",
]

MIN_SECRET_BYTES = 32
NONCE_BYTES = 32
_VERSION = b"qcore-peer-auth/1"
_MAX_KEYS = 8  # key ids a Hello may list
#: The reason every refusal of a peer message names (SPEC 8.2).
NOT_A_PEER = "not an authenticated peer"


class SecretFileError(Exception):
    """A peer secret file that cannot be used (message says why and what to do)."""


# -- the secret files -----------------------------------------------------------


def load_secret(path: Path) -> bytes:
    """The secret in ``path``: its bytes without trailing whitespace. Refused
    if shorter than MIN_SECRET_BYTES, not a regular file, or open to anyone
    but its owner (any group or other permission bit, as ssh and PostgreSQL
    refuse such key files): a secret that others can read proves nothing."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"peer secret file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise SecretFileError(
                f"peer secret file {path} has mode {stat.S_IMODE(st.st_mode):04o}: it must be readable by its "
                f"owner only (chmod 600 {path})")
        data = path.read_bytes().rstrip()
    except OSError as exc:
        raise SecretFileError(f"cannot read peer secret file {path}: {exc.strerror or exc}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise SecretFileError(
            f"peer secret file {path} holds {len(data)} bytes; at least {MIN_SECRET_BYTES} are needed "
            f"(make one with: qcore gen-secret FILE)")
    return data


def write_secret(path: Path) -> None:
    """Write a new secret (32 random bytes as 64 hex digits, so it survives
    copy and paste and configuration tools) to ``path``, mode 0600. Refuses
    to overwrite an existing file: it may be a cluster's current secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def key_id(secret: bytes) -> str:
    """A name for a secret that tells nothing about it (a keyed hash)."""
    return hmac.new(secret, b"qcore peer key id", hashlib.sha256).hexdigest()[:16]


class PeerKeys:
    """The secrets a node holds, in the order it prefers them."""

    def __init__(self, secrets_: Sequence[bytes]) -> None:
        if not secrets_:
            raise ValueError("no peer secret")
        self._by_id = {key_id(s): s for s in secrets_}
        self.ids = list(self._by_id)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> "PeerKeys":
        return cls([load_secret(p) for p in paths])

    def get(self, kid: str) -> bytes | None:
        return self._by_id.get(kid)


def _mac(secret: bytes, role: bytes, dialler: int, acceptor: int, nd: bytes, na: bytes, kid: str) -> bytes:
    transcript = b"\n".join(
        (_VERSION, role, str(dialler).encode(), str(acceptor).encode(), nd.hex().encode(), na.hex().encode(),
         kid.encode()))
    return hmac.new(secret, transcript, hashlib.sha256).digest()


# -- frame helpers ----------------------------------------------------------------


def _node_id(v: Any) -> int | None:
    return v if type(v) is int and 0 < v < 1 << 64 else None


def _hex(v: Any, size: int) -> bytes | None:
    if type(v) is not str or len(v) != 2 * size:
        return None
    try:
        return bytes.fromhex(v)
    except ValueError:
        return None


def _step(body: Any, name: str) -> dict[str, Any] | None:
    """``body[name]`` if ``body`` is ``{name: {...}}``."""
    if type(body) is dict and len(body) == 1 and type(body.get(name)) is dict:
        inner: dict[str, Any] = body[name]
        return inner
    return None


class State(enum.Enum):
    START = "start"
    WAITING = "waiting"  # dialler: for the challenge; acceptor: for the proof
    CONFIRMING = "confirming"  # dialler: proof sent, waiting for "Authenticated"
    DONE = "done"
    FAILED = "failed"


# -- the dialler ------------------------------------------------------------------


class Dialler:
    """The side that opened the connection.

    ``hello()`` gives the first frame; each frame received goes to
    ``receive()``, which returns the frame to send next, if any. ``done``
    once the acceptor confirmed; ``error`` says why it failed.
    """

    def __init__(self, keys: PeerKeys, node_id: int, expect: int | None = None,
                 nonce: Callable[[int], bytes] = os.urandom) -> None:
        self._keys = keys
        self.node_id = node_id
        self.expect = expect  # the node id we meant to reach, if known
        self._nonce = nonce(NONCE_BYTES)
        self.state = State.START
        self.error: str | None = None
        self.peer_id: int | None = None

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def hello(self) -> bytes:
        assert self.state is State.START
        self.state = State.WAITING
        return m.encode_message(m.PeerAuth(1, {"Hello": {
            "node_id": self.node_id, "nonce": self._nonce.hex(), "keys": self._keys.ids}}))

    def _fail(self, why: str) -> None:
        self.state = State.FAILED
        self.error = why

    def receive(self, data: bytes | str) -> bytes | None:
        if self.state not in (State.WAITING, State.CONFIRMING):
            self._fail(f"unexpected frame in state {self.state.value}")
            return None
        try:
            msg = m.decode_message(data)
        except m.ProtocolError as exc:
            self._fail(f"unreadable handshake reply: {exc.message}")
            return None
        if type(msg) is m.Error:
            self._fail(msg.error)
            return None
        if type(msg) is not m.PeerAuthResponse:
            self._fail(f"expected PeerAuthResponse, got {msg.TAG}")
            return None
        ok, value = m.result_of(msg.response)
        if not ok:
            self._fail(str(value))
            return None
        if self.state is State.CONFIRMING:
            if value != "Authenticated":
                self._fail(f"unexpected handshake reply {value!r}")
                return None
            self.state = State.DONE
            return None
        return self._on_challenge(_step(value, "Challenge"))

    def _on_challenge(self, ch: dict[str, Any] | None) -> bytes | None:
        if ch is None:
            self._fail("expected a Challenge")
            return None
        peer = _node_id(ch.get("node_id"))
        na = _hex(ch.get("nonce"), NONCE_BYTES)
        mac = _hex(ch.get("mac"), 32)
        kid = ch.get("key")
        if not isinstance(kid, str):
            self._fail("malformed Challenge")
            return None
        secret = self._keys.get(kid)
        if peer is None or na is None or mac is None:
            self._fail("malformed Challenge")
            return None
        if self.expect is not None and peer != self.expect:
            self._fail(f"expected node {self.expect} at this address, node {peer} answered")
            return None
        if secret is None:
            self._fail(f"the peer chose a secret this node does not hold ({kid!r})")
            return None
        if na == self._nonce:
            self._fail("the peer echoed our nonce")
            return None
        want = _mac(secret, b"acceptor", self.node_id, peer, self._nonce, na, kid)
        if not hmac.compare_digest(want, mac):
            self._fail(f"node {peer} did not prove it holds the peer secret")
            return None
        self.peer_id = peer
        self.state = State.CONFIRMING
        proof = _mac(secret, b"dialler", self.node_id, peer, self._nonce, na, kid)
        return m.encode_message(m.PeerAuth(2, {"Proof": {"mac": proof.hex()}}))


# -- the acceptor -----------------------------------------------------------------


class Acceptor:
    """The side that was connected to. Each PeerAuth request goes to
    ``on_request`` (or, as bytes, ``receive``), which returns the reply.
    ``authenticated`` once the dialler proved itself; after a failure every
    further request is refused too (one attempt per connection)."""

    def __init__(self, keys: PeerKeys, node_id: int, expect: int | None = None,
                 nonce: Callable[[int], bytes] = os.urandom) -> None:
        self._keys = keys
        self.node_id = node_id
        self.expect = expect  # the id the connection's path declared, if any
        self._nonce = nonce(NONCE_BYTES)
        self.state = State.START
        self.error: str | None = None
        self.peer_id: int | None = None
        self._proof: bytes = b""

    @property
    def authenticated(self) -> bool:
        return self.state is State.DONE

    @property
    def failed(self) -> bool:
        return self.state is State.FAILED

    def receive(self, data: bytes | str) -> bytes:
        try:
            msg = m.decode_message(data)
        except m.ProtocolError as exc:
            return self._refuse(exc.request_id if type(exc.request_id) in (str, int) else 0, exc.message)
        if type(msg) is not m.PeerAuth:
            return self._refuse(getattr(msg, "id", 0), f"expected PeerAuth, got {msg.TAG}")
        return m.encode_message(self.on_request(msg))

    def _refuse(self, rid: Any, why: str) -> bytes:
        return m.encode_message(self._refusal(rid, why))

    def _refusal(self, rid: Any, why: str) -> m.PeerAuthResponse:
        self.state = State.FAILED
        self.error = why
        reply: m.PeerAuthResponse = refusal(m.PeerAuthResponse, rid, Kind.UNAUTHENTICATED_PEER,
                                            f"peer handshake failed: {why}")
        return reply

    def on_request(self, msg: m.PeerAuth) -> m.PeerAuthResponse:
        if self.state is State.START:
            return self._on_hello(msg.id, _step(msg.request, "Hello"))
        if self.state is State.WAITING:
            return self._on_proof(msg.id, _step(msg.request, "Proof"))
        if self.state is State.DONE:
            return self._refusal(msg.id, "already authenticated")
        return self._refusal(msg.id, self.error or "failed")

    def _on_hello(self, rid: Any, hello: dict[str, Any] | None) -> m.PeerAuthResponse:
        if hello is None:
            return self._refusal(rid, "expected a Hello")
        peer = _node_id(hello.get("node_id"))
        nd = _hex(hello.get("nonce"), NONCE_BYTES)
        kids = hello.get("keys")
        if peer is None or nd is None or type(kids) is not list or not 0 < len(kids) <= _MAX_KEYS:
            return self._refusal(rid, "malformed Hello")
        if peer == self.node_id:
            return self._refusal(rid, f"node id {peer} is this node's own")
        if self.expect is not None and peer != self.expect:
            return self._refusal(rid, f"the connection declared node {self.expect}, the Hello node {peer}")
        kid: str | None = next((k for k in self._keys.ids if k in kids), None)
        if kid is None:
            return self._refusal(rid, "no peer secret in common (are the nodes' --peer-secret-file the same?)")
        secret = self._keys.get(kid)
        assert secret is not None
        self.peer_id = peer
        self.state = State.WAITING
        mac = _mac(secret, b"acceptor", peer, self.node_id, nd, self._nonce, kid)
        self._proof = _mac(secret, b"dialler", peer, self.node_id, nd, self._nonce, kid)
        return m.PeerAuthResponse(rid, m.ok({"Challenge": {
            "node_id": self.node_id, "nonce": self._nonce.hex(), "key": kid, "mac": mac.hex()}}))

    def _on_proof(self, rid: Any, proof: dict[str, Any] | None) -> m.PeerAuthResponse:
        mac = _hex(proof.get("mac"), 32) if proof is not None else None
        if mac is None:
            return self._refusal(rid, "expected a Proof")
        if not hmac.compare_digest(self._proof, mac):
            return self._refusal(rid, f"node {self.peer_id} did not prove it holds the peer secret")
        self.state = State.DONE
        return m.PeerAuthResponse(rid, m.ok("Authenticated"))
