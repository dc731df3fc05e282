"""TLS for the side that connects: the client library, qcore-cli, the bench,
the chaos harness, and a node dialling its peers (SPEC 8.1).

A connection made with :func:`client_context` verifies the server's
certificate against the CA file (or the system's trust store when none is
given) and checks that it names the host dialled; a certificate that does
not verify fails the connection (websockets raises `ssl.SSLCertVerificationError`,
an `OSError`). Nothing here ever turns verification off.

Addresses stay ``host:port`` everywhere else in qcore; whether a connection
is TLS is a setting of the client (a CA file, or a ``wss://`` address), not
of each address, since the addresses a node reports for its peers carry no
scheme.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["CA_ENV", "CERT_ENV", "KEY_ENV", "client_context", "env_files", "host_of", "scheme", "wants_tls"]

#: Environment variables the command-line tools read when no flag is given.
CA_ENV = "QCORE_TLS_CA"
CERT_ENV = "QCORE_TLS_CERT"
KEY_ENV = "QCORE_TLS_KEY"


def client_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_password: Callable[[], str | bytes] | str | bytes | None = None,
) -> ssl.SSLContext:
    """A context that verifies the server (against ``ca_file``, else the
    system's CAs) and its host name, TLS 1.2 or newer; with ``cert_file``
    (and ``key_file`` unless the key is in the same PEM) it presents that
    client certificate (mutual TLS). Raises OSError/ssl.SSLError for a
    missing or unreadable file, or a key that is not the certificate's. A
    key encrypted with a passphrase is decrypted with ``key_password`` (the
    passphrase, or a function asked once that returns it); without one it is
    a ValueError, never OpenSSL's own prompt on the terminal, and a wrong
    one a ValueError saying so."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        key_path = key_file or cert_file
        asked = False

        def passphrase() -> str | bytes:  # OpenSSL calls it only for an encrypted key
            nonlocal asked
            if key_password is None:
                raise ValueError(f"the client key {key_path} is encrypted with a passphrase: give the passphrase,"
                                 f" or the key unencrypted (openssl pkey -in {key_path} -out client.key)")
            asked = True
            return key_password() if callable(key_password) else key_password

        try:
            ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None, password=passphrase)
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":  # read (and decrypted), but not the certificate's key
                raise
            if asked:
                raise ValueError(f"cannot decrypt the client key {key_path}: wrong passphrase?") from None
            if key_file:
                raise
            # OpenSSL says only "[SSL] PEM lib": the usual cause is a key kept in its own file.
            raise ValueError(f"cannot load the client certificate {cert_file} without a key file: is its private"
                             f" key in another file? give that too (OpenSSL: {e})") from None
    elif key_file:
        raise ValueError("a client key was given without its certificate")
    return ctx


def wants_tls(addresses: str | Iterable[str]) -> bool:
    """True if any address is written ``wss://...``."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    return any(a.strip().startswith("wss://") for a in items)


def env_files() -> tuple[str | None, str | None, str | None]:
    """(CA, client certificate, client key) from QCORE_TLS_CA / _CERT / _KEY."""
    return os.environ.get(CA_ENV) or None, os.environ.get(CERT_ENV) or None, os.environ.get(KEY_ENV) or None


def scheme(tls: ssl.SSLContext | None) -> str:
    return "wss" if tls is not None else "ws"


def host_of(addr: str) -> str:
    """The host part of ``host:port`` (brackets of an IPv6 literal removed):
    the name a peer's certificate must carry."""
    host = addr.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
