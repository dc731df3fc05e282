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
- Start-up: a file that cannot be read or used stops it, naming the flag; a
  key encrypted with a passphrase too (never a prompt: nobody is there to
  answer one). A certificate that peers would refuse (expired, not yet
  valid, not naming the host of ``--ws-addr``, not signed by the CA) is a
  warning (:meth:`NodeTls.refused_by_peers`).
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
    cert_file: Path
    key_file: Path
    ca_file: Path | None

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, ca_file: Path | None, cert_auth: bool) -> "NodeTls":
        """Read the files now, so that a bad one is a start-up error (TlsConfigError)."""
        if cert_auth and ca_file is None:
            raise TlsConfigError("--peer-cert-auth needs --tls-ca-file (the CA that signs the nodes' certificates)")
        for flag, path in (("--tls-cert-file", cert_file), ("--tls-key-file", key_file), ("--tls-ca-file", ca_file)):
            try:
                if path is not None:
                    path.open("rb").close()
            except OSError as exc:
                raise TlsConfigError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None

        def no_passphrase() -> bytes:  # OpenSSL asks only for an encrypted key; it would prompt on the terminal
            raise TlsConfigError(f"--tls-key-file {key_file} is encrypted with a passphrase, which the node cannot "
                                 f"ask for: give it the key unencrypted, readable by its user only (openssl pkey "
                                 f"-in {key_file} -out node.key; chmod 600 node.key)")

        try:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.minimum_version = ssl.TLSVersion.TLSv1_2
            server.load_cert_chain(str(cert_file), str(key_file), password=no_passphrase)
            if cert_auth:
                server.load_verify_locations(cafile=str(ca_file))
                server.verify_mode = ssl.CERT_OPTIONAL  # clients have none; a peer's must verify
            peers = client_context(ca_file, cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            files = f"--tls-cert-file {cert_file}, --tls-key-file {key_file}, --tls-ca-file {ca_file}"
            raise TlsConfigError(f"cannot load the TLS files ({files}): {exc}") from None
        return cls(server, peers, cert_auth, cert_file, key_file, ca_file)

    def refused_by_peers(self, host: str) -> str | None:
        """Why a peer dialling ``host`` would refuse this node's certificate, or
        None: a TLS handshake in memory from the node's own peer context (the
        CA file, validity dates, host name; its client certificate with
        --peer-cert-auth) to its server context. A wildcard host (0.0.0.0, ::)
        is not a name peers dial: its name is not checked."""
        peers = self.peers
        if host in ("", "0.0.0.0", "::"):
            peers = client_context(self.ca_file, self.cert_file, self.key_file)
            peers.check_hostname = False
        try:
            memory_handshake(self.server, peers, host if peers.check_hostname else None)
        except ssl.SSLCertVerificationError as exc:
            why = (exc.verify_message or str(exc)).rstrip(".")
        except ssl.SSLError as exc:
            why = str(exc)
        else:
            return None
        return (f"peers dialling {host} will refuse this node's certificate ({self.cert_file}): {why}; checked "
                f"against {f'--tls-ca-file {self.ca_file}' if self.ca_file else 'the system CAs'}, as peers and "
                f"clients check it (docs/security.md)")


def memory_handshake(server: ssl.SSLContext, client: ssl.SSLContext,
                     host: str | None) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A TLS handshake between two ends in memory (client, server); raises what either end raises."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, (end, out, other_in) in enumerate(((c, c_out, s_in), (s, s_out, c_in))):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            other_in.write(out.read())
        if all(done):
            # TLS 1.3: the server judges a client certificate after the client is done; one byte back shows it.
            s.write(b"x")
            c_in.write(s_out.read())
            c.read(1)
            return c, s
    raise ssl.SSLError("the TLS handshake with itself did not finish")


def verified_client_cert(transport: Any) -> bool:
    """Did the other end of this (server-side) connection present a client
    certificate that verified against the CA? With CERT_OPTIONAL a
    certificate that does not verify fails the handshake, so one that is
    there at all has verified."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object is not None and bool(ssl_object.getpeercert())
