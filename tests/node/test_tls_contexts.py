"""The node's TLS contexts (qcore.node.tls, qcore.tls) with certificates made
by examples/make_certs.py, as docs/security.md tells operators to: handshakes
over memory buffers, no sockets."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from qcore.node.tls import NodeTls, TlsConfigError, memory_handshake, verified_client_cert
from qcore.tls import client_context

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([sys.executable, str(REPO / "examples" / "make_certs.py"), "node1=127.0.0.1", "node2=localhost"],
                   cwd=d, check=True)
    assert (d / "node1.key").stat().st_mode & 0o077 == 0
    return d


class _Transport:
    """What the gate reads of a server-side connection's transport."""

    def __init__(self, obj: ssl.SSLObject) -> None:
        self._obj = obj

    def get_extra_info(self, name: str) -> object:
        return self._obj if name == "ssl_object" else None


def test_peers_verify_each_other_by_ca_host_name_and_client_certificate(certs: Path) -> None:
    n1 = NodeTls.load(certs / "node1.pem", certs / "node1.key", certs / "ca.pem", cert_auth=True)
    n2 = NodeTls.load(certs / "node2.pem", certs / "node2.key", certs / "ca.pem", cert_auth=True)
    _, server_end = memory_handshake(n1.server, n2.peers, "127.0.0.1")
    assert verified_client_cert(_Transport(server_end))  # node 2 presented its certificate
    _, server_end = memory_handshake(n2.server, n1.peers, "localhost")
    assert verified_client_cert(_Transport(server_end))
    # A client without a certificate is served, as a client.
    _, server_end = memory_handshake(n1.server, client_context(certs / "ca.pem"), "127.0.0.1")
    assert not verified_client_cert(_Transport(server_end))
    # The host name must match the certificate: node 1's is for 127.0.0.1 only.
    with pytest.raises(ssl.SSLCertVerificationError):
        memory_handshake(n1.server, n2.peers, "localhost")


def test_a_certificate_of_another_ca_fails_both_ways(certs: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "examples" / "make_certs.py"), "node9=127.0.0.1"], cwd=tmp_path,
                   check=True)
    n1 = NodeTls.load(certs / "node1.pem", certs / "node1.key", certs / "ca.pem", cert_auth=True)
    stranger = NodeTls.load(tmp_path / "node9.pem", tmp_path / "node9.key", tmp_path / "ca.pem", cert_auth=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        memory_handshake(n1.server, stranger.peers, "127.0.0.1")  # the stranger does not trust node 1
    forged = client_context(certs / "ca.pem", tmp_path / "node9.pem", tmp_path / "node9.key")
    with pytest.raises(ssl.SSLError):
        memory_handshake(n1.server, forged, "127.0.0.1")  # node 1 does not take the stranger's client certificate


def test_bad_files_are_a_clear_start_up_error(certs: Path) -> None:
    with pytest.raises(TlsConfigError, match="--tls-key-file"):
        NodeTls.load(certs / "node1.pem", certs / "node2.key", certs / "ca.pem", cert_auth=False)
    with pytest.raises(TlsConfigError, match="cannot read --tls-cert-file"):
        NodeTls.load(certs / "missing.pem", certs / "node1.key", None, cert_auth=False)
    with pytest.raises(TlsConfigError, match="--peer-cert-auth needs --tls-ca-file"):
        NodeTls.load(certs / "node1.pem", certs / "node1.key", None, cert_auth=True)


def test_a_node_added_later_gets_a_certificate_of_the_same_ca(tmp_path: Path) -> None:
    """make_certs.py run again in the same directory (a fourth node) signs with the CA there
    instead of replacing it: the nodes it made before still trust the new one, and it them."""
    make = [sys.executable, str(REPO / "examples" / "make_certs.py")]
    subprocess.run([*make, "node1=127.0.0.1"], cwd=tmp_path, check=True, capture_output=True)
    ca = (tmp_path / "ca.pem").read_bytes()
    subprocess.run([*make, "node4=localhost"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "ca.pem").read_bytes() == ca
    n1 = NodeTls.load(tmp_path / "node1.pem", tmp_path / "node1.key", tmp_path / "ca.pem", cert_auth=True)
    n4 = NodeTls.load(tmp_path / "node4.pem", tmp_path / "node4.key", tmp_path / "ca.pem", cert_auth=True)
    _, server_end = memory_handshake(n1.server, n4.peers, "127.0.0.1")
    assert verified_client_cert(_Transport(server_end))
    _, server_end = memory_handshake(n4.server, n1.peers, "localhost")
    assert verified_client_cert(_Transport(server_end))


def test_a_key_encrypted_with_a_passphrase_is_a_start_up_error_not_a_prompt(certs: Path, tmp_path: Path) -> None:
    """OpenSSL would ask for the passphrase on the terminal (twice: server and peer contexts), and
    without one fail with '[Errno 22] Invalid argument'; the node says what is wrong instead."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((certs / "node1.key").read_bytes(), password=None)
    encrypted = tmp_path / "node1-encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(TlsConfigError, match=r"--tls-key-file .*node1-encrypted.key is encrypted with a passphrase"):
        NodeTls.load(certs / "node1.pem", encrypted, certs / "ca.pem", cert_auth=False)


def test_an_encrypted_client_key_of_another_certificate_is_a_mismatch_not_a_wrong_passphrase(
        certs: Path, tmp_path: Path) -> None:
    """The passphrase decrypts the key, but the key is node2's and the certificate node1's: OpenSSL
    says 'key values mismatch', as for an unencrypted key; 'wrong passphrase?' sent users retyping it."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((certs / "node2.key").read_bytes(), password=None)
    encrypted = tmp_path / "node2-encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(ssl.SSLError, match="key values mismatch"):
        client_context(certs / "ca.pem", certs / "node1.pem", encrypted, "passphrase")
    with pytest.raises(ValueError, match="wrong passphrase"):  # the certificate's own key, a wrong passphrase
        client_context(certs / "ca.pem", certs / "node2.pem", encrypted, "not it")
    assert client_context(certs / "ca.pem", certs / "node2.pem", encrypted, "passphrase") is not None


def test_a_missing_file_is_named_by_its_flag(certs: Path) -> None:
    with pytest.raises(TlsConfigError, match=r"cannot read --tls-ca-file .*nope.pem: No such file"):
        NodeTls.load(certs / "node1.pem", certs / "node1.key", certs / "nope.pem", cert_auth=False)


def test_a_certificate_peers_would_refuse_is_told_at_start_up(certs: Path, tmp_path: Path) -> None:
    """refused_by_peers: what a peer dialling the node's host would say of its certificate."""
    import trustme

    n1 = NodeTls.load(certs / "node1.pem", certs / "node1.key", certs / "ca.pem", cert_auth=True)
    assert n1.refused_by_peers("127.0.0.1") is None
    assert n1.refused_by_peers("0.0.0.0") is None  # a wildcard is not a name peers dial
    why = n1.refused_by_peers("localhost")  # the certificate names 127.0.0.1 only
    assert why is not None and "peers dialling localhost will refuse" in why and "not valid for 'localhost'" in why
    # Signed by another CA than --tls-ca-file's (or a --tls-ca-file that is not the CA).
    stranger = NodeTls.load(certs / "node1.pem", certs / "node1.key", certs / "node2.pem", cert_auth=False)
    why = stranger.refused_by_peers("127.0.0.1")
    assert why is not None and "unable to get local issuer certificate" in why and "node2.pem" in why
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    for name, start, end, said in (("expired", now - datetime.timedelta(days=9), now - datetime.timedelta(days=1),
                                    "certificate has expired"),
                                   ("future", now + datetime.timedelta(days=1), now + datetime.timedelta(days=9),
                                    "certificate is not yet valid")):
        leaf = ca.issue_cert("127.0.0.1", not_before=start, not_after=end)
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
        node = NodeTls.load(tmp_path / f"{name}.pem", tmp_path / f"{name}.key", tmp_path / "ca.pem", cert_auth=False)
        why = node.refused_by_peers("127.0.0.1")
        assert why is not None and said in why, why
    # A chain file (leaf and intermediate) verifies against the root; the leaf alone does not.
    leaf = ca.create_child_ca().issue_cert("127.0.0.1")
    (tmp_path / "chain.pem").write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "leaf.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "leaf.key"))
    chain = NodeTls.load(tmp_path / "chain.pem", tmp_path / "leaf.key", tmp_path / "ca.pem", cert_auth=True)
    assert chain.refused_by_peers("127.0.0.1") is None
    alone = NodeTls.load(tmp_path / "leaf.pem", tmp_path / "leaf.key", tmp_path / "ca.pem", cert_auth=True)
    assert "unable to get local issuer certificate" in (alone.refused_by_peers("127.0.0.1") or "")
