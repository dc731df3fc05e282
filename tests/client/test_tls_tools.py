"""The example client, the library and qcore-cli over TLS (SPEC 8.1), against
a real node: the CA file by flag or QCORE_TLS_CA, a wss:// address, and a
certificate that does not verify refused."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from qcore.client import Client
from qcore.client.errors import ConnectionFailed
from tests.client.conftest import REPO, running_node
from tests.client.fake_node import FakeNode
from tests.node.tls_files import make_tls


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qcore.cli.client", *args, cwd=REPO,
        env={**os.environ, **(env or {})}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_tools_speak_wss_with_a_ca_file_and_refuse_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = make_tls(tmp_path)
    other = make_tls(tmp_path, "other")
    async with running_node(*tls.node_args(secret=False)) as addr:
        spec = importlib.util.spec_from_file_location("websocket_client_example", REPO / "examples" / "websocket_client.py")
        assert spec is not None and spec.loader is not None
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        await example.main(f"wss://{addr}", str(tls.ca))
        out = capsys.readouterr().out
        assert '"response": "Ok"' in out and '"GetMetricsResponse"' in out
        with pytest.raises(ssl.SSLCertVerificationError):  # a node certified by another CA
            await example.main(f"wss://{addr}", str(other.ca))
        assert ">>" not in capsys.readouterr().out  # refused before anything was sent

        async with Client(f"wss://{addr}", tls_ca=str(tls.ca), request_timeout=20) as c:
            user = await c.create("User", "tls-user", parent=(await c.find("Folder", limit=1))[0])
            await c.write(user, "LoginCount", 3)
            assert (await c.read_value(user, "LoginCount")) == 3

        code, out, err = await _cli("--addr", addr, "--tls-ca-file", str(tls.ca), "status")
        assert code == 0 and "Leader" in out, err
        code, out, err = await _cli("--addr", f"wss://{addr}", "--json", "status",
                                    env={"QCORE_TLS_CA": str(tls.ca)})
        assert code == 0 and "Leader" in out, err
        code, out, err = await _cli("--addr", addr, "--timeout", "3", "status",
                                    env={"QCORE_TLS_CA": str(other.ca)})
        assert code == 1 and "certificate refused" in err, (out, err)
        with pytest.raises(ConnectionFailed, match="certificate refused"):
            async with Client(addr, tls_ca=str(other.ca), request_timeout=3) as c:
                await c.metrics()

        # TLS on one side only: the error says so, in one line.
        code, out, err = await _cli("--addr", addr, "--timeout", "1", "status", env={"QCORE_TLS_CA": ""})
        assert code == 1 and err.count("\n") == 1, (out, err)
        assert "is the node serving TLS? then connect with wss:// and its CA file" in err, err
    plain = FakeNode(1)
    await plain.start()
    try:
        with pytest.raises(ConnectionFailed, match=r"is the node serving plain ws://, without TLS\?"):
            await Client.connect(plain.address, tls_ca=str(tls.ca), request_timeout=1)
    finally:
        await plain.stop()


async def _example(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "examples" / "websocket_client.py"), *args, cwd=REPO,
        env={**os.environ, "QCORE_TLS_CA": "", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_example_script_takes_a_ca_as_qcore_cli_does_and_fails_in_one_line(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    other = make_tls(tmp_path, "other")
    async with running_node(*tls.node_args(secret=False)) as addr:
        # A CA file means TLS, whatever the scheme written (qcore-cli does the same).
        code, out, err = await _example(f"ws://{addr}", "--tls-ca-file", str(tls.ca))
        assert code == 0 and '"GetMetricsResponse"' in out, (out, err)
        code, out, err = await _example(f"ws://{addr}", env={"QCORE_TLS_CA": str(tls.ca)})
        assert code == 0 and '"GetMetricsResponse"' in out, (out, err)
        # Refused: one line on stderr, non-zero exit, nothing sent.
        code, out, err = await _example(f"wss://{addr}", "--tls-ca-file", str(other.ca))
        assert code == 1 and err.count("\n") == 1 and "certificate verify failed" in err, (out, err)
        assert ">>" not in out
        code, out, err = await _example(f"wss://{addr}")  # the system's CAs do not know this one
        assert code == 1 and err.count("\n") == 1 and "certificate verify failed" in err, (out, err)
        code, out, err = await _example(addr)  # plain ws:// to a TLS node
        assert code == 1 and err.count("\n") == 1, (out, err)
        assert "is the node serving TLS? then connect with wss:// and its CA file" in err, err
        code, out, err = await _example(addr, "--tls-ca-file", str(tmp_path / "missing.pem"))
        assert code == 1 and err.count("\n") == 1 and "missing.pem" in err, (out, err)


def test_a_client_certificate_without_its_key_says_the_key_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "qcore-cli: TLS: cannot use ca.pem, node.pem: [SSL] PEM lib (_ssl.c:3926)".
    from qcore.cli import client as cli

    tls = make_tls(tmp_path)
    code = cli.main(["--addr", "127.0.0.1:1", "--tls-ca-file", str(tls.ca), "--tls-client-cert", str(tls.cert), "status"])
    assert code == 1
    assert capsys.readouterr().err.startswith(f"qcore-cli: cannot load the client certificate {tls.cert} without a"
                                              " key file: is its private key in another file? give that too (OpenSSL: ")
    assert cli.main(["--addr", "127.0.0.1:1", "--tls-ca-file", str(tls.ca), "--tls-client-cert", str(tls.cert),
                     "--tls-client-key", str(tls.key), "--timeout", "0.5", "status"]) == 1
    assert "ConnectionFailed" in capsys.readouterr().err  # with its key it loads, and goes on to connect


async def test_qcore_cli_asks_once_for_the_passphrase_of_an_encrypted_client_key(tmp_path: Path) -> None:
    """OpenSSL's own prompt said 'Enter PEM pass phrase:' twice and, with no terminal, ended in
    'qcore-cli: TLS: cannot use ca.pem, node.pem, enc.key: Invalid argument'. Now the passphrase is
    asked for once at a terminal (as curl and psql do); without one the error names the flag."""
    from cryptography.hazmat.primitives import serialization

    from tests.node.test_users_cluster import Terminal, _take_terminal

    tls = make_tls(tmp_path)
    encrypted = tmp_path / "enc.key"
    key = serialization.load_pem_private_key(tls.key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"key-pass-3b1")))
    async with running_node(*tls.node_args(secret=False)) as addr:
        argv = [sys.executable, "-m", "qcore.cli.client", "--addr", addr, "--tls-ca-file", str(tls.ca),
                "--tls-client-cert", str(tls.cert), "--tls-client-key", str(encrypted), "status"]

        async def at_terminal(typed: str, last: str) -> tuple[int, bytes]:
            master, slave = os.openpty()
            proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO,
                                    start_new_session=True, preexec_fn=_take_terminal)
            os.close(slave)
            term = Terminal(master)
            try:
                await term.answer(f"passphrase for {encrypted}: ", typed)
                await term.expect(last)
                return await asyncio.to_thread(proc.wait, 30), term.seen
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                os.close(master)

        code, seen = await at_terminal("key-pass-3b1", addr)  # its row in the status table
        assert code == 0 and seen.count(b"passphrase for") == 1 and b"key-pass-3b1" not in seen, seen
        code, seen = await at_terminal("wrong", "wrong passphrase?")
        assert code == 1 and f"cannot decrypt the client key {encrypted}: wrong passphrase?".encode() in seen, seen
        # No terminal (a script, cron): one line naming the flag, nothing asked.
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1 and err.decode().count("\n") == 1, err
        assert err.decode().startswith(f"qcore-cli: --tls-client-key {encrypted} is encrypted with a passphrase and"
                                       " there is no terminal to ask it at"), err


async def test_the_tls_hint_outlives_a_later_attempt_that_times_out() -> None:
    """A plain ws:// client of a TLS node whose last attempt only timed out (the node was
    loaded) still says the first attempt's why: TLS on one side only."""
    held: list[asyncio.StreamWriter] = []

    async def tls_then_loaded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if held or not await reader.read(1):  # every later connection: accepted, never answered
            held.append(writer)
            return
        held.append(writer)
        writer.write(b"\x15\x03\x01\x00\x02\x02\x46")  # a TLS server's answer to an HTTP request: an alert
        writer.close()

    server = await asyncio.start_server(tls_then_loaded, "127.0.0.1", 0)
    addr = "127.0.0.1:%d" % server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionFailed) as failed:
            await Client.connect(addr, request_timeout=1.5, connect_timeout=0.3)
        assert len(held) >= 2  # it was tried again, and that attempt timed out
        assert "is the node serving TLS? then connect with wss:// and its CA file" in str(failed.value)
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
