"""How `qcore` writes its log: text for people, or one JSON object a line.

`--log-format json` lines look like
`{"ts": "2026-12-06T07:12:01.123456Z", "level": "INFO", "logger": "qcore.node.driver",
"node": 2, "msg": "role=Leader term=3 ...", "exc": "Traceback ..."}` (`exc` only with a
traceback), so a log shipper can index them without parsing the text.
"""

from __future__ import annotations

import datetime
import logging
import time

import orjson

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: int) -> None:
        super().__init__()
        self._node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        exc = None
        if record.exc_info:
            exc = self.formatException(record.exc_info)
        elif record.stack_info:
            exc = self.formatStack(record.stack_info)
        return json_line(record.levelname, record.name, self._node_id, record.getMessage(), exc, record.created)


def json_line(level: str, logger: str, node: int | None, msg: str, exc: str | None = None,
              created: float | None = None) -> str:
    """One log line of `--log-format json` (``node`` is null when the command line did not give one)."""
    ts = datetime.datetime.fromtimestamp(time.time() if created is None else created, datetime.timezone.utc)
    obj: dict[str, object] = {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "level": level,
        "logger": logger,
        "node": node,
        "msg": msg,
    }
    if exc is not None:
        obj["exc"] = exc
    return orjson.dumps(obj, default=str).decode()


def configure(node_id: int, level: str, fmt: str) -> None:
    """Set up the root logger of a node process (once, at start-up)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(node_id))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s node={node_id} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level))
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python's warnings too go out as log lines (logger py.warnings), JSON ones with json
