"""qcore-cli against a fake node: arguments in, the right frames out, readable output, exit codes."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from qcore.cli import client as cli
from qcore.local_procs import free_port
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, refusal
from tests.client.fake_node import FakeNode


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    n = FakeNode(1)
    await n.start()
    yield n
    await n.stop()


async def run(node: FakeNode, *argv: str) -> int:
    args = cli.build_parser().parse_args(["--addr", node.address, "--timeout", "2", *argv])
    return await cli.run(args)


def last_perform(node: FakeNode) -> dict[str, Any]:
    return node.of_type(m.Perform)[-1].request  # type: ignore[no-any-return]


async def test_create_write_read_find(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.schemas["User"]["fields"] = {
        "Age": {"field_type": "Age", "default_value": {"Int": 0}, "rank": 3,
                "read_permission": None, "write_permission": None, "choices": None},
    }
    assert await run(node, "create", "Folder", "Users") == 0
    assert capsys.readouterr().out == "Folder$1\n"
    assert await run(node, "create", "User", "alice", "--parent", "Folder$1") == 0
    assert last_perform(node) == {
        "CreateEntity": {"entity_type": "User", "parent_id": {"typ": "Folder", "id": 1}, "name": "alice"}
    }
    assert capsys.readouterr().out == "User$2\n"

    # the schema says Age is an Int: "42" is written as {"Int": 42}
    assert await run(node, "write", "User$2", "Age", "42") == 0
    assert last_perform(node)["UpdateEntity"]["request"][0]["Write"]["value"] == {"Int": 42}
    # a field the schema does not know: the obvious reading
    assert await run(node, "write", "User$2", "Nick", "al") == 0
    assert last_perform(node)["UpdateEntity"]["request"][0]["Write"]["value"] == {"String": "al"}
    assert await run(node, "write", "User$2", "Boss", "--type", "EntityReference", "User$9", "--changes-only") == 0
    w = last_perform(node)["UpdateEntity"]["request"][0]["Write"]
    assert w["value"] == {"EntityReference": {"typ": "User", "id": 9}} and w["push_condition"] == "Changes"
    assert await run(node, "write", "User$2", "Tags", "--json", '{"EntityList": ["User$1"]}', "--adjust", "Add") == 0
    w = last_perform(node)["UpdateEntity"]["request"][0]["Write"]
    assert w["value"] == {"EntityList": [{"typ": "User", "id": 1}]} and w["adjust_behavior"] == "Add"
    capsys.readouterr()

    assert await run(node, "read", "User$2", "Age") == 0
    out = capsys.readouterr().out
    assert out.startswith("Int 42\n  written 1970-01-01T00:00:01.000000000Z by null")
    assert await run(node, "--json", "read", "User$2", "Nick") == 0
    assert orjson.loads(capsys.readouterr().out)["value"] == {"String": "al"}

    assert await run(node, "find", "User") == 0
    assert capsys.readouterr().out == "User$2\n"
    assert await run(node, "--json", "types") == 0
    assert orjson.loads(capsys.readouterr().out) == ["Folder", "User"]
    assert await run(node, "types", "--json") == 0  # after the command too
    assert orjson.loads(capsys.readouterr().out) == ["Folder", "User"]
    assert await run(node, "exists", "User$2") == 0
    assert capsys.readouterr().out == "yes\n"
    assert await run(node, "delete", "User$2") == 0
    assert await run(node, "exists", "User$2") == 0
    assert capsys.readouterr().out.endswith("no\n")


async def test_management_commands(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.metrics = {"id": 1, "state": "Leader", "current_term": 3, "current_leader": 1,
                    "last_log_index": 12, "last_applied": {"leader_id": {"term": 3, "node_id": 1}, "index": 12},
                    "membership_config": {"membership": {"configs": [[1]], "nodes": {"1": {"addr": node.address}}}}}
    assert await run(node, "node-status") == 0
    out = capsys.readouterr().out
    assert "state     Leader" in out and "applied 12" in out and f"1={node.address}" in out
    assert await run(node, "init", "--node", "1=127.0.0.1:1", "--node", "2=127.0.0.1:2") == 0
    assert node.of_type(m.Init)[-1].nodes == [(1, "127.0.0.1:1"), (2, "127.0.0.1:2")]
    assert await run(node, "add-learner", "3", "127.0.0.1:3") == 0
    assert node.of_type(m.AddLearner)[-1] == m.AddLearner(node.of_type(m.AddLearner)[-1].id, 3, "127.0.0.1:3")
    assert await run(node, "change-membership", "1", "2", "3") == 0
    assert node.of_type(m.ChangeMembership)[-1].members == [1, 2, 3]
    assert await run(node, "remove-node", "3") == 0
    assert node.of_type(m.RemoveNode)[-1].node_id == 3
    capsys.readouterr()
    assert await run(node, "raw", '{"GetMetrics": {}}') == 0
    assert orjson.loads(capsys.readouterr().out)["GetMetricsResponse"]["response"]["id"] == 1


async def test_schema_commands(node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "schemas:\n"
        "  - entity_type: Device\n"
        "    inherit: Object\n"
        "    fields:\n"
        "      Mode: {default_value: {Choice: 0}, rank: 3, choices: [Low, High]}\n"
        "      Owner: {default_value: {EntityReference: null}, rank: 4, write_permission: User$1}\n"
    )
    assert await run(node, "set-schema", str(f)) == 0
    sent = last_perform(node)["SetSchema"]["entity_schema"]
    assert sent["fields"]["Mode"] == {"field_type": "Mode", "default_value": {"Choice": 0}, "rank": 3,
                                      "read_permission": None, "write_permission": None, "choices": ["Low", "High"]}
    assert sent["fields"]["Owner"]["write_permission"] == {"typ": "User", "id": 1}
    capsys.readouterr()
    assert await run(node, "schema", "Device", "--complete") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Device (inherits Object)"
    assert "Mode" in out and "choices: Low, High" in out and "write_permission: User$1" in out


async def test_errors_exit_1_with_a_message(node: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(node, "delete", "User$77") == 1
    assert "entity not found" in capsys.readouterr().err
    missing = str(tmp_path / "no-ca.pem")
    assert await run(node, "--tls-ca-file", missing, "status") == 1
    assert capsys.readouterr().err == f"qcore-cli: TLS: cannot use {missing}: No such file or directory\n"
    await node.stop()
    assert await run(node, "status") == 1
    assert "ConnectionFailed" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["read", "User", "Name"], "qcore-cli: bad entity id 'User': expected Type$number, e.g. User$123"),
    (["create", "User", "x", "--parent", "Folder$"], "qcore-cli: bad entity id 'Folder$'"),
    (["write", "User$1", "Age", "--type", "Int", "forty"],
     "qcore-cli: User$1.Age is an Int field: cannot read 'forty'; expected an integer, e.g. 42"),
    (["write", "User$1", "Age", "--json", "{bad"], "qcore-cli: bad JSON value '{bad'"),
    (["read", "/", "Name"], "qcore-cli: / is the list of roots, not an entity"),
    (["watch", "User", "Name"], "to watch Name of every User, add --type-wide"),
    (["watch", "User$1", "Name", "--type-wide"], "qcore-cli: --type-wide watches a type, not 'User$1'"),
    (["init", "--node", "x"], "qcore-cli: bad --node 'x': expected ID=HOST:PORT"),
    (["raw", '{"Nope": {}}'], 'unknown message type "Nope"'),
    (["role", "add", "r", "User=fly"], "qcore-cli: permission 'User=fly'.access[0]: expected one of"),
    (["--addr", "localhost", "status"], "qcore-cli: bad address 'localhost': expected host:port"),  # not "TLS: ..."
    (["--addr", "wss://127.0.0.1:1", "--tls-client-key", "k.pem", "status"],
     "qcore-cli: a client key was given without its certificate"),
])
async def test_a_bad_argument_found_after_parsing_is_a_usage_error(
    node: FakeNode, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # These exited 1, as a refusal by the node does, while argparse's own usage errors exit 2
    # (docs/client.md): now every error in the command line is 2, with one line saying what,
    # and nothing is sent but the look-up of a field's type.
    assert await run(node, *argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("qcore-cli: ") and message in line
    sent = [type(r).__name__ for r in node.received if type(r) is not m.Perform]
    sent += [next(iter(r.request)) for r in node.of_type(m.Perform)]
    assert set(sent) <= {"GetCompleteSchema"}, sent


async def test_an_unanswered_membership_command_says_what_may_have_changed(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # They said only "RequestTimeout: ChangeMembership '1': no reply within the request timeout";
    # the change may be made all the same. A node's own answer that it did not finish stays as it is.
    async def silent(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RemoveNode and msg.node_id == 4:
            return refusal(m.RemoveNodeResponse, msg.id, Kind.OUTCOME_UNKNOWN, "the node's own words")
        if type(msg) in (m.ChangeMembership, m.RemoveNode):
            return None  # no answer
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = silent
    assert await run(node, "--timeout", "0.5", "change-membership", "1", "2") == 1
    assert capsys.readouterr().err == (
        "qcore-cli: RequestTimeout: change-membership 1 2: no answer within 0.5 s (--timeout), but the voters may be"
        " 1, 2 now, or be changing to them: `qcore-cli status` shows the members; `qcore-cli change-membership`"
        " with the voters you want sets them\n")
    assert await run(node, "--timeout", "0.5", "remove-node", "3") == 1
    err = capsys.readouterr().err
    assert "remove-node 3: no answer within 0.5 s (--timeout), but node 3 may have been removed" in err, err
    assert err.endswith("`qcore-cli add-learner 3 ADDR` adds it back\n"), err
    assert await run(node, "--timeout", "0.5", "remove-node", "4") == 1
    assert capsys.readouterr().err == "qcore-cli: RequestTimeout: the node's own words\n"


def test_an_unanswered_membership_command_without_timeout_names_the_default_it_took() -> None:
    """Without --timeout the bound is the 60 s default, which the message named as '(--timeout)'."""
    from qcore.cli.client import _unanswered
    from qcore.client import RequestTimeout

    e = _unanswered(argparse.Namespace(membership_timeout=None), RequestTimeout("x"), "remove-node 3", "may", "undo")
    assert str(e).startswith("remove-node 3: no answer within 60 s (the default without --timeout), but may"), e


async def test_watch_prints_each_change(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    async def publisher(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RegisterNotification:
            await fn.send(ws, m.RegisterNotificationResponse(msg.id, m.ok("tok")))
            for i in (11, 12):
                await fn.send(ws, m.Notification("tok", {
                    "entity_id": {"typ": "User", "id": 1}, "field_type": "Score",
                    "current_value": {"Int": i}, "previous_value": {"Int": i - 1},
                    "write_time": {"secs_since_epoch": 0, "nanos_since_epoch": 0}, "writer_id": None,
                    "context": {"Name": {"String": "bob"}}, "log_index": i}))
            return None
        if type(msg) is m.UnregisterNotification:
            return m.UnregisterNotificationResponse(msg.id, m.ok(None))
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = publisher
    rc = await asyncio.wait_for(
        run(node, "watch", "User$1", "Score", "--changes-only", "--context", "Name", "--count", "2"), 5
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[11] User$1 Score: Int 10 -> Int 11  by null")
    assert lines[0].endswith('Name=String "bob"')
    reg = node.of_type(m.RegisterNotification)[0]
    assert reg.config["EntityId"]["trigger_on_change"] is True and reg.config["EntityId"]["context"] == ["Name"]
    assert len(node.of_type(m.UnregisterNotification)) == 1


async def test_a_timestamp_is_written_to_the_nanosecond_it_is_typed(node: FakeNode) -> None:
    # Read through a float (seconds) or datetime (ISO 8601), digits past the microsecond were
    # lost, and 1.9999999999 s became 1 s; now the digits typed are the nanoseconds written.
    node.schemas["User"]["fields"] = {
        "Seen": {"field_type": "Seen", "default_value": {"Timestamp": {"secs_since_epoch": 0, "nanos_since_epoch": 0}},
                 "rank": 3, "read_permission": None, "write_permission": None, "choices": None},
    }
    assert await run(node, "create", "User", "alice") == 0
    for text, secs, nanos in (("1700000000.123456789", 1700000000, 123456789),
                              ("1.999999999", 1, 999999999),
                              ("2024-01-02T03:04:05.123456789Z", 1704164645, 123456789),
                              ("2024-01-02T04:04:05.0000001+01:00", 1704164645, 100),
                              ("2024-01-02T03:04:05Z", 1704164645, 0),
                              ("20240102T030405.123456789Z", 1704164645, 123456789),  # ISO 8601's basic format
                              ("2024-01-02 03:04:05,5", 1704164645, 500000000)):
        assert await run(node, "write", "User$1", "Seen", text) == 0, text
        w = last_perform(node)["UpdateEntity"]["request"][0]["Write"]
        assert w["value"] == {"Timestamp": {"secs_since_epoch": secs, "nanos_since_epoch": nanos}}, text
    def writes() -> int:
        return sum("UpdateEntity" in p.request for p in node.of_type(m.Perform))
    before = writes()
    assert await run(node, "write", "User$1", "Seen", "1.9999999999") == 2  # finer than a nanosecond
    assert writes() == before


@pytest.mark.parametrize("argv, message", [
    (["find", "User", "--limit", "0"], "argument --limit: must be at least 1, got '0'"),
    (["find", "User", "--limit", "-1"], "argument --limit: must be at least 1, got '-1'"),
    (["children", "Root$1", "--limit", "0"], "argument --limit: must be at least 1"),
    (["children", "Root$1", "--page-size", "0"], "argument --page-size: must be at least 1"),
    (["watch", "User$1", "Score", "--count", "0"], "argument --count: must be at least 1"),
    (["watch", "User$1", "Score", "--from-index", "-5"], "argument --from-index: must be at least 0"),
    (["tree", "--depth", "-1"], "argument --depth: must be at least 0"),
    (["find", "User", "--limit", "ten"], "argument --limit: expected an integer, got 'ten'"),
])
def test_a_count_limit_or_index_out_of_range_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # They were sent: --limit -1 came back in the wire's words ("ServerError: Perform.request:
    # ...page_opts.limit: expected an unsigned 64-bit integer"), --count 0 watched forever,
    # --from-index -5 got an Error frame, and --depth -1 was taken as 0. Now the command line
    # does not parse (exit 2) and nothing is sent: no node listens at this address.
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--addr", f"127.0.0.1:{free_port()}", "--timeout", "1", *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


async def test_an_environment_variable_set_empty_counts_as_unset(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # QCORE_USER= made qcore-cli log in as user "" ("no password for : set QCORE_PASSWORD ..."),
    # and QCORE_ADDR= made it say "no address given" instead of trying 127.0.0.1:8080.
    monkeypatch.setenv("QCORE_USER", "")
    monkeypatch.setenv("QCORE_ADDR", "")
    monkeypatch.setenv("QCORE_PASSWORD", "")
    assert cli.build_parser().parse_args(["status"]).addr == "127.0.0.1:8080"
    assert await run(node, "types") == 0, capsys.readouterr().err
    assert node.received and not [r for r in node.received if type(r).__name__ == "Authenticate"]


async def test_status_unanswered_in_time_is_a_timeout_not_an_unknown_outcome(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    """GetClusterMetrics is a read: with no answer by --timeout, `status` said it 'may or may not
    have been applied', as for a write that must not be sent twice."""
    from qcore.protocol import ops

    async def silent(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is ops.GetClusterMetrics:
            return None  # no answer
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = silent
    assert await run(node, "--timeout", "0.5", "status") == 1
    err = capsys.readouterr().err
    assert err.startswith("qcore-cli: RequestTimeout: GetClusterMetrics") and "may or may not" not in err, err
