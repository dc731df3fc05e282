"""``qcore-cli``: the command-line client for people.

    qcore-cli --addr 127.0.0.1:8080 status
    qcore-cli create User alice --parent Folder$2
    qcore-cli write User$5 Email alice@example.com
    qcore-cli read User$5 Email
    qcore-cli watch User$5 Email

Output is for people by default; ``--json`` (before the command) prints JSON
for scripts. Exit status 0 on success, 1 on any error (the message goes to
stderr). Values are parsed by the field's type, looked up in the schema, so
``write User$5 Age 42`` writes an Int; ``--type`` forces a type and
``--json`` after ``write`` takes the value in tagged JSON (``{"Int": 42}``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from qcore.client import Client, QcoreError, notify_on_entity, notify_on_type, wire
from qcore.protocol import messages as m

logger = logging.getLogger(__name__)

DEFAULT_ADDR = os.environ.get("QCORE_ADDR", "127.0.0.1:8080")
VALUE_TYPES = ("Int", "Float", "String", "Bool", "Choice", "EntityReference", "EntityList", "Blob", "Timestamp")


class UsageError(Exception):
    """A bad argument found after parsing (a value that does not fit its type...)."""


# ------------------------------------------------------------------ values in


def parse_value(text: str, typ: str) -> dict[str, Any]:
    """Command-line text -> tagged JSON Value of type ``typ``."""
    try:
        if typ == "Int":
            return {"Int": int(text)}
        if typ == "Float":
            return {"Float": float(text)}
        if typ == "String":
            return {"String": text}
        if typ == "Bool":
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return {"Bool": True}
            if low in ("false", "0", "no", "off"):
                return {"Bool": False}
            raise ValueError("expected true or false")
        if typ == "Choice":
            return {"Choice": int(text)}
        if typ == "EntityReference":
            return {"EntityReference": None if text.lower() in ("", "null", "none") else wire.entity_id(text)}
        if typ == "EntityList":
            items = [t.strip() for t in text.strip("[]").split(",") if t.strip()]
            return {"EntityList": [wire.entity_id(t) for t in items]}
        if typ == "Blob":
            return {"Blob": list(bytes.fromhex(text.removeprefix("0x")))}
        if typ == "Timestamp":
            return {"Timestamp": parse_time(text)}
    except ValueError as e:
        raise UsageError(f"cannot read {text!r} as {typ}: {e}") from None
    raise UsageError(f"unknown value type {typ!r}; one of {', '.join(VALUE_TYPES)}")


def parse_time(text: str) -> dict[str, int]:
    """``now``, seconds since the epoch (``1700000000.5``) or ISO 8601 (UTC unless it says)."""
    if text == "now":
        return wire.timestamp(datetime.datetime.now(datetime.timezone.utc))
    try:
        return wire.timestamp(float(text))
    except ValueError:
        pass
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return wire.timestamp(dt)


def guess_value(text: str) -> dict[str, Any]:
    """A value with no schema to go by: the obvious reading of the text."""
    low = text.lower()
    if low in ("true", "false"):
        return {"Bool": low == "true"}
    for typ in ("Int", "Float"):
        try:
            return parse_value(text, typ)
        except UsageError:
            pass
    try:
        return {"EntityReference": wire.entity_id(text)}
    except ValueError:
        return {"String": text}


# ------------------------------------------------------------------ values out


def format_time(ts: Any) -> str:
    if not isinstance(ts, dict):
        return "-"
    dt = datetime.datetime.fromtimestamp(ts["secs_since_epoch"], datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts['nanos_since_epoch']:09d}Z"


def format_value(v: Any) -> str:
    """A tagged JSON value for people: ``Int 42``, ``String "x"``, ``EntityReference User$3``."""
    if not isinstance(v, dict) or len(v) != 1:
        return "null" if v is None else orjson.dumps(v).decode()
    ((tag, p),) = v.items()
    if tag == "String":
        text = orjson.dumps(p).decode()
    elif tag == "EntityReference":
        text = "null" if p is None else wire.entity_id_text(p)
    elif tag == "EntityList":
        text = "[" + ", ".join(wire.entity_id_text(e) for e in p) + "]"
    elif tag == "Blob":
        text = "0x" + bytes(p).hex()
    elif tag == "Timestamp":
        text = format_time(p)
    elif tag == "Bool":
        text = "true" if p else "false"
    else:
        text = str(p)
    return f"{tag} {text}"


def format_eid(e: Any) -> str:
    return "null" if e is None else wire.entity_id_text(e)


def emit(args: argparse.Namespace, data: Any, human: str | None = None) -> None:
    if args.json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2 if args.pretty else 0).decode())
    elif human is not None:
        print(human)


# ------------------------------------------------------------------ commands


async def field_type_of(c: Client, eid: Any, field: str) -> str | None:
    """The value type of a field, from the entity type's complete schema (None if unknown)."""
    if "->" in field:
        return None
    typ = wire.entity_id(eid)["typ"]
    try:
        body = wire.unwrap(await c.perform(wire.get_complete_schema(typ)), "GetCompleteSchema")
    except QcoreError:
        return None
    schema = body.get("response") or {}
    fs = (schema.get("fields") or {}).get(field)
    if not isinstance(fs, dict) or not isinstance(fs.get("default_value"), dict):
        return None
    return next(iter(fs["default_value"]), None)


async def command(c: Client, args: argparse.Namespace) -> None:
    cmd = args.command
    if cmd == "status":
        mt = await c.metrics()
        leader = mt.get("current_leader")
        lines = [
            f"node      {mt.get('id')} at {c.address}",
            f"state     {mt.get('state')}",
            f"term      {mt.get('current_term')}",
            f"leader    {leader if leader is not None else 'none'}",
            f"log       last {fmt_index(mt.get('last_log_index'))}, applied {fmt_index(mt.get('last_applied'))}",
        ]
        nodes = sorted(member_nodes(mt).items())
        if nodes:
            lines.append("members   " + ", ".join(f"{i}={a}" for i, a in nodes))
        emit(args, mt, "\n".join(lines))
    elif cmd == "metrics":
        mt = await c.metrics()
        if args.json:
            emit(args, mt)
        else:
            print(orjson.dumps(mt, option=orjson.OPT_INDENT_2).decode())
    elif cmd == "init":
        nodes = []
        for spec in args.node or []:
            nid, sep, addr = spec.partition("=")
            if not sep or not nid.isdigit() or not addr:
                raise UsageError(f"bad --node {spec!r}: expected ID=HOST:PORT")
            nodes.append((int(nid), addr))
        await c.init(nodes)
        emit(args, "Ok", "initialised" + (f" with nodes {', '.join(args.node)}" if nodes else " a single-node cluster"))
    elif cmd == "add-learner":
        res = await c.add_learner(args.node_id, args.address)
        emit(args, res, f"node {args.node_id} at {args.address} added as a learner")
    elif cmd == "change-membership":
        res = await c.change_membership(args.members, retain=args.retain)
        emit(args, res, "voters are now " + ", ".join(map(str, sorted(set(args.members)))))
    elif cmd == "create":
        body = wire.unwrap(await c.perform(wire.create_entity(args.type, args.name, args.parent)), "CreateEntity")
        emit(args, body.get("response"), format_eid(body.get("response")))
    elif cmd == "read":
        body = wire.unwrap(await c.perform(wire.update_entity([wire.read_request(args.id, args.field)])), "UpdateEntity")
        r = (body.get("response") or [{}])[0].get("Read", {})
        out = {k: r.get(k) for k in ("value", "write_time", "writer_id")}
        emit(args, out, f"{format_value(r.get('value'))}\n  written {format_time(r.get('write_time'))} by {format_eid(r.get('writer_id'))}")
    elif cmd == "write":
        if args.value_json:
            try:
                val = wire.value(orjson.loads(args.value))
            except (orjson.JSONDecodeError, ValueError, TypeError) as e:
                raise UsageError(f"bad JSON value {args.value!r}: {e}") from None
        else:
            typ = args.type or await field_type_of(c, args.id, args.field)
            val = parse_value(args.value, typ) if typ else guess_value(args.value)
        req = wire.write_request(
            args.id, args.field, val,
            push_condition="Changes" if args.changes_only else "Always",
            adjust=args.adjust, writer_id=args.writer,
        )
        wire.unwrap(await c.perform(wire.update_entity([req])), "UpdateEntity")
        emit(args, req, f"{wire.entity_id_text(args.id)} {args.field} <- {format_value(val)}")
    elif cmd == "delete":
        wire.unwrap(await c.perform(wire.delete_entity(args.id)), "DeleteEntity")
        emit(args, None, f"deleted {wire.entity_id_text(args.id)}")
    elif cmd == "exists":
        body = wire.unwrap(await c.perform(wire.entity_exists(args.id)), "EntityExists")
        emit(args, bool(body.get("response")), "yes" if body.get("response") else "no")
    elif cmd == "schema":
        req = wire.get_complete_schema(args.type) if args.complete else wire.get_schema(args.type)
        schema = wire.unwrap(await c.perform(req), next(iter(req))).get("response")
        if schema is None:
            raise UsageError(f"no schema for type {args.type!r}")
        emit(args, schema, format_schema(schema))
    elif cmd == "set-schema":
        schemas = read_schema_file(args.file)
        for s in schemas:
            wire.unwrap(await c.perform(wire.set_schema(s)), "SetSchema")
        emit(args, [s["entity_type"] for s in schemas], "set schema " + ", ".join(s["entity_type"] for s in schemas))
    elif cmd == "find":
        ids = await c.find(args.type, limit=args.limit)
        out = [wire.entity_id(i) for i in ids]
        emit(args, out, "\n".join(wire.entity_id_text(i) for i in out) or "(none)")
    elif cmd == "types":
        types = await c.entity_types()
        emit(args, types, "\n".join(types) or "(none)")
    elif cmd == "watch":
        await watch(c, args)
    elif cmd == "raw":
        await raw(c, args)
    else:  # pragma: no cover - argparse rejects unknown commands
        raise UsageError(f"unknown command {cmd!r}")


def fmt_index(x: Any) -> str:
    if isinstance(x, dict):
        return str(x.get("index"))
    return "-" if x is None else str(x)


def member_nodes(metrics: dict[str, Any]) -> dict[int, str]:
    from qcore.client import member_addresses

    return member_addresses(metrics)


def format_schema(s: dict[str, Any]) -> str:
    lines = [f"{s['entity_type']}" + (f" (inherits {s['inherit']})" if s.get("inherit") else "")]
    fields = sorted((s.get("fields") or {}).items(), key=lambda kv: (kv[1].get("rank", 0), kv[0]))
    for name, f in fields:
        extra = ""
        if f.get("choices"):
            extra += f"  choices: {', '.join(f['choices'])}"
        for perm in ("read_permission", "write_permission"):
            if f.get(perm):
                extra += f"  {perm}: {format_eid(f[perm])}"
        lines.append(f"  {f.get('rank', 0):>3}  {name:<20} default {format_value(f.get('default_value'))}{extra}")
    return "\n".join(lines)


def read_schema_file(path: str) -> list[dict[str, Any]]:
    """A YAML file with one schema, a list of them, or a config file (its ``schemas:``) ->
    EntitySchema JSON, read by the config file's rules (the node reads SetSchema by the same)."""
    from qcore.protocol.values import encode_entity_schema
    from qcore.store.config import ConfigError, load_schemas_text

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None
    try:
        return [encode_entity_schema(s) for s in load_schemas_text(text, path)]
    except ConfigError as e:
        raise UsageError(str(e)) from None


async def watch(c: Client, args: argparse.Namespace) -> None:
    ctx = args.context or []
    if args.type_wide:
        config = notify_on_type(args.target, args.field, trigger_on_change=args.changes_only, context=ctx)
        what = f"every {args.target}"
    else:
        config = notify_on_entity(args.target, args.field, trigger_on_change=args.changes_only, context=ctx)
        what = wire.entity_id_text(args.target)
    w = await c.watch(config, from_index=args.from_index, decode=False)
    if not args.json:
        print(f"watching {what} {args.field} (Ctrl-C to stop)", file=sys.stderr)
    count = 0
    async with w:
        async for n in w:
            if args.json:
                emit(args, n)
            else:
                context = "".join(f"  {k}={format_value(v)}" for k, v in (n.get("context") or {}).items())
                print(
                    f"[{n.get('log_index')}] {format_eid(n.get('entity_id'))} {n.get('field_type')}: "
                    f"{format_value(n.get('previous_value'))} -> {format_value(n.get('current_value'))}"
                    f"  by {format_eid(n.get('writer_id'))} at {format_time(n.get('write_time'))}{context}"
                )
            sys.stdout.flush()
            count += 1
            if args.count and count >= args.count:
                break


async def raw(c: Client, args: argparse.Namespace) -> None:
    """Send one message given as JSON; a missing ``id`` is filled in."""
    try:
        frame = orjson.loads(args.message)
    except orjson.JSONDecodeError as e:
        raise UsageError(f"not JSON: {e}") from None
    if isinstance(frame, dict) and len(frame) == 1:
        body = next(iter(frame.values()))
        if isinstance(body, dict) and "id" not in body:
            body["id"] = m.new_id()
    try:
        msg = m.decode_message(orjson.dumps(frame))
    except m.ProtocolError as e:
        raise UsageError(str(e)) from None
    reply = await c.request(msg)
    print(m.encode_message(reply).decode() if not args.pretty else
          orjson.dumps(orjson.loads(m.encode_message(reply)), option=orjson.OPT_INDENT_2).decode())


# ------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qcore-cli",
        description="Talk to a qcore cluster.",
        epilog="Entity ids are written Type$number (e.g. User$12). Quote them in shells: 'User$12'.",
    )
    p.add_argument("--addr", default=DEFAULT_ADDR,
                   help="node address(es), host:port[,host:port...] (default $QCORE_ADDR or 127.0.0.1:8080)")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("--pretty", action="store_true", help="indent JSON output")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request, retries included (default 10)")
    p.add_argument("--retry-writes", action="store_true",
                   help="re-send writes whose outcome is unknown after a connection loss (may apply them twice)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --json/--pretty also after the command (except for write, where --json is the value's format).
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (for scripts)")
    out.add_argument("--pretty", action="store_true", default=argparse.SUPPRESS, help="indent JSON output")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[] if name == "write" else [out])

    cmd("status", "the node's role, term, leader, log position and members")
    cmd("metrics", "the node's full metrics (GetMetrics)")
    s = cmd("init", "initialise a cluster (no --node: a single-node cluster of this node)")
    s.add_argument("--node", action="append", metavar="ID=ADDR", help="a member, repeatable")
    s = cmd("add-learner", "add a non-voting node (returns once it caught up)")
    s.add_argument("node_id", type=int)
    s.add_argument("address")
    s = cmd("change-membership", "set the voters")
    s.add_argument("members", type=int, nargs="+")
    s.add_argument("--retain", action="store_true", help="keep removed voters as learners")

    s = cmd("create", "create an entity; prints its id")
    s.add_argument("type")
    s.add_argument("name")
    s.add_argument("--parent", metavar="ID")
    s = cmd("read", "read a field (or a Parent->Name path)")
    s.add_argument("id")
    s.add_argument("field")
    s = cmd("write", "write a field; the value is read by the field's type")
    s.add_argument("id")
    s.add_argument("field")
    s.add_argument("value")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--type", choices=VALUE_TYPES, help="the value's type (default: the field's, from the schema)")
    g.add_argument("--json", dest="value_json", action="store_true", help='the value is tagged JSON, e.g. \'{"Int": 5}\'')
    s.add_argument("--adjust", choices=wire.ADJUST_BEHAVIORS, default="Set")
    s.add_argument("--changes-only", action="store_true", help="push_condition Changes: skip if the value is the same")
    s.add_argument("--writer", metavar="ID", help="writer_id to record")
    s = cmd("delete", "delete an entity and its children")
    s.add_argument("id")
    s = cmd("exists", "does an entity exist")
    s.add_argument("id")
    s = cmd("schema", "show a type's schema")
    s.add_argument("type")
    s.add_argument("--complete", action="store_true", help="with inherited fields")
    s = cmd("set-schema", "set schemas from a YAML file (one schema, a list, or a config file)")
    s.add_argument("file")
    s = cmd("find", "list the entities of a type")
    s.add_argument("type")
    s.add_argument("--limit", type=int)
    cmd("types", "list the entity types")
    s = cmd("watch", "print changes of a field as they are committed")
    s.add_argument("target", metavar="ID|TYPE")
    s.add_argument("field")
    s.add_argument("--type-wide", action="store_true", help="TARGET is a type: every entity of it (and derived types)")
    s.add_argument("--changes-only", action="store_true", help="only when the value changed")
    s.add_argument("--context", action="append", metavar="PATH", help="also show this field (path), repeatable")
    s.add_argument("--from-index", type=int, help="replay retained changes from this log index")
    s.add_argument("--count", type=int, help="stop after this many notifications")
    s = cmd("raw", 'send one message as JSON, e.g. \'{"GetMetrics": {}}\'')
    s.add_argument("message")
    return p


async def run(args: argparse.Namespace) -> int:
    try:
        async with Client(args.addr, request_timeout=args.timeout, retry_writes=args.retry_writes) as c:
            await command(c, args)
        return 0
    except (QcoreError, UsageError, ValueError, TypeError) as e:
        print(f"qcore-cli: {type(e).__name__}: {e}" if isinstance(e, QcoreError) else f"qcore-cli: {e}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
