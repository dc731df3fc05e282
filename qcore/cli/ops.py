"""`qcore-cli` commands for operators: status, tree, snapshot save/status, export.

    qcore-cli status                      every member: id, address, role, term, commit, applied, lag, health
    qcore-cli tree [ENTITY] [--depth N]   the entity tree with types and names
    qcore-cli snapshot save FILE          a consistent backup, from any node
    qcore-cli snapshot status FILE        index, size, entity count, checksum (checked)
    qcore-cli export [--root ENTITY] [FILE]   schemas and tree as a config file

`snapshot save` and `export` both start from a snapshot the node takes after
a ReadIndex barrier (qcore.client.snapshot), so what they hold is the whole
state at one committed index, as of the moment the command ran. `export`
restores that snapshot into a local store and writes it out
(qcore.store.config_export): a consistent export without any load on the
cluster beyond the snapshot itself.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Callable

from qcore.cli.entity_commands import children_count, emit, entity_arg
from qcore.cli.progress import Progress
from qcore.cli.argtypes import at_least
from qcore.cli.text_values import CliError
from qcore.client import Client, command_json
from qcore.client.cluster import Formation, member_rows
from qcore.client.snapshot import FetchedSnapshot, fetch_snapshot
from qcore.storage.backup_file import BackupError, BackupHeader, read_backup, write_backup

OFFLINE = {("snapshot", "status")}  # commands that need no node


def add_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    cmd("status", "every member of the cluster: role, term, commit, applied, lag, health")
    s = cmd("tree", "print the entity tree (types and names)")
    s.add_argument("entity", nargs="?", help="start here, an id or a /path (default: every entity without a parent)")
    s.add_argument("--depth", type=at_least(0), default=None, help="levels below the start to show")
    s = cmd("snapshot", "back up the cluster, or check a backup")
    snap = s.add_subparsers(dest="snapshot_command", required=True, metavar="save|status")
    save = snap.add_parser("save", help="write a consistent snapshot of the cluster to FILE")
    save.add_argument("file", type=Path)
    status = snap.add_parser("status", help="check a snapshot file: index, size, entities, checksum")
    status.add_argument("file", type=Path)
    s = cmd("export", "write schemas and the entity tree as a config file (qcore --config-file F --init reads it)")
    s.add_argument("file", nargs="?", type=Path, help="default (or -): standard output")
    s.add_argument("--root", metavar="ENTITY", help="only the tree under this entity (an id or a /path)")


def is_offline(args: argparse.Namespace) -> bool:
    return (args.command, getattr(args, "snapshot_command", None)) in OFFLINE


async def snapshot(c: Client, args: argparse.Namespace) -> None:
    if args.snapshot_command == "save":
        await snapshot_save(c, args)
    else:
        snapshot_status(args)


# ----------------------------------------------------------------- status

def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    cells = [[h for _, h in columns]] + [["-" if r.get(k) is None else str(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


async def status(c: Client, args: argparse.Namespace) -> None:
    view = await c.cluster_metrics()
    rows = member_rows(view)
    leader = view.get("leader")
    table = format_table(rows, [("id", "ID"), ("addr", "ADDRESS"), ("role", "ROLE"), ("term", "TERM"),
                                ("commit", "COMMIT"), ("applied", "APPLIED"), ("lag", "LAG"), ("health", "HEALTH")])
    emit(args, {"leader": leader, "members": rows}, table)


def formed_text(formed: Formation) -> str:
    """After an Init of several nodes, how the cluster stood (qcore.client.cluster.until_formed):
    text to append to the command's line."""
    leader = f"; leader: node {formed.leader}" if formed.leader is not None else ""
    if formed.complete:
        return leader
    out = ", ".join(f"node {i} {health}" for i, health in formed.not_in.items())
    return (f"{leader}\nnot every member is in yet ({out}): a leader is elected once a majority of the nodes"
            " is up, and it brings in the others as they start (qcore-cli status shows them)")


# ------------------------------------------------------------------- tree

async def tree(c: Client, args: argparse.Namespace) -> None:
    if args.entity:
        starts = [await entity_arg(c, args.entity)]
    else:
        starts = await _roots(c)
    lines: list[str] = []
    out: list[Any] = []
    # Depth first, children in order; names and children of each level read in batches.
    stack: list[tuple[dict[str, Any], int, list[Any]]] = [(e, 0, out) for e in reversed(starts)]
    while stack:
        e, depth, siblings = stack.pop()
        name, kids = await _name_and_children(c, e)
        node: dict[str, Any] = {"id": command_json.entity_id_text(e), "name": name, "children": []}
        siblings.append(node)
        lines.append(f"{'  ' * depth}{command_json.entity_id_text(e)}  {name!r}" + (f"  ({children_count(len(kids))})" if kids and args.depth is not None and depth >= args.depth else ""))
        if args.depth is None or depth < args.depth:
            stack.extend((k, depth + 1, node["children"]) for k in reversed(kids))
    emit(args, out, "\n".join(lines) or "(no entities)")


async def _name_and_children(c: Client, e: dict[str, Any]) -> tuple[str, list[Any]]:
    """An entity's Name and Children; a type without them (not an Object) has neither."""
    values: list[Any] = []
    for fields in (("Name", "Children"), ("Name",)):
        body = await c.perform(command_json.update_entity([command_json.read_request(e, f) for f in fields]))
        inner = body.get("UpdateEntity") or {}
        if inner.get("error") is None:
            values = [(r.get("Read") or {}).get("value") or {} for r in inner.get("response") or []]
            break
    name = values[0].get("String") if values else None
    children = values[1].get("EntityList") if len(values) > 1 else None
    return (name if isinstance(name, str) else ""), (children if isinstance(children, list) else [])


async def _roots(c: Client) -> list[Any]:
    """Entities whose Parent is null, by id."""
    roots = []
    for typ in await c.entity_types():
        schema = (await c.command(command_json.get_schema(typ))).get("response") or {}
        if schema.get("inherit") is not None:
            continue  # found through the type it inherits from
        ids = [command_json.entity_id(i) for i in await c.find(typ)]
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            body = await c.perform(command_json.update_entity([command_json.read_request(i, "Parent") for i in batch]))
            res = (body.get("UpdateEntity") or {}).get("response") or []
            for i, r in zip(batch, res):
                value = (r.get("Read") or {}).get("value")
                if not isinstance(value, dict) or value.get("EntityReference") is None:
                    roots.append(i)
    return sorted(roots, key=lambda e: e["id"])


# ----------------------------------------------------------- backups

async def _fetch(c: Client, label: str) -> FetchedSnapshot:
    bar = Progress(label)
    try:
        return await fetch_snapshot(c, lambda done, total: bar.update(done, total))
    finally:
        bar.finish()


def _decode(data: bytes, index: int) -> Any:
    """The store a snapshot's payload holds (the node's own decoder)."""
    from qcore.node.state_machine import StateMachine

    sm = StateMachine()
    sm.restore(data, index)
    return sm.store


def _writable(path: Path) -> None:
    """Refuse, before a snapshot is fetched, a FILE that cannot be written (named as given,
    not as the FILE.part it is written through)."""
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a directory")
    if not path.absolute().parent.is_dir():
        raise CliError(f"cannot write {path}: directory {path.parent} does not exist")


async def snapshot_save(c: Client, args: argparse.Namespace) -> None:
    path: Path = args.file
    _writable(path)
    snap = await _fetch(c, f"saving {path.name}")
    try:
        store = _decode(snap.data, snap.index)
    except Exception as exc:
        raise BackupError(f"the snapshot from {snap.node} does not decode ({exc}); not saved") from None
    header = BackupHeader(
        index=snap.index, term=snap.term, size=len(snap.data), sha256=snap.sha256, entities=store.entity_count(),
        saved_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        source={"node": snap.node},
    )
    write_backup(path, header, snap.data)
    emit(args, header.to_json(),
         f"saved {path}: index {header.index}, {header.entities} entities, {header.size} bytes, sha256 {header.sha256}")


def snapshot_status(args: argparse.Namespace) -> None:
    path: Path = args.file
    bar = Progress(f"checking {path.name}")
    try:
        header, data = read_backup(path, lambda n: bar.update(n))
    finally:
        bar.finish()
    try:
        entities = _decode(data, header.index).entity_count()
    except Exception as exc:
        raise BackupError(f"{path}: the snapshot data does not decode: {exc}") from None
    info = {**header.to_json(), "entities": entities, "checksum_ok": True}
    human = "\n".join([
        f"file      {path}",
        f"index     {header.index} (term {header.term})",
        f"size      {header.size} bytes",
        f"entities  {entities}",
        f"sha256    {header.sha256} (checked)",
        f"saved     {header.saved_at or '-'} from {(header.source or {}).get('node', '-')}",
    ])
    emit(args, info, human)


async def export(c: Client, args: argparse.Namespace) -> None:
    from qcore.store.config_export import export_config

    if args.file is not None and str(args.file) == "-":
        args.file = None  # "-" is standard output, as no FILE is
    if args.file is not None:
        _writable(args.file)
    root = None
    if args.root:  # an id or a path, looked up before the snapshot is taken
        from qcore.store import EntityId

        found = await entity_arg(c, args.root)
        root = EntityId(found["typ"], found["id"])
    snap = await _fetch(c, "reading snapshot")
    store = _decode(snap.data, snap.index)
    comment = (f"qcore export of {snap.node} at log index {snap.index}"
               f"{f' (tree under {args.root})' if args.root else ''}\n"
               "load with: qcore --config-file THIS_FILE --init (ids are renumbered in tree order)")
    bar = Progress("exporting", unit="entities")
    target = args.file
    try:
        if target is None:
            result = export_config(store, sys.stdout, root, lambda d, t: bar.update(d, t), comment)
        else:
            tmp = target.with_name(target.name + ".part")
            try:
                with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as f:
                    result = export_config(store, f, root, lambda d, t: bar.update(d, t), comment)
                tmp.replace(target)
            except BaseException:  # no half-written FILE.part is left behind (an unknown --root, Ctrl-C)
                tmp.unlink(missing_ok=True)
                raise
    finally:
        bar.finish()
    if result.dangling:
        print(f"qcore-cli: {result.dangling} reference(s) to entities outside the exported tree written as null",
              file=sys.stderr)
    if target is not None:
        emit(args, {"file": str(target), "entities": result.entities, "schemas": result.schemas, "index": snap.index},
             f"exported {result.entities} entities and {result.schemas} schemas at index {snap.index} to {target}")


COMMANDS = {"status": status, "tree": tree, "snapshot": snapshot, "export": export}
