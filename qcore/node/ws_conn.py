"""A websockets server connection that hands each message straight to a callback.

websockets' asyncio connection queues every incoming message in an
assembler, and the connection's handler task takes it out with `recv()`:
a queue put, a future and a task switch per message. A node's handler only
parses the message and answers later from a callback, so the queue buys
nothing, and on the bench VM that hop was about a tenth of a node's CPU per
request. This subclass (passed to `serve(create_connection=...)`, the
documented hook for it) delivers each complete, unfragmented text or binary
message to `sink` from `data_received`, in order. websockets still does the
handshake, frame parsing, size limits, masking rules, pings and closing.

A read that is exactly one whole, masked, unfragmented data frame within
the size limit, with nothing buffered before it (nearly every request and
Raft message), is unwrapped here (qcore.protocol.ws_frames) instead of by
websockets' generator-based parser; anything else goes to websockets,
which parses or rejects it as before. In alternating runs this took ~0.09
ms off a 3-node cluster's single-client write p50 (docs/benchmarks.md).

Fragmented messages (rare: clients do not fragment by default) still go
through the assembler, so the handler keeps reading with `async for` for
them; their order relative to unfragmented messages on the same connection
is not preserved, which is fine since concurrent requests on one connection
carry no ordering promise (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any, Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode

from qcore.protocol.ws_frames import whole_message

MessageSink = Callable[[bytes, bool], None]  # (payload, is_text)

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class SinkServerConnection(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink: MessageSink | None = None
        self._in_fragmented = False

    def data_received(self, data: bytes) -> None:
        # The common case, one whole request frame per read with nothing
        # buffered, is unwrapped here rather than by websockets' parser.
        sink = self.sink
        if sink is not None and not self._in_fragmented:
            whole = whole_message(self.protocol, data)
            if whole is not None:
                payload, text = whole
                sink(payload, text)
                return
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        sink = self.sink
        if sink is not None and type(event) is Frame:
            op = event.opcode
            if op is _TEXT or op is _BINARY:
                if event.fin and not self._in_fragmented:
                    sink(event.data, op is _TEXT)
                    return
                self._in_fragmented = True
            elif op is _CONT and event.fin:
                self._in_fragmented = False
        super().process_event(event)
