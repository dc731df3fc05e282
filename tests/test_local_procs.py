"""The helpers every launcher of local nodes shares (qcore.local_procs)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from qcore.local_procs import ephemeral_range, free_port, free_ports, log_tail, node_argv


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
    socks = []
    try:
        for p in ports + [free_port()]:
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    finally:
        for s in socks:
            s.close()


def test_free_ports_are_outside_the_range_outgoing_connections_take() -> None:
    """A node's port must not be one a client's or proxy's connection can be
    given as its local port while the node is down between kill and restart."""
    low, high = ephemeral_range()
    if low - 10000 < 1000 and 65535 - high < 1000:
        pytest.skip(f"the ephemeral range {low}-{high} leaves no room for listening ports")
    ports = free_ports(50)
    assert not [p for p in ports if low <= p <= high]
    assert len(set(ports)) == 50


def test_a_port_held_by_an_outgoing_connection_is_not_chosen() -> None:
    """What the rule prevents: a listener cannot bind a port that a connected
    socket holds, so a restarted node would fail to start."""
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as out:
        held = out.getsockname()[1]
        assert ephemeral_range()[0] <= held <= ephemeral_range()[1]
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                again.bind(("127.0.0.1", held))
                again.listen()
                clash = False
            except OSError:
                clash = True
        assert clash
        assert held not in free_ports(50)


def test_node_argv_is_the_spec_command_line(tmp_path: Path) -> None:
    argv = node_argv(3, "127.0.0.1:9000", tmp_path / "schemas.yaml", tmp_path / "d", "--init")
    assert argv == [sys.executable, "-m", "qcore", "--id", "3", "--ws-addr", "127.0.0.1:9000",
                    "--config-file", str(tmp_path / "schemas.yaml"), "--data-dir", str(tmp_path / "d"), "--init"]
    assert node_argv(1, "a:1", "c", "d", program=["fake-node"])[:3] == ["fake-node", "--id", "1"]


def test_log_tail_keeps_the_last_lines_and_tolerates_a_missing_log(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "absent.log") == ""
