"""Reading a config file's YAML fast enough, and small enough, for a million entities.

libyaml's parser (PyYAML's `CSafeLoader`, when PyYAML was built with it)
produces the document as a stream of events, and `parse_yaml` builds plain
Python data from them directly: no node graph is composed (at 1M entities
the nodes alone took several GiB) and PyYAML's SafeConstructor, whose
per-node bookkeeping took most of the time, is only used for the scalars
that are neither strings nor plain integers, so values come out exactly as
`yaml.load` with the same loader makes them. A document with merge keys
(`<<`) or explicitly tagged collections (`!!set`, `!!omap`) is handed to
`yaml.load` whole.

With ``unique_keys`` a mapping that gives a key twice is an error (YAML
requires keys to be unique; PyYAML keeps the last value silently), on both
paths; keys a merge (`<<`) brings in may still be overridden.

The cyclic garbage collector is paused meanwhile (`gc_paused`, which
`qcore.store.config` also holds while it builds and checks the config): a
big document allocates millions of containers that all survive, and each
collection would rescan all of them (several times slower at 100k
entities; building and checking took twice as long with it on).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode

__all__ = ["parse_yaml", "gc_paused"]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTIONS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _UseSafeLoad(Exception):
    """Something only yaml.load's constructor handles (merge keys, tagged collections)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection meanwhile (see the module docstring); nests."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_yaml(text: str, loader: type[Any] = yaml.SafeLoader, unique_keys: bool = False) -> Any:
    """The single YAML document in `text`, as `yaml.load(text, Loader=loader)` returns it.

    `loader` is a SafeLoader (sub)class: its implicit resolvers and
    constructors say what scalars mean (the config file reads YAML 1.2's
    booleans, qcore.store.config); libyaml's parser is used with them.
    `unique_keys`: a key given twice in one mapping raises a ConstructorError
    (at the second one) instead of the last value winning.
    """
    fast = _libyaml_twin(loader, unique_keys)  # type: ignore[arg-type]  # classes hash (mypy: type[Any] is not Hashable)
    with gc_paused():
        try:
            return _build(text, fast, unique_keys)
        except _UseSafeLoad:
            return yaml.load(text, Loader=fast)


@functools.cache
def _libyaml_twin(loader: type[Any], unique_keys: bool = False) -> type[Any]:
    """`loader`'s resolvers and constructors on libyaml's parser (when PyYAML has it);
    with `unique_keys`, its mappings refuse a key given twice."""
    base = getattr(yaml, "CSafeLoader", None)
    extra: dict[str, Any] = {"construct_mapping": _construct_unique_mapping} if unique_keys else {}
    if base is None:
        return type(f"Unique{loader.__name__}", (loader,), extra) if unique_keys else loader
    return type(f"CParser{loader.__name__}", (base,), {
        "yaml_implicit_resolvers": loader.yaml_implicit_resolvers,
        "yaml_constructors": loader.yaml_constructors,
        "yaml_multi_constructors": loader.yaml_multi_constructors,
        **extra,
    })


def _construct_unique_mapping(self: Any, node: Any, deep: bool = False) -> Any:
    """SafeConstructor.construct_mapping, refusing a key the mapping itself gives twice."""
    if isinstance(node, MappingNode):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: construct_mapping says so
                continue
            if duplicate:
                raise ConstructorError("while constructing a mapping", node.start_mark,
                                       f"found duplicate key {key!r}", key_node.start_mark)
    return SafeConstructor.construct_mapping(self, node, deep)


def _build(text: str, loader_cls: type[Any], unique_keys: bool = False) -> Any:
    loader = loader_cls(text)
    try:
        return _events_to_data(loader, unique_keys)
    finally:
        loader.dispose()


def _events_to_data(loader: Any, unique_keys: bool = False) -> Any:
    sc = loader  # the loader is its own (Safe)Constructor: its constructors are the ones to use
    resolve = loader.resolve
    # The first characters an implicit (bool, int, float, null, timestamp, ...)
    # resolver is registered for: a plain scalar starting otherwise is a string
    # (Resolver.resolve's own first step, without the call).
    implicit_first = frozenset(loader.yaml_implicit_resolvers)
    has_any_first = None in implicit_first
    get = loader.get_event
    anchors: dict[str, Any] = {}
    # Open collections: [container, is_mapping, key waiting for its value (or _NO_KEY), start mark].
    stack: list[list[Any]] = []
    documents = 0
    result: Any = None
    while True:
        ev = get()
        cls = ev.__class__
        if cls is ScalarEvent:
            tag, v = ev.tag, ev.value
            if tag is None or tag == "!":
                if ev.implicit[0] and (v[:1] in implicit_first or has_any_first):
                    tag = resolve(ScalarNode, v, ev.implicit)
                else:
                    tag = _STR
            if tag == _STR:
                pass
            elif tag == _INT and v.isdigit():
                v = int(v)
            elif tag == _NULL:
                v = None
            elif tag == _MERGE:
                raise _UseSafeLoad
            else:  # bool, float, other ints, timestamps, !!binary; unknown tags are refused
                v = sc.construct_object(ScalarNode(tag, v, ev.start_mark, ev.end_mark, ev.style), deep=True)
            if ev.anchor is not None:
                anchors[ev.anchor] = v
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if ev.tag not in _PLAIN_COLLECTIONS:
                raise _UseSafeLoad
            container: Any = {} if cls is MappingStartEvent else []
            if ev.anchor is not None:
                anchors[ev.anchor] = container
            stack.append([container, cls is MappingStartEvent, _NO_KEY, ev.start_mark])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            v = stack.pop()[0]
        elif cls is AliasEvent:
            if ev.anchor not in anchors:
                raise ComposerError(None, None, f"found undefined alias {ev.anchor!r}", ev.start_mark)
            v = anchors[ev.anchor]
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise ComposerError("expected a single document in the stream", None,
                                    "but found another document", ev.start_mark)
            continue
        elif cls is StreamEndEvent:
            return result
        else:  # StreamStart, DocumentEnd
            continue
        if not stack:
            result = v
            continue
        top = stack[-1]
        if not top[1]:
            top[0].append(v)
        elif top[2] is _NO_KEY:
            if v.__class__ in (dict, list):
                raise ConstructorError("while constructing a mapping", top[3], "found unhashable key", ev.start_mark)
            if unique_keys and v in top[0]:
                raise ConstructorError("while constructing a mapping", top[3], f"found duplicate key {v!r}",
                                       ev.start_mark)
            top[2] = v
        else:
            top[0][top[2]] = v
            top[2] = _NO_KEY


_NO_KEY: Any = object()
