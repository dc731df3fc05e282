"""The qcore asyncio client library.

    from qcore.client import Client

    async with Client(["127.0.0.1:8080", "127.0.0.1:8081"]) as c:
        user = await c.create("User", "alice", parent="Folder$2")
        await c.write(user, "Email", "alice@example.com")
        value, write_time, writer = await c.read(user, "Email")

See docs/client.md.
"""

from qcore.client.client import Client
from qcore.client.cluster import Formation
from qcore.client.session import Session, is_idempotent, member_addresses, parse_addresses
from qcore.client.errors import (
    AuthenticationFailed,
    CommandError,
    ConnectionFailed,
    HistoryCompacted,
    InvalidValue,
    NotLeader,
    QcoreError,
    RequestTimeout,
    ServerError,
    UnknownOutcome,
)
from qcore.client.users import permission
from qcore.client.watch import Watch, notify_on_entity, notify_on_type
from qcore.client.command_json import entity_id, entity_id_text, read_request, value, write_request

__all__ = [
    "Client",
    "Formation",
    "Watch",
    "notify_on_entity",
    "notify_on_type",
    "read_request",
    "write_request",
    "entity_id",
    "entity_id_text",
    "value",
    "permission",
    "is_idempotent",
    "member_addresses",
    "parse_addresses",
    "QcoreError",
    "ConnectionFailed",
    "RequestTimeout",
    "UnknownOutcome",
    "ServerError",
    "NotLeader",
    "AuthenticationFailed",
    "CommandError",
    "InvalidValue",
    "HistoryCompacted",
]
