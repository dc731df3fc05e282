"""What a node's security settings leave open, said once (SPEC 8,
docs/security.md): at start-up, a node that anyone else can reach without
TLS or peer authentication logs what anyone who can reach its port can do;
and a node with users on but peer authentication off logs, whatever its
address, that users can be bypassed (a /forward connection is trusted as a
peer's, and a peer's requests name their own user); and a TLS key or admin
password file that others may read is a warning at start-up."""

from __future__ import annotations

import ipaddress
import logging
import stat
from pathlib import Path

log = logging.getLogger(__name__)


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


class UsersExposure:
    """Warns, once per process, when users are on (SPEC 8.3) and peer
    authentication is off: then users do not hold against anyone who can
    reach the port. Told by the state machine when users go from off to on
    (at start-up, as the log or a snapshot is recovered, or by an applied
    AuthEnable or Init), never per request."""

    def __init__(self, addr: str, peer_auth: bool) -> None:
        self._addr = addr
        self._said = peer_auth  # with peer authentication there is nothing to say

    def users_on(self, index: int) -> None:
        if self._said:
            return
        self._said = True
        log.warning("users are on (log index %d) but peer authentication is off: anyone who can reach %s can "
                    "bypass them and act as any user, by connecting as a peer on /forward and relaying requests "
                    "in that user's name; start every node with --peer-secret-file or --peer-cert-auth "
                    "(docs/security.md)", index, self._addr)


def readable_by_others(path: Path, flag: str, what: str) -> str | None:
    """The start-up warning for a secret file others may read, or None. Others
    = any permission for other users, or for the group unless root owns the
    file (PostgreSQL's rule for its key file: ``root:ssl-cert 0640`` is a
    common set-up). A warning, not a refusal (the peer secret file is
    refused: qcore.node.peer_auth), so that a node that ran with such a file
    still starts after an upgrade."""
    try:
        st = path.stat()
    except OSError:
        return None  # reading it says why
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o007 and not (mode & 0o070 and st.st_uid != 0):
        return None
    who = "other users of this machine" if mode & 0o007 else "its group"
    return (f"{flag} {path} has mode {mode:04o}: {who} can read {what}; make it readable by the node's user only "
            f"(chmod 600 {path}; docs/security.md)")
