"""Server push of committed field changes (SPEC 6). Placeholder until the
notifications feature lands: registrations are refused with a clear error."""

from __future__ import annotations

from typing import Any, Callable

from qcore.protocol import messages as m


class NotificationHub:
    def __init__(self, retain: int, max_per_conn: int, queue_limit: int, store: Callable[[], Any]) -> None:
        self._store = store

    def attach(self, conn: Any) -> None:
        pass

    def detach(self, conn: Any) -> None:
        pass

    def publish(self, index: int, changes: list[Any]) -> None:
        pass

    def on_restore(self, index: int) -> None:
        pass

    async def register(self, msg: m.RegisterNotification, conn: Any) -> Any:
        return m.RegisterNotificationResponse(msg.id, m.err("notifications are not implemented yet"))

    async def unregister(self, msg: m.UnregisterNotification, conn: Any) -> Any:
        return m.UnregisterNotificationResponse(msg.id, m.err("notifications are not implemented yet"))
