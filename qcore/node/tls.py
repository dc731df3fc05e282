"""The node's TLS settings (SPEC 8.1): the server context for its one port,
the client context for its connections to peers, and what a connection's
certificate says about who is on the other end.

- Serving: ``--tls-cert-file``/``--tls-key-file``; WebSocket, peer and HTTP
  traffic all go through it, and a plain ``ws://`` handshake fails (the TLS
  layer sees an HTTP request where a ClientHello should be).
- Dialling peers: verified against ``--tls-ca-file`` (the system's CAs if
  none), host name = the host part of the peer's address; the node presents
  its own certificate as a client certificate, which ``--peer-cert-auth``
  on the other side takes as proof of being a peer.
- ``--peer-cert-auth``: the server asks for a client certificate
  (optional: clients have none) and verifies one that is offered against the
  CA; a connection that presented a verified one is a peer (qcore.node.peer_gate).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcore.tls import client_context

__all__ = ["NodeTls", "TlsConfigError", "verified_client_cert"]

class TlsConfigError(Exception):
    """A TLS file or flag the node cannot start with (the message names it)."""


@dataclass(frozen=True, slots=True)
class NodeTls:
    server: ssl.SSLContext
    peers: ssl.SSLContext
    cert_auth: bool

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, ca_file: Path | None, cert_auth: bool) -> "NodeTls":
        """Read the files now, so that a bad one is a start-up error (TlsConfigError)."""
        if cert_auth and ca_file is None:
            raise TlsConfigError("--peer-cert-auth needs --tls-ca-file (the CA that signs the nodes' certificates)")
        try:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.minimum_version = ssl.TLSVersion.TLSv1_2
            server.load_cert_chain(str(cert_file), str(key_file))
            if cert_auth:
                server.load_verify_locations(cafile=str(ca_file))
                server.verify_mode = ssl.CERT_OPTIONAL  # clients have none; a peer's must verify
            peers = client_context(ca_file, cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            files = f"--tls-cert-file {cert_file}, --tls-key-file {key_file}, --tls-ca-file {ca_file}"
            raise TlsConfigError(f"cannot load the TLS files ({files}): {exc}") from None
        return cls(server, peers, cert_auth)


def verified_client_cert(transport: Any) -> bool:
    """Did the other end of this (server-side) connection present a client
    certificate that verified against the CA? With CERT_OPTIONAL a
    certificate that does not verify fails the handshake, so one that is
    there at all has verified."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object is not None and bool(ssl_object.getpeercert())
