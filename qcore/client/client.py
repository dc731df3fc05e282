"""The client library's front: :class:`Client`, friendly helpers over :class:`Session`.

Helpers take friendly arguments (``"User$7"``, ``42``) or the store's types,
build the wire JSON with :mod:`qcore.client.command_json`, fit a written value to its
field's type by the schema (:mod:`qcore.client.field_values`), and return the
store's types decoded with :mod:`qcore.client.convert`. The retry rules are
in :mod:`qcore.client.session`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Unpack

from qcore.client import command_json, convert
from qcore.client.cluster import Formation, cluster_metrics, until_formed
from qcore.client.errors import CommandError, ConnectionFailed, InvalidValue, QcoreError
from qcore.client.field_values import FieldInfo, conform, fields_of_schema, python_value
from qcore.client.session import MEMBERSHIP_TIMEOUT, Session, SessionOptions, is_idempotent, member_addresses, parse_addresses
from qcore.client.users import UserAdmin
from qcore.client.watch import Watch
from qcore.protocol.messages import AddLearner, ChangeMembership, GetMetrics, Init, RemoveNode
from qcore.store.auth import ADMIN
from qcore.store.types import EntityReference

__all__ = ["Client", "parse_addresses", "is_idempotent", "member_addresses"]


class Client(UserAdmin):
    """A connection to a qcore cluster, with helpers.

    ``async with Client(["127.0.0.1:8080", "127.0.0.1:8081"]) as c:`` or
    ``c = await Client.connect(...)`` ... ``await c.close()``. With users on,
    ``Client(addrs, user="alice", password=...)`` authenticates every connection
    it opens; the user and role helpers are :class:`qcore.client.users.UserAdmin`'s.
    """

    def __init__(self, addresses: str | Iterable[str], **options: Unpack[SessionOptions]) -> None:
        super().__init__(addresses, **options)
        # Complete schemas by type, for fitting values to fields; dropped when this client sets
        # a schema or a write by them fails (another client may have changed the schema).
        self._field_infos: dict[str, dict[str, FieldInfo]] = {}

    # ------------------------------------------------------------ management

    async def init(self, nodes: Mapping[int, str] | Sequence[tuple[int, str]] = (), *, admin_password: str | None = None,
                   timeout: float | None = None) -> Formation:
        """Initialise the cluster; no nodes: a single-node cluster of the connected node.
        ``admin_password``: start with user admin (that password) and users on.

        Returns once every member is in (each serves requests), or when ``timeout``
        (default ``request_timeout``) has passed, for Init and the wait together: the
        cluster is initialised then all the same, and its leader brings in a member
        that was not up as it starts. The :class:`Formation` says which members were
        not in yet, and why. With ``admin_password`` the wait logs in as that admin on a
        connection of its own; this client's own connection stays without a user.
        """
        pairs: list[tuple[Any, Any]] = list(nodes.items()) if isinstance(nodes, Mapping) else [(i, a) for i, a in nodes]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        async with self.deadline(deadline - loop.time()):
            # Init's own bound is the whole deadline too: a request's default (request_timeout) may be shorter.
            await self._management(Init(self.next_id(), [(int(i), str(a)) for i, a in pairs], admin_password),
                                   deadline - loop.time())
            if len(pairs) <= 1:
                return Formation()  # the one member is the node that answered: it is in
            # Answered once the configuration is on this node's disk: the others learn of the
            # cluster from its first leader, an election timeout later.
            if admin_password is None or self.user is not None:
                return await until_formed(self, deadline)
            return await self._until_formed_as_admin(admin_password, deadline)

    async def _until_formed_as_admin(self, password: str, deadline: float) -> Formation:
        """:func:`until_formed` after an Init that turned users on: this connection has not
        logged in, so the wait logs in as the admin Init made, on a session of its own (to the
        node that answered Init first); this client's own credentials stay as they were (none)."""
        here = self.address
        watcher = Session([a for a in (here, *self.addresses) if a is not None], request_timeout=self.request_timeout,
                          attempt_timeout=self.attempt_timeout, connect_timeout=self.connect_timeout,
                          max_frame_size=self._max_frame_size, ping_interval=None, ssl_context=self._ssl,
                          user=ADMIN, password=password)
        try:
            await watcher.open()  # the login waits for the first leader (a ReadIndex barrier)
            return await until_formed(watcher, deadline)
        except QcoreError:
            return Formation()  # no login by the deadline: nothing known (the cluster is initialised all the same)
        finally:
            await watcher.close()

    async def cluster_metrics(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Every member's metrics, or why not (``GetClusterMetrics``): ``{"members": [...], "leader": id}``;
        :func:`qcore.client.cluster.member_rows` makes ``qcore-cli status``'s rows of it."""
        async with self.deadline(timeout):
            return await cluster_metrics(self)

    async def metrics(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The connected node's metrics (``GetMetrics``); learns the cluster's addresses from them."""
        reply = await self.request(GetMetrics(self.next_id()), timeout=timeout)
        metrics = reply.response  # type: ignore[union-attr]
        for addr in member_addresses(metrics).values():
            if addr not in self.addresses:
                self.addresses.append(addr)
        return metrics

    async def connect_to_leader(self) -> str | None:
        """Move to the leader named by the current node's metrics; returns its address if known."""
        metrics = await self.metrics()
        leader = metrics.get("current_leader")
        addr = member_addresses(metrics).get(leader) if type(leader) is int else None
        if addr and addr != self.address:
            self._switch_to(addr)
            await self.open()
        return addr

    async def add_learner(self, node_id: int, address: str, *, timeout: float | None = None) -> Any:
        """Add a non-voting node; returns when it has caught up (the ``Ok`` value)."""
        return await self._management(AddLearner(self.next_id(), node_id, address), timeout or MEMBERSHIP_TIMEOUT)

    async def change_membership(self, members: Iterable[int], *, retain: bool = False, timeout: float | None = None) -> Any:
        """Make ``members`` the voters (each must be a learner or voter already)."""
        return await self._management(
            ChangeMembership(self.next_id(), sorted(set(members)), retain), timeout or MEMBERSHIP_TIMEOUT
        )

    async def remove_node(self, node_id: int, *, timeout: float | None = None) -> Any:
        """Take a voter or a learner out of the cluster (the ``Ok`` value: ``log_id`` null
        if it was not a member); a removed leader steps down once the change commits."""
        return await self._management(RemoveNode(self.next_id(), node_id), timeout or MEMBERSHIP_TIMEOUT)

    # ------------------------------------------------------------ application

    async def read(self, entity_id: Any, field: str) -> tuple[Any, Any, Any]:
        """``(value, write_time, writer_id)`` of a field (or ``->`` path)."""
        body = await self.command(command_json.update_entity([command_json.read_request(entity_id, field)]))
        r = _read_body(body)
        return (convert.decode_value(r.get("value")), convert.decode_timestamp(r.get("write_time")),
                convert.decode_entity_id(r.get("writer_id")))

    async def read_value(self, entity_id: Any, field: str) -> Any:
        """A field's value as plain Python: a Choice as its name, a Timestamp as a UTC datetime,
        a Blob as bytes, references as EntityId (see :mod:`qcore.client.field_values`)."""
        async with self.deadline():
            value = (await self.read(entity_id, field))[0]
            return python_value(value, await self.field_info(entity_id, field))

    async def get(self, entity_id: Any) -> dict[str, tuple[Any, Any, Any]]:
        """Every field of an entity, in schema order (rank, then name): field ->
        ``(value, write_time, writer_id)``, read in one atomic batch."""
        typ = command_json.entity_id(entity_id)["typ"]
        async with self.deadline():
            schema = (await self.command(command_json.get_complete_schema(typ))).get("response") or {}
            fields = sorted((schema.get("fields") or {}).items(), key=lambda kv: (kv[1].get("rank", 0), kv[0]))
            body = await self.command(command_json.update_entity([command_json.read_request(entity_id, n) for n, _ in fields]))
        out: dict[str, tuple[Any, Any, Any]] = {}
        for (name, _), req in zip(fields, body.get("response") or []):
            r = req.get("Read") or {}
            out[name] = (convert.decode_value(r.get("value")), convert.decode_timestamp(r.get("write_time")),
                         convert.decode_entity_id(r.get("writer_id")))
        return out

    async def field_types(self, entity_type: str) -> dict[str, FieldInfo]:
        """Field -> FieldInfo (value type, choice names) of a type's complete schema; cached."""
        infos = self._field_infos.get(entity_type)
        if infos is None:
            schema = (await self.command(command_json.get_complete_schema(entity_type))).get("response")
            infos = self._field_infos[entity_type] = fields_of_schema(schema)
        return infos

    async def field_info(self, entity_id: Any, field: str) -> FieldInfo | None:
        """The written field's type, or None for a ``->`` path or an unknown type (the node will say)."""
        if command_json.PATH_SEP in field:
            return None
        try:
            return (await self.field_types(command_json.entity_id(entity_id)["typ"])).get(field)
        except CommandError:
            return None

    async def _fit(self, write: dict[str, Any]) -> None:
        """Fit a Write request's value (JSON, in place) to its field's type."""
        value = write.get("value")
        if value is None:
            return
        where = f"{command_json.entity_id_text(write['entity_id'])}.{write['field_type']}"
        info = await self.field_info(write["entity_id"], write["field_type"])
        if info is not None and info.tag == "Choice" and _names_a_choice(value):
            # A name becomes an index here: take the choices as they are now, not as cached (another
            # client may have reordered them, and the node would take the stale index without a word).
            self._field_infos.pop(command_json.entity_id(write["entity_id"])["typ"], None)
            info = await self.field_info(write["entity_id"], write["field_type"])
        write["value"] = conform(value, info, where) if info is not None else _plain(value, where)

    async def write(
        self,
        entity_id: Any,
        field: str,
        value: Any,
        *,
        push_condition: str = "Always",
        adjust: str = "Set",
        writer_id: Any = None,
        write_time: Any = None,
    ) -> None:
        """Write one field; ``value`` is tagged JSON, a store Value, or a plain Python value,
        fitted to the field's type (``25`` for a Float, ``"Manual"`` for a Choice, an EntityId)."""
        req = command_json.write_request(entity_id, field, None, push_condition=push_condition, adjust=adjust,
                                 writer_id=writer_id, write_time=write_time)
        req["Write"]["value"] = value
        await self._update([req])

    async def update(self, requests: Iterable[Any]) -> list[Any]:
        """One atomic batch of Read/Write requests (``command_json.read_request``/``write_request``);
        written values are fitted to their fields' types; returns the requests echoed back
        with reads filled in."""
        body = await self._update(requests)
        return [convert.decode_request(r) for r in body.get("response") or []]

    async def _update(self, requests: Iterable[Any]) -> dict[str, Any]:
        command = command_json.update_entity(requests)
        writes = []
        for r in command["UpdateEntity"]["request"]:
            if "Write" in r:
                r["Write"] = dict(r["Write"])  # fitted in place: leave the caller's request as it was
                writes.append(r["Write"])
        async with self.deadline():  # the schema look-ups and the write: one request, one deadline
            for w in writes:
                await self._fit(w)
            try:
                return await self.command(command)
            except CommandError:
                for w in writes:  # a schema may have changed under the cache: look again next time
                    self._field_infos.pop(command_json.entity_id(w["entity_id"])["typ"], None)
                raise

    async def create(self, entity_type: str, name: str, parent: Any = None) -> Any:
        """Create an entity; returns its id."""
        body = await self.command(command_json.create_entity(entity_type, name, parent))
        return convert.decode_entity_id(body.get("response"))

    async def delete(self, entity_id: Any) -> None:
        """Delete an entity and, recursively, its children."""
        await self.command(command_json.delete_entity(entity_id))

    async def set_schema(self, schema: Any) -> None:
        self._field_infos.clear()  # derived types change with it
        await self.command(command_json.set_schema(schema))

    async def get_schema(self, entity_type: str) -> Any:
        return convert.decode_schema((await self.command(command_json.get_schema(entity_type))).get("response"))

    async def get_complete_schema(self, entity_type: str) -> Any:
        """The schema with inherited fields resolved."""
        return convert.decode_schema((await self.command(command_json.get_complete_schema(entity_type))).get("response"))

    async def _iter_pages(self, request: Callable[[Any], Any]) -> AsyncIterator[Any]:
        """The items of a paged command, page by page; ``request(cursor)`` builds each."""
        cursor: Any = None
        seen_cursors: set[Any] = set()
        while True:
            body = await self.command(request(cursor))
            page = body.get("response") or {}
            for item in page.get("items") or []:
                yield convert.decode_entity_id(item)
            cursor = page.get("next_cursor")
            if cursor is None or repr(cursor) in seen_cursors:
                return
            seen_cursors.add(repr(cursor))

    @staticmethod
    async def _first(items: AsyncIterator[Any], limit: int | None) -> list[Any]:
        out: list[Any] = []
        if limit is not None and limit <= 0:
            return out
        async for eid in items:
            out.append(eid)
            if limit is not None and len(out) >= limit:
                break
        return out

    def iter_find(self, entity_type: str, *, page_size: int = 500) -> AsyncIterator[Any]:
        """Every entity of a type (and of derived types), page by page."""
        return self._iter_pages(lambda cursor: command_json.find_entities(entity_type, page_size, cursor))

    async def find(self, entity_type: str, *, limit: int | None = None, page_size: int = 500) -> list[Any]:
        """The ids of entities of a type, at most ``limit`` of them (all pages)."""
        size = min(page_size, limit) if limit else page_size
        return await self._first(self.iter_find(entity_type, page_size=max(size, 1)), limit)

    def iter_children(self, entity_id: Any, *, page_size: int = 500) -> AsyncIterator[Any]:
        """An entity's children in ``Children`` order, page by page
        (``GetChildren``): a folder of any size, without one giant reply."""
        return self._iter_pages(lambda cursor: command_json.get_children(entity_id, page_size, cursor))

    async def children(self, entity_id: Any, *, limit: int | None = None, page_size: int = 500) -> list[Any]:
        """The ids of an entity's children, at most ``limit`` of them (all pages)."""
        size = min(page_size, limit) if limit else page_size
        return await self._first(self.iter_children(entity_id, page_size=max(size, 1)), limit)

    async def entity_types(self, *, page_size: int = 500) -> list[str]:
        out: list[str] = []
        cursor: Any = None
        seen: set[str] = set()
        while True:
            page = (await self.command(command_json.get_entity_types(page_size, cursor))).get("response") or {}
            out.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if cursor is None or repr(cursor) in seen:
                return out
            seen.add(repr(cursor))

    async def entity_exists(self, entity_id: Any) -> bool:
        return bool((await self.command(command_json.entity_exists(entity_id))).get("response"))

    async def field_exists(self, entity_type: str, field: str) -> bool:
        return bool((await self.command(command_json.field_exists(entity_type, field))).get("response"))

    # ------------------------------------------------------------ notifications

    async def watch(self, config: Any, from_index: int | None = None, *, decode: bool = True) -> Watch:
        """Register a notification stream (``NotifyConfig`` JSON, see ``watch.notify_on_*``).

        Without ``from_index`` the stream starts after the node's current
        ``last_applied``, so that it can be resumed exactly after a reconnect.
        Either way the node's metrics tell the client every member's address,
        so that the watch can resume on another node if this one fails.
        """
        try:
            applied = (await self.metrics()).get("last_applied")
        except QcoreError:
            applied = None
        if from_index is None:
            from_index = _log_index(applied)
            if from_index is not None:
                from_index += 1
        if not isinstance(config, Mapping):
            encoded = convert.encode_notify_config(config)
            if encoded is None:
                raise TypeError(f"cannot use {config!r} as a NotifyConfig")
            config = encoded
        config = await self._pin_path(config)
        w = Watch(self, dict(config), from_index, decode)
        self._watches.add(w)
        # Shielded: a registration the node may already have made is not left behind by a cancel.
        registering = asyncio.ensure_future(w.register())
        try:
            await asyncio.shield(registering)
        except asyncio.CancelledError:
            self._watches.discard(w)
            self._spawn(_unwatch_once_answered(w, registering))
            raise
        except BaseException:
            self._watches.discard(w)
            w.fail(ConnectionFailed("registration failed"))
            raise
        return w

    async def unwatch(self, w: Watch) -> None:
        await w.close()

    async def _pin_path(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """An ``EntityId`` config on an ``A->B->F`` path, made one on the field the path reaches now.

        A node follows a path when the registration is made; a watch registers again
        on every reconnect, so it must name the field itself, or a hop changed
        meanwhile (the entity moved) would switch it to another entity's field
        (docs/notifications.md). A path that does not resolve is left for the node to refuse.
        """
        body = config.get("EntityId")
        path = body.get("field_type") if isinstance(body, Mapping) else None
        if not isinstance(body, Mapping) or not isinstance(path, str) or "->" not in path:
            return config
        hops, _, fld = path.rpartition("->")
        if fld.isdigit():  # the path ends at a list element, not a field
            return config
        try:
            reached = (await self.read(body.get("entity_id"), hops))[0]
        except CommandError:
            return config
        if not isinstance(reached, EntityReference) or reached.v is None:
            return config
        return {"EntityId": {**body, "entity_id": command_json.entity_id(reached.v), "field_type": fld}}


async def _unwatch_once_answered(w: Watch, registering: asyncio.Future[None]) -> None:
    """A watch() cancelled while registering: once the node answers, unregister what it made."""
    try:
        await registering
    except Exception:  # not registered: nothing to undo
        pass
    await w.close()


def _plain(value: Any, where: str) -> dict[str, Any]:
    """A value with no schema to fit it to (a ``->`` path): the obvious reading (command_json.value)."""
    try:
        return command_json.value(value)
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"{where}: {e}") from None


def _read_body(body: Mapping[str, Any]) -> dict[str, Any]:
    reqs = body.get("response") or []
    if len(reqs) != 1 or not isinstance(reqs[0], Mapping) or "Read" not in reqs[0]:
        raise CommandError(f"unexpected reply to a read: {body!r}")
    return dict(reqs[0]["Read"])


def _log_index(x: Any) -> int | None:
    """An index from metrics: a plain int or an openraft log id ``{"leader_id", "index"}``."""
    if type(x) is int:
        return x
    if isinstance(x, Mapping) and type(x.get("index")) is int:
        return x["index"]
    return None


def _names_a_choice(value: Any) -> bool:
    """A Choice given by name (``"Manual"``, ``{"Choice": "Manual"}``), not by index."""
    return isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("Choice"), str))
