"""The web console's files on the node's port (SPEC 10, qcore.node.console):
served from the package with their content types, a same-origin-only policy
and revalidation; nothing else reachable through them; shipped as package
data; every module the page imports exists."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request

from qcore.node.console import ConsoleFiles, content_security_policy, load_files
from tests.node.harness import REPO, Conn, wait_serving
from tests.node.http_get import http_get

CONSOLE = REPO / "qcore" / "console"


def _get(files: ConsoleFiles, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    h = Headers()
    for k, v in headers.items():
        h[k.replace("_", "-")] = v
    reply = files.serve(Request(path, h))
    return reply.status, {**reply.headers, "content-type": reply.content_type}, reply.body


async def test_the_node_serves_the_console_on_its_port(nodes) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    status, headers, body = await http_get(n.addr, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="console/js/main.js">' in body
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and f"ws://{n.addr}" in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-cache"
    status, headers, body = await http_get(n.addr, "/console/js/main.js")
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert body == (CONSOLE / "js" / "main.js").read_bytes()
    status, headers, _ = await http_get(n.addr, "/console/console.css?v=1")
    assert status == 200 and headers["content-type"] == "text/css; charset=utf-8"
    for path in ("/console/", "/console/nope.js", "/console/../schemas.yaml", "/console/js/../../qcore/__init__.py",
                 "/index.html"):
        status, _, _ = await http_get(n.addr, path)
        assert status == 404, path
    # The WebSocket on / is unchanged: a client upgrading there talks the protocol.
    c = await Conn.open(n.addr)
    try:
        assert (await c.metrics())["id"] == 1
    finally:
        await c.close()


async def test_no_console_turns_it_off(nodes) -> None:
    n = nodes(1, "--init", "--no-console").start()
    await wait_serving(n)
    status, _, body = await http_get(n.addr, "/")
    assert status == 404 and b"--no-console" in body
    assert (await http_get(n.addr, "/console/js/main.js"))[0] == 404
    assert (await http_get(n.addr, "/health"))[0] == 200


def test_revalidation_answers_304_without_a_body() -> None:
    files = ConsoleFiles.packaged()
    status, headers, body = _get(files, "/")
    etag = headers["ETag"]
    status, headers, body = _get(files, "/", If_None_Match=etag)
    assert status == 304 and body == b"" and headers["ETag"] == etag
    assert _get(files, "/", If_None_Match='"other"')[0] == 200
    # Each file has its own tag, from its content.
    assert _get(files, "/console/console.css")[1]["ETag"] != etag


def test_the_policy_names_only_a_well_formed_host() -> None:
    assert "ws://db.example:8080 wss://db.example:8080" in content_security_policy("db.example:8080")
    assert "ws://[::1]:8080" in content_security_policy("[::1]:8080")
    for bad in ("evil.example; script-src *", "a b", "x:80\r\nSet-Cookie: y", None):
        policy = content_security_policy(bad)
        assert "connect-src 'self';" in policy and "*" not in policy, bad


def test_every_file_is_package_data_and_every_import_resolves() -> None:
    shipped = sorted(str(p.relative_to(CONSOLE)) for p in CONSOLE.rglob("*") if p.is_file())
    assert "index.html" in shipped and "js/main.js" in shipped
    # A non-editable install takes what pyproject's package-data names.
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["qcore"]
    for name in shipped:
        assert any(fnmatch.fnmatch(f"console/{name}", p) for p in patterns), f"{name} is not package data"
    served = load_files(CONSOLE)
    assert sorted(served) == shipped, "a file with no content type would not be served"
    # Every module import and every file the page links to exists.
    for name, f in served.items():
        text = f.body.decode()
        base = (CONSOLE / name).parent
        for ref in re.findall(r'^import [^;]*? from "(\.[^"]+)";', text, re.M) + re.findall(r'(?:src|href)="(console/[^"]+)"', text):
            target = (base / ref).resolve() if ref.startswith(".") else (CONSOLE.parent / ref).resolve()
            assert target.is_file(), f"{name} refers to {ref}, which is not there"
