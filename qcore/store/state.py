"""The entity store: the deterministic state machine every node applies the log to.

Pure Python, no I/O, no clock, no randomness. Everything that could differ
between nodes is an *input*: the command and the ``now`` it was proposed at.
New entity ids come from a counter that is part of the state (and of the
snapshot), starting at 1 and incremented in log order, so every node computes
the same ids; deleted ids are never handed out again.

The state is four parts, each in a module of its own:

* :class:`~qcore.store.catalog.Catalog`: schemas and what is derived from them;
* :class:`~qcore.store.table.Entities`: one columnar table per type and the
  entity number -> (table, row) map (memory: arrays, not objects per field);
* :class:`~qcore.store.tree.Tree`: every parent's children, with O(1)
  appends and O(log n) removals;
* the id counter.

The commands are applied by :mod:`.writes` and :mod:`.schema_changes`,
answered by :mod:`.queries`, and the state is serialised by :mod:`.snapshot`;
those modules use the parts through the properties below (the store's
internal API), never the fields.

Errors inside a command are raised as the private ``Fail`` and turned into
an error response at the command boundary after the undo log has restored
the state; nothing else is caught, so a bug is never mistaken for a bad request.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from . import queries, schema_changes, writes
from .catalog import Catalog
from .cells import Cell, cell, locate
from .columns import Names
from .commands import (
    Change,
    CommandRequest,
    CommandResponse,
    CreateEntity,
    DeleteEntity,
    EntityExists,
    FieldExists,
    FindEntities,
    GetChildren,
    GetCompleteSchema,
    GetEntityTypes,
    GetSchema,
    LoadConfig,
    Read,
    Request,
    SetSchema,
    UpdateEntity,
    UpdateEntityResponse,
)
from .errors import Fail, StoreError
from .table import Entities
from .tree import Tree
from .types import EntityId, Timestamp

logger = logging.getLogger(__name__)


class Store:
    """An in-memory, deterministic entity/field database.

    ``apply`` runs any command (as the replicated log does) and returns the
    response plus the field changes it made; ``query`` runs read-only commands
    without touching state. Neither raises for a bad request: the error is in
    the response and the state is unchanged.
    """

    __slots__ = ("_catalog", "_entities", "_tree", "_next_id")

    def __init__(self) -> None:
        names = Names()
        self._catalog = Catalog()
        self._entities = Entities(names)
        self._tree = Tree(names)
        self._next_id = 1

    # ------------------------------------------------------------------ API

    def apply(self, cmd: CommandRequest, now: Timestamp,
              stop: Callable[[Request], bool] | None = None,
              check: Callable[[Request], str | None] | None = None) -> tuple[CommandResponse, list[Change]]:
        """Apply one command at proposal time ``now``; deterministic. A batch's
        requests are shown to ``stop`` as their answers are made; once it says
        True, the response answers no more Reads (the state changes alike: only
        the reply is cut short, for a caller's size limit). ``check`` is shown
        each request of a batch before it runs, on the state the requests before
        it left; a text fails the batch there, all of it undone."""
        if cmd.__class__ is UpdateEntity:
            return writes.update(self, cmd, now, stop, check)
        h = _APPLY.get(cmd.__class__)
        if h is None:
            q = _QUERY.get(cmd.__class__)
            if q is None:
                raise StoreError(f"not a store command: {cmd!r}")
            return q(self, cmd), []
        return h(self, cmd, now)

    def query(self, cmd: CommandRequest, stop: Callable[[Read], bool] | None = None) -> CommandResponse:
        """Answer a read-only command (see :meth:`is_read_only`) without mutating.
        For a Read batch, ``stop`` is shown each read as it is made; True ends the
        batch there, answered with the reads made so far (a caller's size limit)."""
        c = cmd.__class__
        if c is UpdateEntity:
            return self._read_batch(cmd, stop)  # type: ignore[arg-type]
        q = _QUERY.get(c)
        if q is None:
            raise StoreError(f"{c.__name__} is not a read-only command; use apply()")
        return q(self, cmd)  # type: ignore[no-any-return]

    @staticmethod
    def is_read_only(cmd: CommandRequest) -> bool:
        """True for UpdateEntity batches of only Reads, Get*, Find*, *Exists."""
        c = cmd.__class__
        if c is UpdateEntity:
            for r in cmd.request:  # type: ignore[union-attr]
                if r.__class__ is not Read:
                    return False
            return True
        return c in _QUERY

    def read_path(self, entity_id: EntityId, path: str) -> Cell:
        """Read a field or ``->`` path: ``(value, write_time, writer_id)``;
        raises StoreError saying where a path broke."""
        try:
            t, row, _, col = locate(self._entities, self._tree, entity_id, path)
        except Fail as f:
            raise StoreError(f.msg) from None
        return cell(self._tree, t, row, col)

    def snapshot(self, consume: bool = False) -> bytes:
        """The whole state as deterministic, compact bytes (see snapshot.py).
        ``consume`` releases the state as it is encoded, which lowers the
        peak memory of serialising a :meth:`clone`; the store is unusable after."""
        from .snapshot import dump

        return dump(self, consume)

    @classmethod
    def restore(cls, data: bytes) -> Store:
        """Rebuild a store from :meth:`snapshot` bytes (this version's or an
        earlier one's); raises StoreError if they are corrupt."""
        from .snapshot import load

        return load(data)

    @property
    def next_id(self) -> int:
        """The number the next created entity will get."""
        return self._next_id

    def entity_count(self) -> int:
        return self._entities.count

    def entity_fields(self, entity_id: EntityId) -> dict[str, Cell] | None:
        """An entity's cells ``{field: (value, write_time, writer_id)}``, or None."""
        found = self._entities.find(entity_id)
        if found is None:
            return None
        t, row = found
        return {name: cell(self._tree, t, row, col) for name, col in t.cols.items()}

    def check_invariants(self) -> list[str]:
        """Audit the whole state (O(size)); the problems found, [] if sound.
        For tests and simulators, not the hot path (see audit.py)."""
        from .audit import check_invariants

        return check_invariants(self)

    # ------------------------------------------------- internal API (qcore.store)

    @property
    def catalog(self) -> Catalog:
        """Schemas (read-only; replaced whole by :meth:`set_catalog`)."""
        return self._catalog

    @property
    def entities(self) -> Entities:
        """Every entity's cells, by type."""
        return self._entities

    @property
    def tree(self) -> Tree:
        """Every parent's children."""
        return self._tree

    def take_id(self) -> int:
        """Hand out the next entity number."""
        n = self._next_id
        self._next_id = n + 1
        return n

    def set_catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def copy(self) -> Store:
        """An independent copy (through a snapshot)."""
        return Store.restore(self.snapshot()) if (self._entities.count or self._catalog.schemas) else Store()

    def clone(self) -> Store:
        """A copy of the state now, sharing nothing mutable with this store,
        so that another thread can serialise it (:meth:`snapshot`) while
        this one goes on applying. Cheap: C-level copies of the columns'
        arrays, no Python object per entity. The clone is read only: it is
        for reading and writing out once (``snapshot(consume=True)``), not
        for applying commands to (the schemas are shared, as a
        :class:`Catalog` is never changed in place)."""
        ents = self._entities.clone()
        return self.__class__.assemble(self._catalog, ents, self._tree.clone(ents.names), self._next_id)

    def become(self, other: Store) -> None:
        """Take over ``other``'s state (an atomic multi-step change built on a copy)."""
        self._catalog, self._entities, self._tree, self._next_id = (
            other._catalog, other._entities, other._tree, other._next_id)

    @classmethod
    def assemble(cls, catalog: Catalog, entities: Entities, tree: Tree, next_id: int) -> Store:
        """A store from parts (snapshot loading)."""
        s = cls()
        s._catalog, s._entities, s._tree, s._next_id = catalog, entities, tree, next_id
        return s

    # ----------------------------------------------------------------- reads

    def _read_batch(self, cmd: UpdateEntity, stop: Callable[[Read], bool] | None) -> UpdateEntityResponse:
        out: list[Request] = []
        ents, tree = self._entities, self._tree
        i = 0
        try:
            for r in cmd.request:
                if r.__class__ is not Read:
                    raise StoreError(f"request[{i}] is a {r.__class__.__name__}: query() serves only Reads; use apply()")
                t, row, _, col = locate(ents, tree, r.entity_id, r.field_type)
                v, wt, w = cell(tree, t, row, col)
                read = Read(r.entity_id, r.field_type, v, wt, w)
                out.append(read)
                i += 1
                if stop is not None and stop(read):
                    break
        except Fail as f:
            return UpdateEntityResponse([], f"request[{i}]: {f.msg}")
        return UpdateEntityResponse(out)


_APPLY: dict[type, Callable[[Store, Any, Timestamp], tuple[Any, list[Change]]]] = {
    UpdateEntity: writes.update,
    CreateEntity: writes.create,
    DeleteEntity: writes.delete,
    SetSchema: schema_changes.set_schema,
    LoadConfig: schema_changes.load_config,
}
_QUERY: dict[type, Callable[[Store, Any], Any]] = {
    GetSchema: queries.get_schema,
    GetCompleteSchema: queries.get_complete_schema,
    FindEntities: queries.find,
    GetEntityTypes: queries.get_types,
    GetChildren: queries.get_children,
    EntityExists: queries.entity_exists,
    FieldExists: queries.field_exists,
}
