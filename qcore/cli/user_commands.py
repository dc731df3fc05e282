"""``qcore-cli``'s commands on users, roles and whether users are on (SPEC 8.3).

    qcore-cli --user admin user add alice --role operator [--entity User$5]
    qcore-cli --user admin user passwd alice         (or: --user alice, their own)
    qcore-cli --user admin user grant|revoke alice operator
    qcore-cli --user admin user delete alice / user list
    qcore-cli --user admin role add dashboard '*.*=read'
    qcore-cli --user admin role set sensors 'Sensor.Value=read,write' / role delete / role list
    qcore-cli --user admin auth enable|disable|status

A new password is read from ``--password-file`` (its first line), else from
standard input's first line when it is not a terminal, else asked for twice
at a prompt. It is never taken as an argument (it would show in ``ps`` and
shell history). A permission is ``TYPE[.FIELD]=ACCESS[,ACCESS]``.
Nothing typed at a prompt (Ctrl-D) is a one-line error, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from qcore.cli.entity_commands import emit, entity_arg
from qcore.cli.text_values import CliError, UsageError, format_eid
from qcore.client import Client
from qcore.node.options import read_password_file

__all__ = ["COMMANDS", "add_commands", "new_password", "login_password"]


def add_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    s = cmd("user", "users: add, delete, passwd, grant, revoke, list")
    sub = s.add_subparsers(dest="user_command", required=True, metavar="add|delete|passwd|grant|revoke|list")
    a = sub.add_parser("add", help="add a user (the password is asked for, or --password-file)")
    a.add_argument("name")
    a.add_argument("--role", action="append", default=[], help="a role to grant, repeatable")
    a.add_argument("--entity", metavar="ID|PATH", help="the entity the user's writes are recorded as written by")
    a.add_argument("--password-file", type=Path, help="read the new password from this file's first line")
    sub.add_parser("delete", help="delete a user (its open connections lose their rights)").add_argument("name")
    p = sub.add_parser("passwd", help="set a user's password (anyone may set their own)")
    p.add_argument("name")
    p.add_argument("--password-file", type=Path, help="read the new password from this file's first line")
    for verb in ("grant", "revoke"):
        g = sub.add_parser(verb, help=f"{verb} a role")
        g.add_argument("name")
        g.add_argument("role")
    sub.add_parser("list", help="every user with its roles and entity")

    s = cmd("role", "roles: add, set, delete, list")
    sub = s.add_subparsers(dest="role_command", required=True, metavar="add|set|delete|list")
    a = sub.add_parser("add", help="add a role with permissions TYPE[.FIELD]=ACCESS[,ACCESS]")
    a.add_argument("name")
    a.add_argument("permissions", nargs="*", metavar="PERM")
    a = sub.add_parser("set", help="replace a role's permissions")
    a.add_argument("name")
    a.add_argument("permissions", nargs="*", metavar="PERM")
    sub.add_parser("delete", help="delete a role (users lose it)").add_argument("name")
    sub.add_parser("list", help="every role with its permissions")

    s = cmd("auth", "users on or off: enable, disable, status")
    s.add_argument("auth_command", choices=["enable", "disable", "status"])


def new_password(path: Path | None, name: str) -> str:
    """A new password: from a file, from standard input, or asked for twice."""
    if path is not None:
        try:
            return read_password_file(path)
        except (OSError, ValueError) as exc:
            raise CliError(f"--password-file: {exc}") from None
    if not sys.stdin.isatty():
        with interruptible():
            line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on standard input (its first line)")
        return line
    first = _ask(f"new password for {name}: ")
    if not first:
        raise CliError("the password may not be empty")
    if _ask("again: ") != first:
        raise CliError("the passwords do not match")
    return first


def login_password(user: str) -> str:
    """The password ``--user`` logs in with when ``QCORE_PASSWORD`` is not set: asked for
    at the terminal (not echoed) or, where there is none (a script, cron), standard
    input's first line, as psql does."""
    if _has_terminal():
        pw = _ask(f"password for {user}: ")
    else:
        with interruptible():
            pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        raise CliError(f"no password for {user}: set QCORE_PASSWORD, type it at the prompt, "
                         "or give it as standard input's first line")
    return pw


def tls_key_passphrase(flag: str, path: str) -> str:
    """The passphrase of an encrypted client key: asked for once at the terminal (not
    echoed), as curl and psql do; without a terminal a CliError naming the flag, since
    standard input may be the login password's."""
    if not _has_terminal():
        raise CliError(f"{flag} {path} is encrypted with a passphrase and there is no terminal to ask it at:"
                       f" give the key unencrypted, readable by you only (openssl pkey -in {path} -out client.key;"
                       " chmod 600 client.key)")
    pw = _ask(f"passphrase for {path}: ")
    if not pw:
        raise CliError(f"no passphrase for {path}")
    return pw


def _has_terminal() -> bool:
    """Can getpass ask at a terminal (the controlling one, else standard input)?"""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        return True
    except OSError:
        return sys.stdin.isatty()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in a blocking read (a password prompt) inside the block.
    asyncio.run's own SIGINT handler only cancels the main task, which a read on the loop's
    thread never gives up for: the prompt stayed until Enter was pressed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ask(prompt: str) -> str:
    """A line typed at the terminal, not echoed; Ctrl-D (end of input) is a CliError."""
    try:
        with interruptible():
            return getpass.getpass(prompt)
    except EOFError:
        print(file=sys.stderr)  # end the prompt's line
        raise CliError(f"nothing typed at {prompt.strip()!r}") from None


def _perm_text(p: dict[str, Any]) -> str:
    return f"{p['entity_type']}.{p['field']}={','.join(p['access'])}"


async def user(c: Client, args: argparse.Namespace) -> None:
    verb = args.user_command
    name: str = getattr(args, "name", "")
    if verb == "add":
        entity = await entity_arg(c, args.entity) if args.entity else None
        res = await c.user_add(name, new_password(args.password_file, name), roles=args.role, entity=entity)
        emit(args, res, f"added user {name}" + (f" with roles {', '.join(args.role)}" if args.role else ""))
    elif verb == "delete":
        emit(args, await c.user_delete(name), f"deleted user {name}")
    elif verb == "passwd":
        emit(args, await c.user_set_password(name, new_password(args.password_file, name)),
             f"set the password of {name}")
    elif verb == "grant":
        emit(args, await c.user_grant_role(name, args.role), f"granted {args.role} to {name}")
    elif verb == "revoke":
        emit(args, await c.user_revoke_role(name, args.role), f"revoked {args.role} from {name}")
    else:
        users = await c.users()
        emit(args, users, "\n".join(
            f"{u['user']:<20} roles: {', '.join(u['roles']) or '-'}"
            + (f"  entity: {format_eid(u['entity'])}" if u.get("entity") else "") for u in users) or "no users")


async def role(c: Client, args: argparse.Namespace) -> None:
    verb = args.role_command
    name: str = getattr(args, "name", "")
    try:
        if verb == "add":
            emit(args, await c.role_add(name, args.permissions), f"added role {name}")
        elif verb == "set":
            emit(args, await c.role_set_permissions(name, args.permissions), f"set the permissions of {name}")
        elif verb == "delete":
            emit(args, await c.role_delete(name), f"deleted role {name}")
        else:
            roles = await c.roles()
            emit(args, roles, "\n".join(
                f"{r['role']:<20} {' '.join(_perm_text(p) for p in r['permissions']) or '(no permissions)'}"
                + (" (built in)" if r.get("builtin") else "") for r in roles))
    except ValueError as exc:  # a permission's text
        raise UsageError(str(exc)) from None


async def auth(c: Client, args: argparse.Namespace) -> None:
    if args.auth_command == "enable":
        emit(args, await c.auth_enable(), "users are on: every connection must authenticate")
    elif args.auth_command == "disable":
        emit(args, await c.auth_disable(), "users are off: every connection may do everything")
    else:
        st = await c.auth_status()
        who = f"{st.get('user')} (roles: {', '.join(st.get('roles') or []) or '-'})" if st.get("user") else "nobody"
        emit(args, st, f"users {'on' if st.get('enabled') else 'off'} (revision {st.get('revision')}); "
                       f"this connection: {who}")


COMMANDS = {"user": user, "role": role, "auth": auth}
