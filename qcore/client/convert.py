"""The bridge between wire JSON and the store's own types (:mod:`qcore.protocol.values`).

The client speaks JSON; its helpers return the store's types (``EntityId``,
``Value``, ``Timestamp``, ``EntitySchema``, ``Notification``): everything they
return goes through the ``decode_*`` functions here, and every argument that
is not already JSON or a plain Python value through the ``encode_*`` ones.
When the store codec is not importable (a client-only install) the client
still works: it returns the JSON as is.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

logger = logging.getLogger(__name__)

try:
    _values: Any = importlib.import_module("qcore.protocol.values")
except ImportError:  # the store codec is optional for the client
    _values = None


def _fn(name: str) -> Any:
    return getattr(_values, name, None) if _values is not None else None


def _encode(name: str, obj: Any) -> Any:
    fn = _fn(name)
    if fn is None:
        return None
    try:
        return fn(obj)
    except Exception:  # not one of the store's types: let the caller report it
        return None


def _decode(name: str, data: Any) -> Any:
    fn = _fn(name)
    if fn is None:
        return data
    try:
        return fn(data)
    except ValueError as e:  # the store codec's CodecError: the node sent something malformed
        from qcore.client.errors import ServerError

        raise ServerError(f"malformed reply from the node: {e}") from None


def encode_entity_id(obj: Any) -> Any:
    return _encode("encode_entity_id", obj)


def encode_value(obj: Any) -> Any:
    return _encode("encode_value", obj)


def encode_timestamp(obj: Any) -> Any:
    return _encode("encode_timestamp", obj)


def encode_request(obj: Any) -> Any:
    return _encode("encode_request", obj)


def encode_notify_config(obj: Any) -> Any:
    return _encode("encode_notify_config", obj)


def encode_schema(obj: Any) -> Any:
    return _encode("encode_entity_schema", obj)


def decode_entity_id(data: Any) -> Any:
    return None if data is None else _decode("decode_entity_id", data)


def decode_value(data: Any) -> Any:
    return None if data is None else _decode("decode_value", data)


def decode_timestamp(data: Any) -> Any:
    return None if data is None else _decode("decode_timestamp", data)


def decode_request(data: Any) -> Any:
    return _decode("decode_request", data)


def decode_schema(data: Any) -> Any:
    return None if data is None else _decode("decode_entity_schema", data)


def decode_notification(data: Any) -> Any:
    return _decode("decode_notification", data)
