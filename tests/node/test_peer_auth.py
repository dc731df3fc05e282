"""The peer handshake (qcore.node.peer_auth) on frames alone: no sockets."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import orjson
import pytest

from qcore.node.peer_auth import (
    Acceptor,
    Dialler,
    PeerKeys,
    SecretFileError,
    State,
    load_secret,
    write_secret,
)

A = b"a" * 32
B = b"b" * 40
C = b"c" * 32


def run(dialler: Dialler, acceptor: Acceptor) -> list[bytes]:
    """Carry frames between the two until neither has one to send; the transcript."""
    frames = [dialler.hello()]
    out = frames[0]
    while True:
        reply = acceptor.receive(out)
        frames.append(reply)
        nxt = dialler.receive(reply)
        if nxt is None:
            return frames
        frames.append(nxt)
        out = nxt


def body(frame: bytes) -> dict:
    ((_, b),) = orjson.loads(frame).items()
    return b


def test_both_sides_prove_the_secret() -> None:
    d = Dialler(PeerKeys([A]), 1, expect=2)
    a = Acceptor(PeerKeys([A]), 2, expect=1)
    frames = run(d, a)
    assert d.done and a.authenticated, (d.error, a.error)
    assert d.peer_id == 2 and a.peer_id == 1
    assert len(frames) == 4
    # The secret never crosses the wire.
    assert not any(A in f or A.hex().encode() in f for f in frames)


def test_wrong_secret_fails_on_both_sides() -> None:
    d = Dialler(PeerKeys([A]), 1)
    a = Acceptor(PeerKeys([C]), 2)
    run(d, a)
    assert not d.done and not a.authenticated
    assert "no peer secret in common" in (d.error or "")
    # Even when the key ids match (a forged id), the MAC does not.
    d = Dialler(PeerKeys([A]), 1)
    a = Acceptor(PeerKeys([C]), 2)
    a._keys._by_id = {PeerKeys([A]).ids[0]: C}  # the acceptor believes its secret is A's
    a._keys.ids = list(a._keys._by_id)
    run(d, a)
    assert d.state is State.FAILED and "did not prove" in (d.error or "")
    assert not a.authenticated


def test_a_recorded_handshake_replayed_on_a_new_connection_fails() -> None:
    d = Dialler(PeerKeys([A]), 1)
    a = Acceptor(PeerKeys([A]), 2)
    recorded = run(d, a)
    assert a.authenticated
    # The attacker replays the dialler's frames to a fresh acceptor (a new connection).
    fresh = Acceptor(PeerKeys([A]), 2)
    fresh.receive(recorded[0])  # the Hello
    reply = body(fresh.receive(recorded[2]))  # the recorded Proof
    assert "Err" in reply["response"] and reply["kind"] == "unauthenticated_peer"
    assert not fresh.authenticated and fresh.failed
    # ... or replays the acceptor's frames to a fresh dialler.
    d2 = Dialler(PeerKeys([A]), 1)
    d2.hello()
    assert d2.receive(recorded[1]) is None and "did not prove" in (d2.error or "")


def test_a_mac_is_bound_to_both_node_ids_and_to_its_role() -> None:
    nonces = itertools.cycle([b"\x01" * 32, b"\x02" * 32])
    d = Dialler(PeerKeys([A]), 1, nonce=lambda n: next(nonces))
    a = Acceptor(PeerKeys([A]), 2, nonce=lambda n: next(nonces))
    frames = run(d, a)
    assert a.authenticated
    # Same nonces, other ids: the recorded proof does not hold for node 3 -> 2.
    a3 = Acceptor(PeerKeys([A]), 2, nonce=lambda n: b"\x02" * 32)
    hello = body(frames[0])
    hello["request"]["Hello"]["node_id"] = 3
    a3.receive(orjson.dumps({"PeerAuth": hello}))
    assert "Err" in body(a3.receive(frames[2]))["response"]
    # The acceptor's MAC reflected as the dialler's proof is refused.
    a4 = Acceptor(PeerKeys([A]), 2, nonce=lambda n: b"\x02" * 32)
    a4.receive(frames[0])
    reflected = body(frames[1])["response"]["Ok"]["Challenge"]["mac"]
    proof = orjson.dumps({"PeerAuth": {"id": 2, "request": {"Proof": {"mac": reflected}}}})
    assert "Err" in body(a4.receive(proof))["response"]


def test_rotation_picks_a_secret_both_hold() -> None:
    old, new = A, B
    for dk, ak in [([old], [new, old]), ([new, old], [old]), ([new], [new, old]), ([old, new], [new, old])]:
        d = Dialler(PeerKeys(dk), 1)
        a = Acceptor(PeerKeys(ak), 2)
        run(d, a)
        assert d.done and a.authenticated, (dk, ak, d.error, a.error)
    d = Dialler(PeerKeys([new]), 1)
    a = Acceptor(PeerKeys([old]), 2)
    run(d, a)
    assert not a.authenticated


def test_declared_ids_must_match() -> None:
    d = Dialler(PeerKeys([A]), 1, expect=3)
    a = Acceptor(PeerKeys([A]), 2)
    run(d, a)
    assert not d.done and "expected node 3" in (d.error or "")
    d = Dialler(PeerKeys([A]), 1)
    a = Acceptor(PeerKeys([A]), 2, expect=5)
    run(d, a)
    assert not a.authenticated and "declared node 5" in (a.error or "")
    d = Dialler(PeerKeys([A]), 2)
    a = Acceptor(PeerKeys([A]), 2)
    run(d, a)
    assert not a.authenticated


@pytest.mark.parametrize("frame", [
    b"not json",
    b'{"PeerAuth": {"id": 1, "request": {"Proof": {"mac": "00"}}}}',
    b'{"PeerAuth": {"id": 1, "request": {"Hello": {"node_id": -1, "nonce": "00", "keys": []}}}}',
    b'{"PeerAuth": {"id": 1, "request": {"Hello": {"node_id": 1, "nonce": "zz", "keys": ["x"]}}}}',
    b'{"PeerAuth": {"id": 1, "request": {"Hello": {"node_id": 1, "nonce": "' + b"00" * 32 + b'", "keys": 5}}}}',
    b'{"RaftVote": {"id": 1, "request": {}}}',
])
def test_bad_frames_are_refused_not_raised(frame: bytes) -> None:
    a = Acceptor(PeerKeys([A]), 2)
    reply = body(a.receive(frame))
    assert "Err" in reply["response"] and reply["kind"] == "unauthenticated_peer"
    assert a.failed
    # One attempt per connection: a good Hello after a failure is refused too.
    good = Dialler(PeerKeys([A]), 1).hello()
    assert "Err" in body(a.receive(good))["response"]


def test_dialler_takes_an_error_frame_as_failure() -> None:
    d = Dialler(PeerKeys([A]), 1)
    d.hello()
    err = b'{"Error": {"id": 1, "error": "peer authentication is not configured", "kind": "unauthenticated_peer"}}'
    assert d.receive(err) is None
    assert d.state is State.FAILED and "not configured" in (d.error or "")


def test_secret_files(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = load_secret(path)
    assert len(secret) >= 32 and len(PeerKeys([secret]).ids) == 1
    with pytest.raises(FileExistsError):
        write_secret(path)  # never overwrites a cluster's secret
    os.chmod(path, 0o640)
    with pytest.raises(SecretFileError, match="owner only"):
        load_secret(path)
    short = tmp_path / "short"
    short.write_bytes(b"x" * 31 + b"\n")
    os.chmod(short, 0o600)
    with pytest.raises(SecretFileError, match="at least 32"):
        load_secret(short)
    with pytest.raises(SecretFileError, match="cannot read"):
        load_secret(tmp_path / "missing")
