"""The entity tree's ``Children`` lists, kept so that a folder of a million
children costs O(1) to append to and O(log n) to remove from, index or page.

Every attachment of a child to a parent (a create under it, a move to it)
takes the next value of one store-wide counter, ``clock``, as the child's
*link key*; a parent's children are its attached children in link-key order,
which is the order SPEC 3 gives them (appended at the end). The counter is
part of the replicated state, so keys are the same on every node and serve
as paging cursors.

A :class:`ChildList` keeps, per slot, the link key, the child's number and
type code, and (once anything was removed) the clock value at which the
child was removed. Removal only marks the slot; when dead slots outnumber
live ones, the list is rebuilt into a new object. Marks instead of deletes
make past versions readable: a :class:`ChildrenView` is (list, slots then,
clock then) and lists the children that were there at that moment, which is
what a change record's old and new ``Children`` values are, at O(1) cost
each. A rebuild leaves the old object to the views that still hold it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import Any

from .columns import Names
from .types import I64_MAX, EntityId, EntityList, make_unchecked

LIVE = I64_MAX  # `gone` of a slot whose child is still attached
_REBUILD_MIN = 32  # dead slots a list carries before a rebuild is worth it

EMPTY = make_unchecked(EntityList, ())


class _Fenwick:
    """Counts of live slots for finding the i-th live child in O(log n)."""

    __slots__ = ("tree",)

    def __init__(self, flags: list[int]) -> None:
        n = len(flags)
        tree = array("i", [0]) * (n + 1)
        for i in range(1, n + 1):
            tree[i] += flags[i - 1]
            j = i + (i & -i)
            if j <= n:
                tree[j] += tree[i]
        self.tree = tree

    def add(self, i: int, delta: int) -> None:
        tree, n = self.tree, len(self.tree) - 1
        i += 1
        while i <= n:
            tree[i] += delta
            i += i & -i

    def prefix(self, i: int) -> int:
        """Live slots among the first ``i``."""
        tree, s = self.tree, 0
        while i > 0:
            s += tree[i]
            i -= i & -i
        return s

    def clone(self) -> _Fenwick:
        f = _Fenwick.__new__(_Fenwick)
        f.tree = self.tree[:]
        return f

    def append(self, flag: int) -> None:
        j = len(self.tree)
        self.tree.append(flag + self.prefix(j - 1) - self.prefix(j - (j & -j)))

    def select(self, k: int) -> int:
        """The slot of the k-th (0-based) live child; k < live count."""
        tree, n = self.tree, len(self.tree) - 1
        pos, step = 0, 1 << n.bit_length()
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] <= k:
                pos = nxt
                k -= tree[nxt]
            step >>= 1
        return pos


class ChildList:
    """The children of one parent (see the module docstring)."""

    __slots__ = ("keys", "nums", "typs", "gone", "live", "fen")

    def __init__(self) -> None:
        self.keys: array[int] = array("q")
        self.nums: array[int] = array("Q")
        self.typs: array[int] = array("i")
        self.gone: array[int] | None = None
        self.live = 0
        self.fen: _Fenwick | None = None

    def clone(self) -> ChildList:
        c = ChildList.__new__(ChildList)
        c.keys, c.nums, c.typs = self.keys[:], self.nums[:], self.typs[:]
        c.gone = None if self.gone is None else self.gone[:]
        c.live = self.live
        c.fen = None if self.fen is None else self.fen.clone()
        return c

    def append(self, key: int, num: int, code: int) -> None:
        self.keys.append(key)
        self.nums.append(num)
        self.typs.append(code)
        if self.gone is not None:
            self.gone.append(LIVE)
        self.live += 1
        if self.fen is not None:
            self.fen.append(1)

    def pop(self) -> None:
        """Undo the last :meth:`append`."""
        self.keys.pop()
        self.nums.pop()
        self.typs.pop()
        if self.gone is not None:
            self.gone.pop()
        self.live -= 1
        self.fen = None

    def slot(self, key: int) -> int:
        i = bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise KeyError(key)
        return i

    def remove(self, key: int, clock: int) -> int:
        """Mark the child attached under ``key`` removed at ``clock``; its slot."""
        i = self.slot(key)
        gone = self.gone
        if gone is None:
            gone = self.gone = array("q", [LIVE]) * len(self.keys)
        gone[i] = clock
        self.live -= 1
        if self.fen is not None:
            self.fen.add(i, -1)
        return i

    def unremove(self, i: int) -> None:
        """Undo a :meth:`remove` of slot ``i``."""
        self.gone[i] = LIVE  # type: ignore[index]
        self.live += 1
        self.fen = None

    def dense(self) -> bool:
        return self.live == len(self.keys)

    def _counts(self) -> _Fenwick:
        fen = self.fen
        if fen is None:
            gone = self.gone if self.gone is not None else array("q", [LIVE]) * len(self.keys)
            fen = self.fen = _Fenwick([1 if g == LIVE else 0 for g in gone])
        return fen

    def live_slot(self, k: int) -> int:
        """The slot of the k-th live child (0-based, k < live)."""
        return k if self.dense() else self._counts().select(k)

    def rank(self, slot: int) -> int:
        """Live slots before ``slot``."""
        return slot if self.dense() else self._counts().prefix(slot)

    def needs_rebuild(self) -> bool:
        dead = len(self.keys) - self.live
        return dead >= _REBUILD_MIN and dead > self.live

    def rebuilt(self) -> ChildList:
        """A new list of the live slots only (this one stays as it is, for views)."""
        new = ChildList()
        gone = self.gone
        keep = [i for i in range(len(self.keys)) if gone is None or gone[i] == LIVE]
        keys, nums, typs = self.keys, self.nums, self.typs
        new.keys = array("q", [keys[i] for i in keep])
        new.nums = array("Q", [nums[i] for i in keep])
        new.typs = array("i", [typs[i] for i in keep])
        new.live = len(keep)
        return new

    def live_nums(self) -> list[int]:
        gone, nums = self.gone, self.nums
        if gone is None:
            return list(nums)
        return [nums[i] for i in range(len(nums)) if gone[i] == LIVE]

    def ids(self, names: Names, end: int, clock: int) -> tuple[EntityId, ...]:
        """The children listed at the moment (``end`` slots, ``clock``) was current."""
        nums, typs, gone, nm = self.nums, self.typs, self.gone, names.names
        if gone is None:
            return tuple([EntityId(nm[typs[i]], nums[i]) for i in range(end)])
        return tuple([EntityId(nm[typs[i]], nums[i]) for i in range(end) if gone[i] > clock])


class ChildrenView:
    """The value of a parent's ``Children`` at one moment, built on demand."""

    __slots__ = ("cl", "end", "clock", "names")

    def __init__(self, cl: ChildList, end: int, clock: int, names: Names) -> None:
        self.cl = cl
        self.end = end
        self.clock = clock
        self.names = names

    def value(self) -> EntityList:
        return make_unchecked(EntityList, self.cl.ids(self.names, self.end, self.clock))  # type: ignore[return-value]

    def __repr__(self) -> str:
        return repr(self.value())


class Tree:
    """Every parent's :class:`ChildList`, and the link-key clock."""

    __slots__ = ("lists", "clock", "names", "touched")

    def __init__(self, names: Names) -> None:
        self.lists: dict[int, ChildList] = {}
        self.clock = 0
        self.names = names
        self.touched: set[int] = set()  # parents with removals since the last settle()

    def clone(self, names: Names) -> Tree:
        """A copy that shares nothing mutable with this tree (type names: ``names``)."""
        t = Tree(names)
        t.lists = {p: cl.clone() for p, cl in self.lists.items()}
        t.clock = self.clock
        t.touched = self.touched.copy()
        return t

    def attach(self, parent: int, child: int, code: int) -> int:
        """Append ``child`` (type code ``code``) to ``parent``'s children; its link key."""
        cl = self.lists.get(parent)
        if cl is None:
            cl = self.lists[parent] = ChildList()
        self.clock += 1
        cl.append(self.clock, child, code)
        return self.clock

    def detach(self, parent: int, key: int) -> int:
        """Remove the child linked under ``key`` from ``parent``; its slot (for undo)."""
        self.clock += 1
        self.touched.add(parent)
        return self.lists[parent].remove(key, self.clock)

    def undo_attach(self, parent: int, _: object = None) -> None:
        self.lists[parent].pop()

    def undo_detach(self, parent: int, slot: int) -> None:
        self.lists[parent].unremove(slot)

    def drop(self, parent: int) -> None:
        """``parent`` was deleted (with every child)."""
        self.lists.pop(parent, None)
        self.touched.discard(parent)

    def settle(self) -> None:
        """Rebuild lists that carry more dead slots than live ones; call only
        between commands (undo logs hold slots of the current objects)."""
        for p in self.touched:
            cl = self.lists.get(p)
            if cl is None:
                continue
            if cl.live == 0:
                del self.lists[p]
            elif cl.needs_rebuild():
                self.lists[p] = cl.rebuilt()
        self.touched.clear()

    # ------------------------------------------------------------ reads
    def child_numbers(self, parent: int) -> list[int]:
        cl = self.lists.get(parent)
        return [] if cl is None else cl.live_nums()

    def count(self, parent: int) -> int:
        cl = self.lists.get(parent)
        return 0 if cl is None else cl.live

    def value(self, parent: int) -> EntityList:
        cl = self.lists.get(parent)
        if cl is None or cl.live == 0:
            return EMPTY  # type: ignore[return-value]
        return make_unchecked(EntityList, cl.ids(self.names, len(cl.keys), self.clock))  # type: ignore[return-value]

    def view(self, parent: int) -> Any:
        """The current value of ``parent``'s Children, cheap to keep: a
        :class:`ChildrenView` (or the shared empty list)."""
        cl = self.lists.get(parent)
        if cl is None or cl.live == 0:
            return EMPTY
        return ChildrenView(cl, len(cl.keys), self.clock, self.names)

    def at(self, parent: int, k: int) -> EntityId | None:
        """The k-th child of ``parent``, or None if it has no more than k."""
        cl = self.lists.get(parent)
        if cl is None or not 0 <= k < cl.live:
            return None
        i = cl.live_slot(k)
        return EntityId(self.names.names[cl.typs[i]], cl.nums[i])

    def page(self, parent: int, after: int, limit: int | None) -> tuple[list[EntityId], int | None]:
        """Children linked after key ``after`` (at most ``limit``) and the
        cursor key for the next page (None if none are left)."""
        cl = self.lists.get(parent)
        if cl is None or cl.live == 0:
            return [], None
        start = bisect_right(cl.keys, after)
        first = cl.rank(start)  # live children before the start
        left = cl.live - first
        n = left if limit is None else min(limit, left)
        nm, nums, typs = self.names.names, cl.nums, cl.typs
        if cl.dense():
            slots: Any = range(start, start + n)
        else:
            slots = [cl.live_slot(first + j) for j in range(n)]
        items = [EntityId(nm[typs[i]], nums[i]) for i in slots]
        nxt = cl.keys[slots[-1]] if n and n < left else None
        return items, nxt
