"""qcore.protocol.page_cap against the store and the real encoder: a page
asked of the store with the cap is answered exactly as asked when it fits,
and refused only when its encoding could not fit in the frame."""

from __future__ import annotations

from dataclasses import replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.protocol.page_cap import MIN_ID_BYTES, capped_page, page_too_large
from qcore.protocol.values import encode_command_response
from qcore.store import EntityId
from qcore.store.commands import FindEntities, GetChildren, PageOpts, UpdateEntity
from tests.store.helpers import create, make_store

STORE = make_store()
FOLDER = create(STORE, "Folder", "f")
for _i in range(60):
    create(STORE, "User", f"u{_i}", parent=FOLDER)
for _i in range(15):
    create(STORE, "Admin", f"a{_i}")  # FindEntities("User") merges two types


def test_the_shortest_id_in_a_page_is_min_id_bytes_with_its_comma() -> None:
    assert len(orjson.dumps([{"typ": "X", "id": 0}] * 2)) == 2 + 2 * MIN_ID_BYTES - 1


pages = st.sampled_from([FindEntities("User"), FindEntities("Admin"), GetChildren(FOLDER)])
opts = st.one_of(st.none(), st.builds(PageOpts, st.integers(1, 100), st.sampled_from([None, "3", "20"])))


@settings(max_examples=300, deadline=None)
@given(pages, opts, st.integers(1, 2000))
def test_a_capped_page_is_the_same_answer_or_one_that_could_not_have_fit(page, po, limit) -> None:
    cmd = replace(page, page_opts=po)
    asked = STORE.query(cmd)
    capped = capped_page(cmd, limit)
    if capped is None:  # it asks for no more than fit already
        assert po is not None and po.limit <= max(1, limit // MIN_ID_BYTES)
        return
    resp = STORE.query(capped)
    refused = page_too_large("r", capped, resp, limit)
    if refused is None:
        assert resp == asked  # same items, total and cursor
    else:
        assert refused.kind == "invalid" and "ask for smaller pages" in refused.error
        items = asked.response.items
        assert len(orjson.dumps([{"typ": e.typ, "id": e.id} for e in items])) > limit
        assert len(orjson.dumps(encode_command_response(asked))) > limit


def test_a_page_without_a_limit_over_a_large_folder_builds_only_what_a_frame_holds() -> None:
    cmd = GetChildren(FOLDER)
    capped = capped_page(cmd, 20 * MIN_ID_BYTES)
    assert capped == GetChildren(FOLDER, PageOpts(20))
    refused = page_too_large(5, capped, STORE.query(capped), 20 * MIN_ID_BYTES)
    assert refused is not None and "more than 20 entity ids" in refused.error and refused.id == 5
    # Not pages: left alone; a limit that is not a number: left for the store to refuse.
    assert capped_page(UpdateEntity([]), 100) is None
    assert capped_page(GetChildren(FOLDER, PageOpts("ten")), 100) is None  # type: ignore[arg-type]
    assert capped_page(FindEntities("User", PageOpts(3, "9")), 100) is None
    assert capped_page(GetChildren(EntityId("Folder", 999)), 100) is not None  # the store says it is not there
