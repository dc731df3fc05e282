"""``qcore-cli``'s commands on the data: entities, fields, schemas, the tree, watches.

Each command is ``async def cmd(c, args)`` and prints for people, or JSON
with ``--json`` (``emit``). Values are read and shown by the field's type,
looked up in the schema (:mod:`qcore.cli.text_values`), so Choice fields
take and show names.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

import orjson

from qcore.cli.text_values import CliError, UsageError, format_eid, format_time, format_value, guess_value, parse_value
from qcore.client import (Client, CommandError, ConnectionFailed, QcoreError, RequestTimeout, ServerError, command_json,
                          convert, notify_on_entity, notify_on_type, tree)
from qcore.client.field_values import FieldInfo
from qcore.client.watch import Watch
from qcore.protocol.errors import retry_class

logger = logging.getLogger(__name__)

#: Seconds between two attempts to resume a watch with no node reachable: doubling up to the last.
_REWATCH_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

__all__ = ["COMMANDS", "emit"]


def emit(args: argparse.Namespace, data: Any, human: str | None = None) -> None:
    if args.json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2 if args.pretty else 0).decode())
    elif human is not None:
        print(human)


async def _info(c: Client, entity_id: Any, field: str) -> FieldInfo | None:
    try:
        return await c.field_info(entity_id, field)
    except ValueError:  # not an entity id: the command reports it
        return None


async def entity_arg(c: Client, target: str) -> dict[str, Any]:
    """An entity given as an id (``Line$5``) or a tree path (``/Plant/Line1``)."""
    if "/" in target:
        node = await tree.resolve(c, target)
        if node is None:
            raise UsageError("/ is the list of roots, not an entity: name one, e.g. /Plant")
        return node.entity_id
    try:
        return command_json.entity_id(target)
    except (ValueError, TypeError) as e:  # the command line's, not the node's
        raise UsageError(str(e)) from None


def _read_line(r: dict[str, Any], info: FieldInfo | None) -> str:
    return (f"{format_value(r.get('value'), info)}\n  written {format_time(r.get('write_time'))} "
            f"by {format_eid(r.get('writer_id'))}")


async def create(c: Client, args: argparse.Namespace) -> None:
    parent = await entity_arg(c, args.parent) if args.parent else None
    body = await c.command(command_json.create_entity(args.type, args.name, parent))
    emit(args, body.get("response"), format_eid(body.get("response")))


async def read(c: Client, args: argparse.Namespace) -> None:
    eid = await entity_arg(c, args.id)
    body = await c.command(command_json.update_entity([command_json.read_request(eid, args.field)]))
    r = (body.get("response") or [{}])[0].get("Read", {})
    emit(args, {k: r.get(k) for k in ("value", "write_time", "writer_id")}, _read_line(r, await _info(c, eid, args.field)))


async def write(c: Client, args: argparse.Namespace) -> None:
    eid = await entity_arg(c, args.id)
    where = f"{command_json.entity_id_text(eid)}.{args.field}"
    info = await _info(c, eid, args.field)
    if args.value_json:
        try:
            val = command_json.value(orjson.loads(args.value))
        except (orjson.JSONDecodeError, ValueError, TypeError) as e:
            raise UsageError(f"bad JSON value {args.value!r}: {e}") from None
    else:
        typ = args.type or (info.tag if info is not None else None)
        choices = info.choices if info is not None else None
        val = parse_value(args.value, typ, choices, where) if typ else guess_value(args.value)
    writer = await entity_arg(c, args.writer) if args.writer else None
    req = command_json.write_request(eid, args.field, val, push_condition="Changes" if args.changes_only else "Always",
                             adjust=args.adjust, writer_id=writer)
    if args.adjust == "Set":
        await c.command(command_json.update_entity([req]))
        emit(args, req, f"{where} <- {format_value(val, info)}")
        return
    # Add/Subtract: the resulting value, read in the same atomic batch as the write.
    body = await c.command(command_json.update_entity([req, command_json.read_request(eid, args.field)]))
    r = body["response"][1]["Read"]
    emit(args, {k: r.get(k) for k in ("value", "write_time", "writer_id")},
         f"{where} = {format_value(r.get('value'), info)}  ({args.adjust} {format_value(val, info)})")


async def delete(c: Client, args: argparse.Namespace) -> None:
    eid = await entity_arg(c, args.id)
    await c.command(command_json.delete_entity(eid))
    emit(args, None, f"deleted {command_json.entity_id_text(eid)}")


async def exists(c: Client, args: argparse.Namespace) -> None:
    try:
        eid = await entity_arg(c, args.id)
    except tree.PathNotFound as e:
        if e.ambiguous:
            raise
        emit(args, False, "no")  # no entity at that path
        return
    body = await c.command(command_json.entity_exists(eid))
    emit(args, bool(body.get("response")), "yes" if body.get("response") else "no")


async def get(c: Client, args: argparse.Namespace) -> None:
    """Every field of an entity: type and value, write time, writer (Redis's HGETALL)."""
    eid = await entity_arg(c, args.id)
    fields = await c.get(eid)
    infos = await c.field_types(eid["typ"])
    rows = {name: (convert.encode_value(v), convert.encode_timestamp(t) if t is not None else None,
                   convert.encode_entity_id(w) if w is not None else None) for name, (v, t, w) in fields.items()}
    shown = {name: format_value(v, infos.get(name)) for name, (v, _, _) in rows.items()}
    name_w = max((len(n) for n in rows), default=0)
    value_w = max((len(v) for v in shown.values()), default=0)
    lines = [command_json.entity_id_text(eid)]
    for name, (_, t, w) in rows.items():
        lines.append(f"  {name:<{name_w}}  {shown[name]:<{value_w}}  written {format_time(t)} by {format_eid(w)}")
    emit(args, {n: {"value": v, "write_time": t, "writer_id": w} for n, (v, t, w) in rows.items()}, "\n".join(lines))


def children_count(n: int) -> str:
    """`1 child`, `3 children`: how ls and tree say how many children an entity has."""
    return f"{n} {'child' if n == 1 else 'children'}"


async def ls(c: Client, args: argparse.Namespace) -> None:
    """The children of an entity, or the roots, by name."""
    node = await tree.resolve(c, args.path)
    nodes = await (tree.roots(c) if node is None else tree.children(c, node.entity_id))
    width = max((len(n.name) for n in nodes), default=0)
    human = "\n".join(f"{n.name + ('/' if n.children else ''):<{width + 1}}  {n.text_id}"
                      + (f"  ({children_count(n.children)})" if n.children else "")
                      for n in nodes)
    emit(args, [{"name": n.name, "entity_id": n.entity_id, "children": n.children} for n in nodes],
         human or "(no children)")


async def find(c: Client, args: argparse.Namespace) -> None:
    if args.limit is None:
        out = [command_json.entity_id(i) for i in await c.find(args.type)]
    else:
        page = (await c.command(command_json.find_entities(args.type, args.limit)))["response"]
        out, total = page.get("items") or [], page.get("total")
        if type(total) is int and total > len(out):
            print(f"... and {total - len(out)} more ({total} in all): raise --limit to see them", file=sys.stderr)
    emit(args, out, "\n".join(command_json.entity_id_text(i) for i in out) or "(none)")


async def children(c: Client, args: argparse.Namespace) -> None:
    """An entity's children in order, fetched a page at a time (GetChildren):
    a folder of any size without one giant reply."""
    eid = await entity_arg(c, args.id)
    if args.limit is None:
        out = [command_json.entity_id(i) for i in await c.children(eid, page_size=args.page_size)]
    else:
        page = (await c.command(command_json.get_children(eid, args.limit)))["response"]
        out, total = page.get("items") or [], page.get("total")
        if type(total) is int and total > len(out):
            print(f"... and {total - len(out)} more ({total} in all): raise --limit to see them", file=sys.stderr)
    emit(args, out, "\n".join(command_json.entity_id_text(i) for i in out) or "(none)")


async def types(c: Client, args: argparse.Namespace) -> None:
    names = await c.entity_types()
    emit(args, names, "\n".join(names) or "(none)")


async def schema(c: Client, args: argparse.Namespace) -> None:
    req = command_json.get_complete_schema(args.type) if args.complete else command_json.get_schema(args.type)
    s = (await c.command(req)).get("response")
    if s is None:
        raise CliError(f"no schema for type {args.type!r}")
    emit(args, s, format_schema(s))


def format_schema(s: dict[str, Any]) -> str:
    lines = [f"{s['entity_type']}" + (f" (inherits {s['inherit']})" if s.get("inherit") else "")]
    fields = sorted((s.get("fields") or {}).items(), key=lambda kv: (kv[1].get("rank", 0), kv[0]))
    for name, f in fields:
        extra = ""
        choices = f.get("choices")
        if choices:
            extra += f"  choices: {', '.join(choices)}"
        for perm in ("read_permission", "write_permission"):
            if f.get(perm):
                extra += f"  {perm}: {format_eid(f[perm])}"
        info = FieldInfo("Choice", tuple(choices)) if choices else None
        lines.append(f"  {f.get('rank', 0):>3}  {name:<20} default {format_value(f.get('default_value'), info)}{extra}")
    return "\n".join(lines)


async def set_schema(c: Client, args: argparse.Namespace) -> None:
    """One SetSchema per schema of the file, parents first; on a failure, says which stay set."""
    schemas = parents_first(read_schema_file(args.file))
    done: list[str] = []
    for s in schemas:
        try:
            await c.command(command_json.set_schema(s))
        except QcoreError:
            if done:
                print(f"qcore-cli: set schema {', '.join(done)} before {s['entity_type']} failed; those stay set "
                      "(each schema is its own SetSchema)", file=sys.stderr)
            raise
        done.append(s["entity_type"])
    emit(args, done, "set schema " + ", ".join(done))


def parents_first(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schemas in file order, except that one inheriting a type of the file comes after it:
    a file is read as a whole (as the config file is), but set one schema at a time, and a type
    whose parent is not set yet would be refused. Of an inheritance cycle, the node refuses
    the schema that closes it."""
    by_type = {s["entity_type"]: s for s in schemas}
    out: list[dict[str, Any]] = []
    placed: set[str] = set()
    for s in schemas:
        chain: list[dict[str, Any]] = []
        cur: dict[str, Any] | None = s
        while cur is not None and cur["entity_type"] not in placed and all(x is not cur for x in chain):
            chain.append(cur)
            cur = by_type.get(cur.get("inherit") or "")
        for x in reversed(chain):
            placed.add(x["entity_type"])
            out.append(x)
    return out


def read_schema_file(path: str) -> list[dict[str, Any]]:
    """A YAML file with one schema, a list of them, or a config file (its ``schemas:``) ->
    EntitySchema JSON, read by the config file's rules (the node reads SetSchema by the same)."""
    from qcore.protocol.values import encode_entity_schema
    from qcore.store.config import ConfigError, load_schemas_text

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}") from None
    try:
        return [encode_entity_schema(s) for s in load_schemas_text(text, path)]
    except ConfigError as e:
        raise CliError(str(e)) from None


async def watch(c: Client, args: argparse.Namespace) -> None:
    ctx = args.context or []
    if args.type_wide:
        if "$" in args.target or "/" in args.target:
            raise UsageError(f"--type-wide watches a type, not {args.target!r}: give a type (User), "
                             "or leave out --type-wide to watch one entity")
        config = notify_on_type(args.target, args.field, trigger_on_change=args.changes_only, context=ctx)
        what = f"every {args.target}"
    else:
        if "$" not in args.target and "/" not in args.target:
            raise UsageError(f"{args.target!r} is not an entity id (Type$number) or a path (/Plant/Line1); "
                             f"to watch {args.field} of every {args.target}, add --type-wide")
        eid = await entity_arg(c, args.target)
        config = notify_on_entity(eid, args.field, trigger_on_change=args.changes_only, context=ctx)
        what = command_json.entity_id_text(eid)
    w = await c.watch(config, from_index=args.from_index, decode=False)
    args.watching = True  # from here on, Ctrl-C is how the command ends (exit 0)
    if not args.json:
        print(f"watching {what} {args.field} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    count = 0
    # The entry of the last change printed and how many of its changes were: a watch made
    # again from that index gets them again (one entry may change many fields) and drops them.
    last: int | None = None
    at_last = skip = 0
    while True:
        try:
            async with w:
                async for n in w:
                    idx = n.get("log_index")
                    if skip and idx == last:
                        skip -= 1
                        continue
                    skip = 0
                    if args.json:
                        emit(args, n)
                    else:
                        print(await _change_line(c, n))  # (may look up the schema: a lost node raises here too)
                    sys.stdout.flush()
                    last, at_last = idx, (at_last + 1 if idx == last else 1)  # once printed
                    count += 1
                    if args.count and count >= args.count:
                        return
            return
        except QcoreError as e:
            if not _passing(e):
                raise
            w = await _watch_again(c, w, last, e)
            skip = at_last if last is not None else 0


def _passing(e: QcoreError) -> bool:
    """An error a watch outlives: no node reachable or answering in time, or one that did not
    serve the request now (no leader, shutting down...); not a refusal of the watch itself."""
    return isinstance(e, (ConnectionFailed, RequestTimeout)) or (
        isinstance(e, ServerError) and retry_class(e.kind) == "definite")


async def _watch_again(c: Client, lost: Watch, last: int | None, why: QcoreError) -> Watch:
    """The watch made again where ``lost`` stopped, trying until a node takes it (until Ctrl-C,
    as etcdctl's watch does; --timeout bounds each attempt); each failed attempt is logged at -v."""
    logger.warning("watch: %s; trying again until Ctrl-C (-v logs each attempt)", why)
    from_index = last if last is not None else lost.resume_index()
    attempt = 0
    while True:
        await asyncio.sleep(_REWATCH_DELAYS[min(attempt, len(_REWATCH_DELAYS) - 1)])
        attempt += 1
        try:
            w = await c.watch(lost.config, from_index=from_index, decode=False)
        except QcoreError as e:
            if not _passing(e):
                raise
            logger.info("watch: attempt %d to resume from log index %s failed: %s", attempt, from_index, e)
            continue
        logger.info("watch: resumed from log index %s", from_index)
        return w


async def _change_line(c: Client, n: dict[str, Any]) -> str:
    eid = n.get("entity_id")
    try:
        info = (await c.field_types(eid["typ"])).get(n.get("field_type", "")) if eid else None
    except CommandError:  # the type is gone since
        info = None
    context = "".join(f"  {k}={format_value(v)}" for k, v in (n.get("context") or {}).items())
    return (f"[{n.get('log_index')}] {format_eid(eid)} {n.get('field_type')}: "
            f"{format_value(n.get('previous_value'), info)} -> {format_value(n.get('current_value'), info)}"
            f"  by {format_eid(n.get('writer_id'))} at {format_time(n.get('write_time'))}{context}")


COMMANDS = {
    "create": create, "read": read, "write": write, "delete": delete, "exists": exists, "get": get, "ls": ls,
    "find": find, "children": children, "types": types, "schema": schema, "set-schema": set_schema, "watch": watch,
}
