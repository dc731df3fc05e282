"""The store's two exceptions.

``StoreError`` is for the caller's misuse of the API; ``Fail`` is internal: a
request-level failure raised deep inside a command and turned into the
``error`` of its response at the command boundary (after the undo log has
restored the state). Anything else escaping a command is a bug.
"""

from __future__ import annotations


class StoreError(Exception):
    """Misuse of the store API by the caller (not a bad request): a non-command
    passed to ``apply``, a write command passed to ``query``, a broken path in
    ``read_path``, a corrupt snapshot."""


class Fail(Exception):
    """A request-level failure; ``msg`` becomes the ``error`` of the response."""

    __slots__ = ("msg",)

    def __init__(self, msg: str) -> None:
        self.msg = msg
