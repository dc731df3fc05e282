"""Certificates and a peer secret for a secured cluster on loopback, made
at run time: for the tests, ``python -m qcore.chaos --tls`` and
``qcore bench run --tls``. Never for production (docs/security.md says how
to make real ones).

One CA and one certificate for 127.0.0.1/localhost serve every node (they
all listen on loopback; peers check the host name of the address they dial,
chaos proxies included). Made with trustme, which is in the ``test`` extra.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from qcore.node.peer_auth import write_secret
from qcore.tls import client_context

__all__ = ["LocalTls", "make_local_tls"]


@dataclass(frozen=True)
class LocalTls:
    ca: Path
    cert: Path
    key: Path
    secret: Path

    def node_args(self, secret: bool = True, cert_auth: bool = False) -> list[str]:
        """The flags of a node serving TLS, with the peer secret and/or client-certificate peers."""
        return ["--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-file", str(self.ca),
                *(["--peer-secret-file", str(self.secret)] if secret else []),
                *(["--peer-cert-auth"] if cert_auth else [])]

    def client(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and only it)."""
        return client_context(self.ca)


def make_local_tls(directory: Path) -> LocalTls:
    try:
        import trustme
    except ImportError:
        raise RuntimeError("certificates for a local TLS cluster are made with trustme: "
                           "pip install 'qcore[test]'") from None
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = LocalTls(directory / "ca.pem", directory / "node.pem", directory / "node.key", directory / "peer.secret")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    if not files.secret.exists():
        write_secret(files.secret)
    return files
