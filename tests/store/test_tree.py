"""The child lists (qcore.store.tree) against a plain list per parent.

Hypothesis drives attaches, detaches, undone batches and rebuilds, and
keeps every view it took: a view must go on listing the children of its
moment however the list changes (and is rebuilt) afterwards.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from qcore.store.columns import Names
from qcore.store.tree import Tree
from qcore.store.types import EntityId, EntityList

PARENTS = (1, 2, 3)


class TreeVsLists(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.names = Names()
        self.codes = [self.names.code("A"), self.names.code("B")]
        self.tree = Tree(self.names)
        self.model: dict[int, list[EntityId]] = {p: [] for p in PARENTS}
        self.keys: dict[EntityId, int] = {}
        self.next = 100
        self.views: list[tuple[object, tuple[EntityId, ...]]] = []

    def _new_child(self, typ: int) -> EntityId:
        self.next += 1
        return EntityId(self.names.names[self.codes[typ]], self.next)

    @rule(p=st.sampled_from(PARENTS), typ=st.integers(0, 1), n=st.integers(1, 40))
    def attach(self, p, typ, n):
        for _ in range(n):
            kid = self._new_child(typ)
            self.keys[kid] = self.tree.attach(p, kid.id, self.codes[typ])
            self.model[p].append(kid)
        self.tree.settle()

    @precondition(lambda self: any(self.model.values()))
    @rule(p=st.sampled_from(PARENTS), picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=30))
    def detach(self, p, picks):
        for pick in picks:
            kids = self.model[p]
            if not kids:
                break
            kid = kids.pop(pick % len(kids))
            self.tree.detach(p, self.keys.pop(kid))
        self.tree.settle()

    @precondition(lambda self: any(self.model.values()))
    @rule(p=st.sampled_from(PARENTS), src=st.sampled_from(PARENTS), pick=st.integers(0, 10_000))
    def move(self, p, src, pick):
        kids = self.model[src]
        if not kids:
            return
        kid = kids.pop(pick % len(kids))
        self.tree.detach(src, self.keys.pop(kid))
        self.keys[kid] = self.tree.attach(p, kid.id, self.names.codes[kid.typ])
        self.model[p].append(kid)
        self.tree.settle()

    @rule(p=st.sampled_from(PARENTS), pick=st.integers(0, 10_000), add=st.booleans())
    def undone_batch(self, p, pick, add):
        """A batch that detaches and attaches, then fails: everything goes back."""
        tree = self.tree
        clock = tree.clock
        undo = []
        kids = self.model[p]
        if kids:
            kid = kids[pick % len(kids)]
            undo.append((tree.undo_detach, p, tree.detach(p, self.keys[kid])))
        if add:
            tree.attach(p, 99_999, self.codes[0])
            undo.append((tree.undo_attach, p, None))
        for fn, a, b in reversed(undo):
            fn(a, b)
        tree.clock = clock
        tree.settle()

    @rule(p=st.sampled_from(PARENTS))
    def take_view(self, p):
        self.views.append((self.tree.view(p), tuple(self.model[p])))

    @invariant()
    def lists_match(self):
        if not hasattr(self, "tree"):
            return
        tree = self.tree
        for p, kids in self.model.items():
            assert tree.count(p) == len(kids)
            assert tree.value(p) == EntityList(tuple(kids))
            for k in {0, len(kids) // 2, len(kids) - 1} if kids else ():
                assert tree.at(p, k) == kids[k]
            assert tree.at(p, len(kids)) is None
            walked, cursor = [], 0
            while True:
                items, nxt = tree.page(p, cursor, 7)
                walked.extend(items)
                if nxt is None:
                    break
                cursor = nxt
            assert walked == kids
        for view, expected in self.views:
            got = view.value() if hasattr(view, "value") else view
            assert got == EntityList(expected)


TreeVsLists.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_child_lists_match_plain_lists = TreeVsLists.TestCase


def test_rebuild_leaves_old_views_alone():
    names = Names()
    a = names.code("A")
    tree = Tree(names)
    keys = [tree.attach(1, n, a) for n in range(1, 201)]
    before = tree.view(1)
    for k in keys[:150]:
        tree.detach(1, k)
    tree.settle()  # 150 dead > 50 live: rebuilt into a new list
    assert len(tree.lists[1].keys) == 50
    assert before.value() == EntityList(tuple(EntityId("A", n) for n in range(1, 201)))
    assert tree.value(1) == EntityList(tuple(EntityId("A", n) for n in range(151, 201)))


def test_paging_cursor_survives_the_cursor_child_leaving():
    names = Names()
    a = names.code("A")
    tree = Tree(names)
    keys = {n: tree.attach(1, n, a) for n in range(1, 11)}
    first, cursor = tree.page(1, 0, 4)
    assert [e.id for e in first] == [1, 2, 3, 4] and cursor == keys[4]
    tree.detach(1, keys[4])  # the child the cursor names is gone
    tree.detach(1, keys[2])
    tree.attach(1, 11, a)
    rest, nxt = tree.page(1, cursor, 100)
    assert [e.id for e in rest] == [5, 6, 7, 8, 9, 10, 11] and nxt is None
