"""The schemas a store holds and what it derives from them once per change.

A :class:`Catalog` is immutable: a schema change builds a new one (with
:meth:`Catalog.with_schemas`, which validates the whole set) and the store
swaps it in only if everything else about the change succeeds.
"""

from __future__ import annotations

from typing import Mapping

from .schema import EntitySchema, FieldSchema, descendants, resolve_complete


class Catalog:
    """Own schemas by type, complete (inherited) field maps, each type's
    descendants (itself included), and the sorted type names."""

    __slots__ = ("schemas", "complete", "desc", "types")

    def __init__(self, schemas: Mapping[str, EntitySchema] | None = None,
                 complete: Mapping[str, Mapping[str, FieldSchema]] | None = None) -> None:
        self.schemas: Mapping[str, EntitySchema] = dict(schemas or {})
        self.complete: Mapping[str, Mapping[str, FieldSchema]] = (
            dict(complete) if complete is not None else resolve_complete(self.schemas))
        self.desc: Mapping[str, tuple[str, ...]] = descendants(self.schemas)
        self.types: list[str] = sorted(self.schemas)

    def with_schemas(self, new: Mapping[str, EntitySchema]) -> Catalog:
        """This catalog with ``new`` added or replacing; raises SchemaError."""
        schemas = {**self.schemas, **new}
        return Catalog(schemas, resolve_complete(schemas))

    def own(self, typ: str) -> EntitySchema | None:
        return self.schemas.get(typ)

    def fields(self, typ: str) -> Mapping[str, FieldSchema] | None:
        """The complete field map of ``typ`` (ordered by rank, then name)."""
        return self.complete.get(typ)

    def descendants(self, typ: str) -> tuple[str, ...] | None:
        return self.desc.get(typ)
