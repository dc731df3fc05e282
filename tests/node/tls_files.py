"""Certificates and secrets for tests, made at run time (no key is committed)."""

from __future__ import annotations

from pathlib import Path

from qcore.local_tls import LocalTls, make_local_tls
from qcore.node.peer_auth import write_secret

__all__ = ["LocalTls", "make_secret", "make_tls"]


def make_tls(directory: Path, name: str = "tls") -> LocalTls:
    """A CA, a certificate for 127.0.0.1/localhost and a peer secret under ``directory/name``."""
    return make_local_tls(directory / name)


def make_secret(directory: Path, name: str = "secret") -> Path:
    """A peer secret file of its own (mode 0600)."""
    path = directory / name
    write_secret(path)
    return path
