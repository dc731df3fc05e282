"""The entity tree by names: ``/Plant/Line1`` instead of ``Line$5``.

Every entity that inherits ``Object`` has a ``Name``, a ``Parent`` and
``Children`` (SPEC 3); the tree is those links. A path is names from a root
(an entity with no parent) down, joined by ``/``; an id in text form
(``Line$5``) may start a path instead of a root's name. Each step is one
batched, linearizable read; listing the roots reads every entity's ``Parent``
(there is no index of roots), page by page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qcore.client import command_json
from qcore.client.errors import QcoreError

if TYPE_CHECKING:
    from qcore.client.client import Client

__all__ = ["Node", "PathNotFound", "roots", "children", "resolve"]

_PAGE = 500


class PathNotFound(QcoreError):
    """No entity at that path, or (``ambiguous``) a name that more than one sibling has."""

    def __init__(self, message: str, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


@dataclass(frozen=True, slots=True)
class Node:
    """One entity of the tree: its id (JSON), name and number of children."""

    entity_id: dict[str, Any]
    name: str
    children: int

    @property
    def text_id(self) -> str:
        return command_json.entity_id_text(self.entity_id)


async def _describe(c: Client, ids: Sequence[dict[str, Any]]) -> list[tuple[Node, dict[str, Any] | None]]:
    """Node and parent of each id, read in batches of reads."""
    out: list[tuple[Node, dict[str, Any] | None]] = []
    for start in range(0, len(ids), _PAGE):
        page = ids[start:start + _PAGE]
        reqs = [command_json.read_request(e, f) for e in page for f in ("Name", "Parent", "Children")]
        body = await c.command(command_json.update_entity(reqs))
        values = [(r.get("Read") or {}).get("value") or {} for r in body.get("response") or []]
        for i, e in enumerate(page):
            name, parent, kids = values[3 * i:3 * i + 3]
            out.append((Node(e, name.get("String", ""), len(kids.get("EntityList") or [])),
                        parent.get("EntityReference")))
    return out


async def roots(c: Client) -> list[Node]:
    """The entities with no parent, in id order."""
    ids = [command_json.entity_id(e) for e in await c.find("Object")]
    return [n for n, parent in await _describe(c, sorted(ids, key=lambda e: e["id"])) if parent is None]


async def children(c: Client, entity_id: Any) -> list[Node]:
    """An entity's children, in their order in its ``Children`` list (paged: GetChildren)."""
    kids = [command_json.entity_id(k) for k in await c.children(entity_id, page_size=_PAGE)]
    return [n for n, _ in await _describe(c, kids)]


async def resolve(c: Client, path: str) -> Node | None:
    """The entity at ``path`` (``/Plant/Line1``, ``Plant$3/Line1``); None for ``/`` (the roots)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    first, rest = parts[0], parts[1:]
    node: Node | None = None
    if not path.startswith("/"):
        try:
            eid = command_json.entity_id(first)
        except ValueError:
            pass
        else:
            (described,) = await _describe(c, [eid])
            node = described[0]
    if node is None:
        node = _one(await roots(c), first, "/")
    where = f"/{first}"
    for name in rest:
        node = _one(await children(c, node.entity_id), name, where)
        where += f"/{name}"
    return node


def _one(nodes: list[Node], name: str, where: str) -> Node:
    found = [n for n in nodes if n.name == name]
    if not found:
        names = ", ".join(sorted(n.name for n in nodes)[:20]) or "none"
        raise PathNotFound(f"{where} has no child named {name!r} (children: {names})")
    if len(found) > 1:
        ids = ", ".join(n.text_id for n in found)
        raise PathNotFound(f"{where} has {len(found)} children named {name!r} ({ids}): use the id", ambiguous=True)
    return found[0]
