"""``qcore-cli``: the command-line client for people.

    qcore-cli --addr 127.0.0.1:8080 status
    qcore-cli create User alice --parent Folder$2
    qcore-cli write User$5 Email alice@example.com
    qcore-cli read User$5 Email
    qcore-cli watch User$5 Email
    qcore-cli ls /Root/Users
    qcore-cli get /Root/Users/alice
    qcore-cli snapshot save backup.snap
    qcore-cli --user admin user add alice --role operator

With users on (SPEC 8.3) give ``--user NAME``; the password comes from
``QCORE_PASSWORD`` or is asked for.

Output is for people by default; ``--json`` prints JSON for scripts. Exit
status 0 on success, 1 on any error (the message goes to stderr), 2 for a
command line that does not parse or names a bad id, value or option (argparse's, or
a UsageError found after it), 141 if
stdout was closed early (``| head``), 130 if Ctrl-C stopped a command before
it finished (a watch, which Ctrl-C ends, exits 0). Values are parsed by the field's type,
looked up in the schema, so ``write User$5 Age 42`` writes an Int and
``write Machine$10 Mode Manual`` a Choice; ``--type`` forces a type and
``--json`` after ``write`` takes the value in tagged JSON (``{"Int": 42}``).
The commands themselves: this module (the cluster), entity_commands (the data),
ops (status of every member, tree, backups, export), user_commands (users, roles).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from qcore import build
from qcore.cli import entity_commands, ops, user_commands
from qcore.cli.entity_commands import emit
from qcore.cli.argtypes import at_least
from qcore.cli.text_values import VALUE_TYPES, CliError, UsageError
from qcore.client import Client, QcoreError, RequestTimeout, command_json, member_addresses, parse_addresses
from qcore.client.session import MEMBERSHIP_TIMEOUT
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind
from qcore.storage.backup_file import BackupError
from qcore.tls import env_files as tls_env_files

logger = logging.getLogger(__name__)

DEFAULT_ADDR = "127.0.0.1:8080"
#: --timeout when none is given (the membership commands then take MEMBERSHIP_TIMEOUT).
DEFAULT_TIMEOUT = 10.0
#: Exit status when stdout was closed early (``qcore-cli find User | head``): SIGPIPE's, as other tools.
BROKEN_PIPE_EXIT = 141
#: Exit status of a bad command line, found by argparse or after it (a bad id, a value that does not fit).
USAGE_EXIT = 2
#: Exit status of a command stopped by Ctrl-C before it finished: SIGINT's, as other tools.
INTERRUPTED_EXIT = 130


# ------------------------------------------------------------------ cluster commands


async def node_status(c: Client, args: argparse.Namespace) -> None:
    mt = await c.metrics()
    leader = mt.get("current_leader")
    state = str(mt.get("state"))
    members = member_addresses(mt)
    if mt.get("initialised") is False:
        state = "not initialised: run `qcore-cli init` (or init --node ...), or add it to a cluster with add-learner"
    elif members and mt.get("id") not in members:
        state = "removed from the cluster (its configuration does not include it): stop it, or add it again"
    lines = [
        f"node      {mt.get('id')} at {c.address}",
        f"state     {state}",
        f"term      {mt.get('current_term')}",
        f"leader    {leader if leader is not None else 'none'}",
        f"log       last {fmt_index(mt.get('last_log_index'))}, applied {fmt_index(mt.get('last_applied'))}",
    ]
    nodes = sorted(members.items())
    if nodes:
        lines.append("members   " + ", ".join(f"{i}={a}" for i, a in nodes))
    emit(args, mt, "\n".join(lines))


async def metrics(c: Client, args: argparse.Namespace) -> None:
    mt = await c.metrics()
    if args.json:
        emit(args, mt)
    else:
        print(orjson.dumps(mt, option=orjson.OPT_INDENT_2).decode())


async def init(c: Client, args: argparse.Namespace) -> None:
    nodes = []
    for spec in args.node or []:
        nid, sep, addr = spec.partition("=")
        if not sep or not nid.isdigit() or not addr:
            raise UsageError(f"bad --node {spec!r}: expected ID=HOST:PORT")
        nodes.append((int(nid), addr))
    formed = await c.init(nodes, timeout=args.timeout)  # returns once every member is in, or at the timeout
    said = "initialised" + (f" with nodes {', '.join(args.node)}" if nodes else " a single-node cluster")
    if len(nodes) > 1:  # a single node is in at once: nothing to say
        said += ops.formed_text(formed)
    emit(args, "Ok", said)


def _unanswered(args: argparse.Namespace, e: RequestTimeout, what: str, may: str, undo: str) -> RequestTimeout:
    """A membership command with no answer by --timeout may still take effect: say what the
    cluster may now be and how to check and undo it (the node's own answer says so already)."""
    if e.kind is not None:
        return e
    given = args.membership_timeout is not None
    secs = args.membership_timeout if given else MEMBERSHIP_TIMEOUT
    bound = "--timeout" if given else "the default without --timeout"
    return RequestTimeout(f"{what}: no answer within {secs:g} s ({bound}), but {may}: `qcore-cli status`"
                          f" shows the members; {undo}")


async def add_learner(c: Client, args: argparse.Namespace) -> None:
    try:
        res = await c.add_learner(args.node_id, args.address, timeout=args.membership_timeout)
    except RequestTimeout as e:
        raise _unanswered(
            args, e, f"add-learner {args.node_id} {args.address}",
            f"node {args.node_id} may have been added as a learner (the node answers once it has caught up,"
            " or after three of its request timeouts, 30 s by default, that it has not)",
            f"`qcore-cli remove-node {args.node_id}` takes it out") from None
    emit(args, res, f"node {args.node_id} at {args.address} added as a learner")


async def change_membership(c: Client, args: argparse.Namespace) -> None:
    voters = ", ".join(map(str, sorted(set(args.members))))
    try:
        res = await c.change_membership(args.members, retain=args.retain, timeout=args.membership_timeout)
    except RequestTimeout as e:
        raise _unanswered(args, e, f"change-membership {' '.join(map(str, args.members))}",
                          f"the voters may be {voters} now, or be changing to them",
                          "`qcore-cli change-membership` with the voters you want sets them") from None
    emit(args, res, "voters are now " + voters)


async def remove_node(c: Client, args: argparse.Namespace) -> None:
    try:
        res = await c.remove_node(args.node_id, timeout=args.membership_timeout)
    except RequestTimeout as e:
        raise _unanswered(args, e, f"remove-node {args.node_id}", f"node {args.node_id} may have been removed",
                          f"`qcore-cli add-learner {args.node_id} ADDR` adds it back") from None
    done = f"node {args.node_id} removed" if res.get("log_id") is not None else f"node {args.node_id} is not a member"
    membership = res.get("membership", {})
    voters = (membership.get("configs") or [[]])[0]
    learners = membership.get("learners") or []
    emit(args, res, f"{done}; voters are now {', '.join(map(str, voters))}"
                    + (f"; learners {', '.join(map(str, learners))}" if learners else ""))


def fmt_index(x: Any) -> str:
    if isinstance(x, dict):
        return str(x.get("index"))
    return "-" if x is None else str(x)


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


COMMANDS = {
    "node-status": node_status, "metrics": metrics, "init": init, "add-learner": add_learner,
    "change-membership": change_membership, "remove-node": remove_node, "raw": raw, **entity_commands.COMMANDS, **ops.COMMANDS,
    **user_commands.COMMANDS,
}


#: Commands bounded by --timeout as a whole (connecting included); the cluster's own
#: commands have their own deadlines (add-learner waits for catch-up), and a watch runs on.
_ONE_DEADLINE = (frozenset(entity_commands.COMMANDS) | {"status", "tree"}) - {"watch"}


async def command(c: Client, args: argparse.Namespace) -> None:
    if args.command in _ONE_DEADLINE:
        async with c.deadline(args.timeout):
            await c.open()
            await COMMANDS[args.command](c, args)
    else:
        await c.open()
        await COMMANDS[args.command](c, args)


# ------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qcore-cli",
        description="Talk to a qcore cluster.",
        epilog="Entity ids are written Type$number (e.g. User$12); quote them in shells: 'User$12'. Where a"
               " command takes an ID it also takes a path of names from a root, e.g. /Root/Users/alice.",
    )
    p.add_argument("--version", action="version", version=build.describe("qcore-cli"))
    # An environment variable set empty (QCORE_USER=) counts as unset, as QCORE_TLS_* do (and PG* for psql).
    p.add_argument("--addr", default=os.environ.get("QCORE_ADDR") or DEFAULT_ADDR,
                   help="node address(es), host:port[,host:port...] (default $QCORE_ADDR or 127.0.0.1:8080)")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("--pretty", action="store_true", help="indent JSON output")
    p.add_argument("--timeout", type=float, default=None,
                   help=f"seconds a command may take, connecting and retries included (default {DEFAULT_TIMEOUT:g};"
                        f" add-learner, change-membership, remove-node: {MEMBERSHIP_TIMEOUT:g}, as a learner may take"
                        " a while to catch up)")
    p.add_argument("--retry-writes", action="store_true",
                   help="re-send writes whose outcome is unknown after a connection loss (may apply them twice)")
    p.add_argument("--user", default=os.environ.get("QCORE_USER") or None,
                   help="authenticate as this user (default $QCORE_USER); the password comes from $QCORE_PASSWORD"
                        " or is asked for")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    ca, cert, key = tls_env_files()
    p.add_argument("--tls-ca-file", default=ca, metavar="PEM",
                   help="TLS (wss://): verify the nodes against this CA (default $QCORE_TLS_CA); a wss:// address "
                        "without it trusts the system's CAs")
    p.add_argument("--tls-client-cert", default=cert, metavar="PEM",
                   help="present this client certificate (default $QCORE_TLS_CERT)")
    p.add_argument("--tls-client-key", default=key, metavar="PEM",
                   help="the key of --tls-client-cert (default $QCORE_TLS_KEY)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --json/--pretty also after the command (except for write, where --json is the value's format).
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (for scripts)")
    out.add_argument("--pretty", action="store_true", default=argparse.SUPPRESS, help="indent JSON output")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[] if name == "write" else [out])

    cmd("node-status", "the connected node's role, term, leader, log position and members")
    ops.add_commands(cmd)
    cmd("metrics", "the node's full metrics (GetMetrics)")
    s = cmd("init", "initialise a cluster (no --node: a single-node cluster of this node)")
    s.add_argument("--node", action="append", metavar="ID=ADDR", help="a member, repeatable")
    s = cmd("add-learner", "add a non-voting node (returns once it caught up)")
    s.add_argument("node_id", type=int)
    s.add_argument("address")
    s = cmd("change-membership", "set the voters")
    s.add_argument("members", type=int, nargs="+")
    s.add_argument("--retain", action="store_true", help="keep removed voters as learners")
    s = cmd("remove-node", "take a voter or a learner out of the cluster")
    s.add_argument("node_id", type=int)

    s = cmd("create", "create an entity; prints its id")
    s.add_argument("type")
    s.add_argument("name")
    s.add_argument("--parent", metavar="ID|PATH")
    s = cmd("read", "read a field (or a Parent->Name path)")
    s.add_argument("id", metavar="ID|PATH")
    s.add_argument("field")
    s = cmd("write", "write a field; the value is read by the field's type (a Choice by name or index)")
    s.add_argument("id", metavar="ID|PATH")
    s.add_argument("field")
    s.add_argument("value")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--type", choices=VALUE_TYPES, help="the value's type (default: the field's, from the schema)")
    g.add_argument("--json", dest="value_json", action="store_true", help='the value is tagged JSON, e.g. \'{"Int": 5}\'')
    s.add_argument("--adjust", choices=command_json.ADJUST_BEHAVIORS, default="Set",
                   help="Add/Subtract: prints the resulting value")
    s.add_argument("--changes-only", action="store_true", help="push_condition Changes: skip if the value is the same")
    s.add_argument("--writer", metavar="ID|PATH", help="writer_id to record")
    s = cmd("delete", "delete an entity and its children")
    s.add_argument("id", metavar="ID|PATH")
    s = cmd("get", "every field of an entity: value, write time, writer")
    s.add_argument("id", metavar="ID|PATH")
    s = cmd("ls", "the children of an entity by name (no PATH: the roots)")
    s.add_argument("path", metavar="PATH|ID", nargs="?", default="/")
    s = cmd("exists", "does an entity exist")
    s.add_argument("id", metavar="ID|PATH")
    s = cmd("schema", "show a type's schema")
    s.add_argument("type")
    s.add_argument("--complete", action="store_true", help="with inherited fields")
    s = cmd("set-schema", "set schemas from a YAML file (one schema, a list, or a config file)")
    s.add_argument("file")
    s = cmd("find", "list the entities of a type")
    s.add_argument("type")
    s.add_argument("--limit", type=at_least(1), help="at most this many (says how many more there are)")
    s = cmd("children", "list an entity's children, in order, a page at a time")
    s.add_argument("id", metavar="ID|PATH")
    s.add_argument("--limit", type=at_least(1), help="at most this many (one page; says how many more there are)")
    s.add_argument("--page-size", type=at_least(1), default=500, help="children fetched per request (default 500)")
    cmd("types", "list the entity types")
    s = cmd("watch", "print changes of a field as they are committed")
    s.add_argument("target", metavar="ID|PATH|TYPE")
    s.add_argument("field")
    s.add_argument("--type-wide", action="store_true", help="TARGET is a type: every entity of it (and derived types)")
    s.add_argument("--changes-only", action="store_true", help="only when the value changed")
    s.add_argument("--context", action="append", metavar="PATH", help="also show this field (path), repeatable")
    s.add_argument("--from-index", type=at_least(0), help="replay retained changes from this log index")
    s.add_argument("--count", type=at_least(1), help="stop after this many notifications")
    s = cmd("raw", 'send one message as JSON, e.g. \'{"GetMetrics": {}}\'')
    s.add_argument("message")
    user_commands.add_commands(cmd)
    return p


#: What to do when the cluster has users on and no --user was given.
_NO_USER_HINT = ("qcore-cli: the cluster has users on: give --user NAME (or set QCORE_USER); the password comes from"
                 " QCORE_PASSWORD or is asked for")


def _password(user: str | None) -> str | None:
    if user is None:
        return None
    pw = os.environ.get("QCORE_PASSWORD")
    return pw if pw else user_commands.login_password(user)  # no user has an empty password


def _key_passphrase(args: argparse.Namespace) -> str:
    """Asked for only if the client key is encrypted (OpenSSL calls it then)."""
    flag, path = ("--tls-client-key", args.tls_client_key) if args.tls_client_key else ("--tls-client-cert",
                                                                                         args.tls_client_cert)
    return user_commands.tls_key_passphrase(flag, path)


async def run(args: argparse.Namespace) -> int:
    # A --timeout given bounds the membership commands too; without one they take the library's longer default.
    args.membership_timeout = args.timeout
    if args.timeout is None:
        args.timeout = DEFAULT_TIMEOUT
    try:
        parse_addresses(args.addr)  # the command line's error, before a password is asked for
    except ValueError as e:
        print(f"qcore-cli: {e}", file=sys.stderr)
        return USAGE_EXIT
    try:
        c = Client(args.addr, request_timeout=args.timeout, retry_writes=args.retry_writes,
                   tls_ca=args.tls_ca_file, tls_cert=args.tls_client_cert, tls_key=args.tls_client_key,
                   tls_key_password=lambda: _key_passphrase(args), user=args.user, password=_password(args.user))
    except ValueError as e:  # TLS: a client key without its certificate, or a certificate file without its key
        print(f"qcore-cli: {e}", file=sys.stderr)
        return USAGE_EXIT if args.tls_client_key and not args.tls_client_cert else 1
    except CliError as e:  # no password
        print(f"qcore-cli: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a TLS file that cannot be read
        files = ", ".join(f for f in (args.tls_ca_file, args.tls_client_cert, args.tls_client_key) if f)
        print(f"qcore-cli: TLS: cannot use {files}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        if ops.is_offline(args):
            ops.snapshot_status(args)
        else:
            await command(c, args)
        return 0
    except BrokenPipeError:
        raise  # main() stops quietly
    except UsageError as e:
        print(f"qcore-cli: {e}", file=sys.stderr)
        return USAGE_EXIT
    except (QcoreError, CliError, ValueError, TypeError, BackupError, OSError) as e:  # OSError: a backup file
        print(f"qcore-cli: {type(e).__name__}: {e}" if isinstance(e, QcoreError) else f"qcore-cli: {e}", file=sys.stderr)
        if getattr(e, "kind", None) == Kind.AUTH_REQUIRED and args.user is None:
            print(_NO_USER_HINT, file=sys.stderr)
        return 1
    finally:
        await c.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends (exit 0) once it is watching; any other command did not finish.
        return 0 if getattr(args, "watching", False) else INTERRUPTED_EXIT
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly. Python would still try to flush
        # stdout at exit and print another error, so point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
