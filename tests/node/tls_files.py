"""Certificates for tests, made at run time with trustme (no key is committed)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from qcore.tls import client_context


@dataclass
class TlsFiles:
    """A CA, and one certificate for 127.0.0.1/localhost signed by it, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def node_args(self, cert_auth: bool = False) -> list[str]:
        return ["--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-file", str(self.ca),
                *(["--peer-cert-auth"] if cert_auth else [])]

    def client(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and only it)."""
        return client_context(self.ca)


def make_tls(directory: Path, name: str = "tls") -> TlsFiles:
    directory = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "node.pem", directory / "node.key")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


def make_secret(directory: Path, name: str = "secret", content: bytes | None = None) -> Path:
    """A peer secret file (mode 0600)."""
    from qcore.node.peer_auth import write_secret

    path = directory / name
    if content is None:
        write_secret(path)
    else:
        path.write_bytes(content)
        path.chmod(0o600)
    return path
