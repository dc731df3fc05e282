"""What a node's security settings leave open, said once at start-up (SPEC 8):
a node that anyone else can reach, without TLS or peer authentication,
logs what anyone who can reach its port can do (docs/security.md)."""

from __future__ import annotations

import ipaddress


def security_warning(addr: str, tls: bool, peer_auth: bool) -> str | None:
    """The start-up warning for a node listening on ``addr`` (SPEC 8), or None."""
    if _is_loopback(addr.rsplit(":", 1)[0]):
        return None
    if not tls and not peer_auth:
        return (f"listening on {addr} with neither TLS nor peer authentication: anyone who can reach this port can "
                "read and change every entity (users on or not: forwarded requests carry any user's name), Init the "
                "node, add or remove members, and depose the leader or rewrite the log with forged Raft messages, "
                "and everything travels in clear text (docs/security.md)")
    if not peer_auth:
        return (f"listening on {addr} without peer authentication: anyone who can reach this port can depose the "
                "leader or rewrite the log with forged Raft messages, and relay requests in any user's name, so "
                "users and permissions do not hold either (--peer-secret-file or --peer-cert-auth; "
                "docs/security.md)")
    if not tls:
        return f"listening on {addr} without TLS: data and requests travel in clear text (docs/security.md)"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it
