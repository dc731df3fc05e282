"""A page of ids asks the store for no more than a reply frame can hold.

``FindEntities`` and ``GetChildren`` without ``page_opts`` (or with a large
``limit``) make the store list every id it has: at 1M entities a ~100 MB
list of ``EntityId`` built, only for the reply-size check after it
(qcore.protocol.reply_size) to refuse it. No entity id encodes in fewer than
``MIN_ID_BYTES`` (``{"typ":"X","id":0}`` and a comma), so a frame of
``limit`` bytes holds at most ``limit // MIN_ID_BYTES`` of them: the node
asks the store for that many. If the store says there are more, the whole
page could not have been sent and is refused; otherwise the answer is the
one the request asked for (same items, total and cursor).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error
from qcore.store.commands import FindEntities, GetChildren, PageOpts

__all__ = ["MIN_ID_BYTES", "capped_page", "page_too_large"]

MIN_ID_BYTES = len('{"typ":"X","id":0},')


def capped_page(command: Any, limit: int) -> Any | None:
    """``command`` asking for at most as many ids as ``limit`` bytes can hold,
    or None if it is not a page of ids or already asks for no more."""
    if command.__class__ is not FindEntities and command.__class__ is not GetChildren:
        return None
    cap = max(1, limit // MIN_ID_BYTES)
    po = command.page_opts
    if po is not None and (po.limit.__class__ is not int or po.limit <= cap):
        return None  # small enough, or not a number: the store says what is wrong with it
    return replace(command, page_opts=PageOpts(cap, po.cursor if po is not None else None))


def page_too_large(rid: Any, capped: Any, resp: Any, limit: int) -> m.Error | None:
    """The refusal of the page ``capped`` stood in for, if the store's answer
    ``resp`` to it says more ids were left than it could hold; else None."""
    page = resp.response
    if resp.error is not None or page is None or page.next_cursor is None:
        return None
    n = capped.page_opts.limit
    return error(rid, Kind.INVALID, (
        f"reply too large: the page would hold more than {n} entity ids, at least {(n + 1) * MIN_ID_BYTES - 1} "
        f"bytes, over the limit of {limit} (--max-frame-bytes); ask for smaller pages (page_opts.limit)"))
