"""One real node process through every SPEC 2 message."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.node.harness import SCHEMAS, Conn, NodeProc, eid, logged, read, wait_serving, wait_until, write

STR = {"String": ""}


def schema(entity_type: str, inherit: str | None, fields: dict) -> dict:
    return {"entity_schema": {"entity_type": entity_type, "inherit": inherit, "fields": {
        name: {"field_type": name, "default_value": default, "rank": i, "read_permission": None,
               "write_permission": None, "choices": None}
        for i, (name, default) in enumerate(fields.items())
    }}}


async def init_single(c: Conn) -> None:
    reply = await c.call("Init", nodes=[])
    assert reply["InitResponse"]["response"] == "Ok", reply


async def test_uninitialised_node_then_init(nodes):
    n = nodes(1).start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    m = await c.metrics()
    assert m["id"] == 1 and m["initialised"] is False and m["current_leader"] is None
    reply = await c.call("Perform", request={"EntityExists": {"entity_id": eid("Root", 1)}})
    assert "not initialised" in reply["Error"]["error"]
    # every application request, not only Perform: an empty store's "does not exist" would be final
    for tag, body in [
        ("RegisterNotification", {"config": {"EntityId": {"entity_id": eid("Root", 1), "field_type": "Name",
                                                           "trigger_on_change": True, "context": []}}}),
        ("RegisterNotification", {"config": {"EntityType": {"entity_type": "Root", "field_type": "Name",
                                                             "trigger_on_change": True, "context": []}}}),
        ("SnapshotSave", {}),
    ]:
        reply = await c.call(tag, **body)
        assert reply["Error"]["kind"] == "not_initialised", reply
    await init_single(c)
    again = await c.call("Init", nodes=[])
    assert "already initialised" in again["InitResponse"]["response"]["Err"]
    m = await c.metrics()
    assert m["state"] == "Leader" and m["current_leader"] == 1 and m["current_term"] >= 1
    assert m["membership_config"]["membership"]["configs"] == [[1]]
    assert m["membership_config"]["membership"]["nodes"] == {"1": n.addr}
    assert m["last_applied"]["index"] >= 2
    assert 1 <= m["membership_config"]["log_id"]["index"] <= m["last_applied"]["index"]
    assert m["membership_config"]["log_id"]["leader_id"]["term"] >= 1
    # the config file's tree was applied by Init
    roots = await c.perform({"FindEntities": {"entity_type": "Root", "page_opts": None}})
    assert roots["FindEntities"]["error"] is None
    assert roots["FindEntities"]["response"]["total"] >= 1
    await c.close()


async def test_init_and_add_learner_refuse_an_address_peers_cannot_dial(nodes):
    """A member's address is stored for good (a learner cannot be re-added elsewhere):
    one that is not HOST:PORT is refused before anything is written."""
    n = nodes(1).start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    bad = await c.call("Init", nodes=[[1, n.addr], [2, "127.0.0.1 8082"]])
    assert bad["InitResponse"]["kind"] == "invalid"
    assert "node 2's address: expected HOST:PORT" in bad["InitResponse"]["response"]["Err"], bad
    assert (await c.metrics())["initialised"] is False
    await init_single(c)
    for addr in ("not an addr", "127.0.0.1:99999", "127.0.0.1:", "ws://127.0.0.1:8082", ":8082"):
        r = await c.call("AddLearner", node_id=2, node_addr=addr)
        assert r["AddLearnerResponse"]["kind"] == "invalid", r
        assert r["AddLearnerResponse"]["response"]["Err"].startswith("node_addr: expected HOST:PORT"), r
    assert (await c.metrics())["membership_config"]["membership"]["nodes"] == {"1": n.addr}
    await c.close()


async def test_init_refuses_a_list_naming_the_node_elsewhere_than_its_ws_addr(nodes):
    """Peers dial the address Init gives the node; one it does not serve on is refused
    (as --initial-cluster refuses it) before anything is written."""
    n = nodes(1).start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    port = n.addr.rpartition(":")[2]
    for elsewhere in (f"127.0.0.2:{port}", "127.0.0.1:1"):
        bad = await c.call("Init", nodes=[[1, elsewhere], [2, "127.0.0.1:2"]])
        assert bad["InitResponse"]["kind"] == "invalid", bad
        assert bad["InitResponse"]["response"]["Err"] == (
            f"nodes: gives node 1 the address {elsewhere}, but it serves on --ws-addr {n.addr}"), bad
    assert (await c.metrics())["initialised"] is False
    await init_single(c)
    await c.close()


async def test_membership_requests_that_change_nothing_answer_ok_with_a_null_log_id(nodes):
    """AddLearner of a member at its address, ChangeMembership to the voters in force and
    RemoveNode of a non-member propose nothing: Ok, no log id, the configuration unchanged,
    so a client may send any of them again after an unknown outcome."""
    n, c = await _single_leader(nodes)
    membership = (await c.metrics())["membership_config"]["membership"]
    for tag, body in [("AddLearner", {"node_id": 1, "node_addr": n.addr}),
                      ("ChangeMembership", {"members": [1]}),
                      ("RemoveNode", {"node_id": 7})]:
        reply = (await c.call(tag, **body))[f"{tag}Response"]["response"]
        assert reply == {"Ok": {"log_id": None, "membership": membership}}, (tag, reply)
    await c.close()


async def test_backup_requests_that_fail_say_why_with_a_kind(nodes):
    """SnapshotRead/SnapshotRelease refusals carry a kind, as every error the node sends does."""
    n, c = await _single_leader(nodes)
    saved = (await c.call("SnapshotSave"))["SnapshotSaveResponse"]["response"]["Ok"]
    for tag, body, kind, text in [
        ("SnapshotRead", {"handle": "nope", "offset": 0, "length": 10}, "not_found", "no snapshot 'nope'"),
        ("SnapshotRead", {"handle": saved["handle"], "offset": 0, "length": 0}, "invalid", "length must be 1.."),
        ("SnapshotRead", {"handle": saved["handle"], "offset": saved["size"] + 1, "length": 10}, "invalid",
         "past the end"),
        ("SnapshotRelease", {"handle": "nope"}, "not_found", "no snapshot 'nope'"),
    ]:
        reply = (await c.call(tag, **body))[f"{tag}Response"]
        assert reply["kind"] == kind and text in reply["response"]["Err"], reply
    released = await c.call("SnapshotRelease", handle=saved["handle"])
    assert released["SnapshotReleaseResponse"] == {"id": released["SnapshotReleaseResponse"]["id"],
                                                   "response": {"Ok": None}}
    await c.close()


async def test_every_application_request(nodes):
    n, c = await _single_leader(nodes)
    r = await c.perform({"SetSchema": schema("Gadget", "Object", {"Size": {"Int": 0}, "Label": STR})})
    assert r == {"SetSchema": {"error": None}}
    r = await c.perform({"GetSchema": {"entity_type": "Gadget"}})
    assert r["GetSchema"]["response"]["inherit"] == "Object"
    assert set(r["GetSchema"]["response"]["fields"]) == {"Size", "Label"}
    r = await c.perform({"GetCompleteSchema": {"entity_type": "Gadget"}})
    assert {"Name", "Parent", "Children", "Size", "Label"} <= set(r["GetCompleteSchema"]["response"]["fields"])
    r = await c.perform({"FieldExists": {"entity_type": "Gadget", "field_type": "Size"}})
    assert r["FieldExists"]["response"] is True
    r = await c.perform({"CreateEntity": {"entity_type": "Gadget", "parent_id": None, "name": "g1"}})
    g1 = r["CreateEntity"]["response"]
    assert g1["typ"] == "Gadget" and r["CreateEntity"]["error"] is None
    r = await c.perform({"CreateEntity": {"entity_type": "Gadget", "parent_id": g1, "name": "g2"}})
    g2 = r["CreateEntity"]["response"]
    assert g2["id"] != g1["id"]
    r = await c.perform({"UpdateEntity": {"request": [
        write(g1, "Size", {"Int": 5}), write(g1, "Size", {"Int": 2}, adjust="Add"),
        read(g1, "Size"), read(g2, "Parent->Name"), read(g1, "Children->0->Name"),
    ]}})
    body = r["UpdateEntity"]
    assert body["error"] is None
    assert body["response"][2]["Read"]["value"] == {"Int": 7}
    assert body["response"][2]["Read"]["write_time"] is not None
    assert body["response"][3]["Read"]["value"] == {"String": "g1"}
    assert body["response"][4]["Read"]["value"] == {"String": "g2"}
    # atomic batch: the failing request is named and nothing is applied
    r = await c.perform({"UpdateEntity": {"request": [write(g1, "Size", {"Int": 100}), write(g1, "Size", {"String": "x"})]}})
    assert "1" in r["UpdateEntity"]["error"]
    r = await c.perform({"UpdateEntity": {"request": [read(g1, "Size")]}})
    assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"Int": 7}
    r = await c.perform({"FindEntities": {"entity_type": "Gadget", "page_opts": {"limit": 1, "cursor": None}}})
    page = r["FindEntities"]["response"]
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next_cursor"] is not None
    r = await c.perform({"GetEntityTypes": {"page_opts": None}})
    assert "Gadget" in r["GetEntityTypes"]["response"]["items"]
    r = await c.perform({"EntityExists": {"entity_id": g2}})
    assert r["EntityExists"]["response"] is True
    r = await c.perform({"DeleteEntity": {"entity_id": g1}})
    assert r["DeleteEntity"]["error"] is None
    for gone in (g1, g2):  # recursive
        r = await c.perform({"EntityExists": {"entity_id": gone}})
        assert r["EntityExists"]["response"] is False
    await c.close()


async def _is_leader(c: Conn) -> bool:
    return (await c.metrics())["state"] == "Leader"


async def _single_leader(nodes) -> tuple[NodeProc, Conn]:
    """A one-node cluster (--init) and a connection to it, once it leads."""
    n = nodes(1, "--init").start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    await wait_until(lambda: _is_leader(c), what="leader")
    return n, c


async def test_pipelined_requests_answer_by_id(nodes):
    n, c = await _single_leader(nodes)
    r = await c.perform({"SetSchema": schema("Counter", "Object", {"N": {"Int": 0}})})
    r = await c.perform({"CreateEntity": {"entity_type": "Counter", "parent_id": None, "name": "c"}})
    ent = r["CreateEntity"]["response"]
    adds = [c.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}}) for _ in range(200)]
    replies = await asyncio.gather(*adds)
    assert all(x["UpdateEntity"]["error"] is None for x in replies)
    r = await c.perform({"UpdateEntity": {"request": [read(ent, "N")]}})
    assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"Int": 200}
    await c.close()


async def test_restart_resumes_without_init_and_keeps_acknowledged_writes(nodes):
    n, c = await _single_leader(nodes)
    await c.perform({"SetSchema": schema("Note", "Object", {"Text": STR})})
    r = await c.perform({"CreateEntity": {"entity_type": "Note", "parent_id": None, "name": "n"}})
    note = r["CreateEntity"]["response"]
    for i in range(50):
        r = await c.perform({"UpdateEntity": {"request": [write(note, "Text", {"String": f"v{i}"})]}})
        assert r["UpdateEntity"]["error"] is None
    await c.close()
    n.kill9()  # no chance to flush anything: only what was fsynced survives
    n.extra = []  # no --init: it must resume from its data dir
    n.start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    await wait_until(lambda: _is_leader(c), what="leader after restart")
    r = await c.perform({"UpdateEntity": {"request": [read(note, "Text")]}})
    assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"String": "v49"}
    assert (await c.call("Init", nodes=[]))["InitResponse"]["response"] != "Ok"
    await c.close()
    assert n.terminate() == 0  # SIGTERM: clean shutdown, exit 0


async def test_a_restarted_single_node_leads_at_once_not_an_election_timeout_later(nodes):
    """Its only voter need not wait: the configuration it recovers (from its log, no snapshot
    yet) names only itself. The election timeout here is 60-120 s, so 20 s is 'at once'."""
    n = nodes(1, "--init", "--election-ticks", "3000").start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    await wait_until(lambda: _is_leader(c), what="leader after --init")
    await c.close()
    assert n.terminate() == 0
    n.start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    await wait_until(lambda: _is_leader(c), timeout=20, what="leader after the restart")
    r = await c.perform({"FindEntities": {"entity_type": "Root", "page_opts": None}})
    assert r["FindEntities"]["error"] is None and r["FindEntities"]["response"]["total"] == 1, r
    await c.close()


async def test_bad_input_gets_errors_and_node_keeps_serving(nodes):
    n = nodes(1, "--init", "--max-frame-bytes", "100000").start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    await wait_until(lambda: _is_leader(c), what="leader")
    cases = [
        "not json at all",
        "[1,2,3]",
        '{"NoSuchMessage": {"id": "x1"}}',
        '{"Perform": {"id": "x2"}}',
        '{"Perform": {"id": "x3", "request": {"Bogus": {}}}}',
        '{"Perform": {"id": "x4", "request": {"EntityExists": {"entity_id": {"typ": 5, "id": -1}}}}}',
        '{"GetMetrics": {"id": true}}',
        '{"Init": {"id": "x5", "nodes": "all"}}',
        '{"a": 1, "b": 2}',
        '{"Perform": {"id": "x6", "request": {"UpdateEntity": {"request": [{"Write": {"entity_id": {"typ": "Root", "id": 1}, "field_type": "Name", "value": {"Int": 99999999999999999999999}}}]}}}}',
        "{" * 10000,
    ]
    for text in cases:
        await c.ws.send(text)
        reply = await asyncio.wait_for(c.unmatched.get(), 10)
        assert "Error" in reply, (text[:80], reply)
        assert reply["Error"]["error"], reply
    # errors carry the request id when it can be recovered
    await c.ws.send('{"Perform": {"id": "keep-me", "request": 5}}')
    reply = await asyncio.wait_for(c.unmatched.get(), 10)
    assert reply["Error"]["id"] == "keep-me"
    # binary frames
    await c.ws.send(b'{"GetMetrics": {"id": "bin"}}')
    reply = await asyncio.wait_for(c.unmatched.get(), 10)
    assert "binary" in reply["Error"]["error"]
    # oversized frame: refused with a clear error, connection stays usable
    await c.ws.send(orjson.dumps({"GetMetrics": {"id": "big", "pad": "x" * 150_000}}).decode())
    reply = await asyncio.wait_for(c.unmatched.get(), 10)
    assert "too large" in reply["Error"]["error"] and reply["Error"]["id"] == "big", reply
    assert (await c.metrics())["id"] == 1
    # a frame over twice the limit is not even buffered: the connection is closed with 1009
    huge = await Conn.open(n.addr)
    await huge.ws.send("x" * 300_000)
    await huge.ws.wait_closed()
    assert huge.ws.close_code == 1009
    # abrupt disconnects mid-request
    for _ in range(20):
        raw = await Conn.open(n.addr)
        await raw.ws.send(orjson.dumps({"Perform": {"id": "gone", "request": {"GetEntityTypes": {"page_opts": None}}}}).decode())
        raw.ws.transport.abort()
    assert n.alive()
    r = await c.perform({"GetEntityTypes": {"page_opts": None}})
    assert r["GetEntityTypes"]["error"] is None
    await c.close()


async def test_bad_config_file_is_a_clear_startup_error(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("schemas:\n  - entity_type: User\n    inherit: Nope\n    fields: {}\n")
    for cfg, needle in ((tmp_path / "missing.yaml", "not found"), (bad, "bad.yaml")):
        p = subprocess.run(
            [sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", "--config-file", str(cfg)],
            capture_output=True, text=True, timeout=30,
            cwd=tmp_path,  # its default data dir, not the checkout's ./data (where a README node may run)
        )
        assert p.returncode != 0
        assert needle in p.stderr, p.stderr


async def test_start_up_errors_are_one_line_exit_2_and_leave_no_data_dir_behind(tmp_path):
    """A bad config file or --initial-cluster is found before a new data dir is made; a
    --data-dir that is a file is named as such (it was `[Errno 17] File exists`)."""
    import subprocess
    import sys

    def qcore(*args: str) -> tuple[int, str]:
        p = subprocess.run([sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", *args],
                           capture_output=True, text=True, timeout=30, cwd=tmp_path)  # default data dir: ./data/node-1
        return p.returncode, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""

    assert qcore("--config-file", "missing.yaml") == (2, "qcore: missing.yaml: config file not found")
    (tmp_path / "conf").mkdir()
    assert qcore("--config-file", "conf") == (2, "qcore: conf: is a directory, not a config file")
    assert not (tmp_path / "data").exists()
    for members, reason in (
        ("2=127.0.0.1:2", "--initial-cluster does not list this node's id 1"),
        ("1=127.0.0.1:2", "--initial-cluster gives node 1 the address 127.0.0.1:2, but it serves on --ws-addr 127.0.0.1:1"),
    ):
        assert qcore("--initial-cluster", members) == (2, f"qcore: {reason}")
        assert qcore("--initial-cluster", members, "--in-memory") == (2, f"qcore: {reason}")
        assert not (tmp_path / "data").exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert qcore("--data-dir", str(a_file)) == (2, f"qcore: data dir {a_file} is a file, not a directory (--data-dir)")
    assert qcore("--data-dir", str(a_file / "sub")) == (
        2, f"qcore: cannot create data dir {a_file / 'sub'} (--data-dir): Not a directory")


async def test_out_of_range_numeric_flags_are_one_line_errors(tmp_path):
    """A tick, count or limit below its floor, a timeout that is not a positive
    number of seconds, or a --join with no address, is refused before the node
    starts (it used to start a node that spun, never elected a leader or never
    joined, or die with ZeroDivisionError)."""
    import subprocess
    import sys

    cases = [("--tick-ms", "0"), ("--tick-ms", "-5"), ("--election-ticks", "0"), ("--heartbeat-ticks", "-1"),
             ("--snapshot-threshold", "-1"), ("--snapshot-keep", "-1"), ("--snapshot-threshold-bytes", "0"),
             ("--snapshot-keep-bytes", "-1"), ("--max-frame-bytes", "0"), ("--max-batch-copy", "-1"),
             ("--max-inflight", "0"), ("--max-connections", "0"), ("--notify-retain", "-1"),
             ("--notify-max-per-conn", "-1"), ("--notify-queue-limit", "0"), ("--notify-queue-bytes", "0"),
             ("--request-timeout", "0"), ("--request-timeout", "inf"), ("--stuck-timeout", "-1"),
             ("--handshake-timeout", "nan"), ("--tick-ms", "fast"), ("--join", " , ")]
    for flag, value in cases:
        p = subprocess.run(
            [sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", "--in-memory", "--init",
             flag, value], capture_output=True, text=True, timeout=30, cwd=tmp_path)
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        assert p.returncode == 2 and last.startswith(f"qcore: error: argument {flag}: ") and value in last, \
            (flag, value, p.returncode, p.stderr[-500:])
    p = subprocess.run(
        [sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", "--in-memory", "--init",
         "--election-ticks", "2", "--heartbeat-ticks", "2"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 2 and "--election-ticks must be more than --heartbeat-ticks" in p.stderr, p.stderr



async def test_a_data_dir_is_refused_to_a_node_of_another_id(nodes, tmp_path):
    """A data dir holds one node's term, vote and log: started with another --id
    (a mixed-up --data-dir) the node refuses to start, instead of voting again
    in a term with another node's state; the node it belongs to resumes on it."""
    import subprocess
    import sys

    from qcore.cli.client import build_parser, run as cli_run
    from qcore.cli.restore import restore_data_dir

    one = nodes(1, "--init").start()
    await wait_serving(one)
    backup = tmp_path / "b.snap"
    assert await cli_run(build_parser().parse_args(["--addr", one.addr, "snapshot", "save", str(backup)])) == 0
    assert one.terminate() == 0
    restored = tmp_path / "restored"
    restore_data_dir(backup, restored, 3, {3: "127.0.0.1:1"})
    for data_dir, owner in ((one.data_dir, 1), (restored, 3)):
        p = subprocess.run([sys.executable, "-m", "qcore", "--id", "2", "--ws-addr", "127.0.0.1:1",
                            "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert p.returncode == 2, (p.returncode, p.stderr[-800:])
        assert f"qcore: data dir {data_dir} holds the state of node {owner}, not of --id 2" in p.stderr, p.stderr
    one.extra = []
    one.start()  # the node it belongs to resumes on it
    await wait_serving(one)
    c = await Conn.open(one.addr)
    try:
        await wait_until(lambda: _is_leader(c), what="node 1 leads again")
    finally:
        await c.close()


async def test_a_node_started_on_another_address_than_its_configuration_names_warns(nodes):
    """SPEC 1: --ws-addr is also the address other nodes use; a data dir restarted elsewhere says so."""
    first = nodes(1, "--init").start()
    await wait_serving(first)
    assert first.terminate() == 0
    first.start()  # the same address: no warning
    await wait_serving(first)
    assert first.terminate() == 0
    moved = nodes(1)  # the same data dir and log file, another port
    moved.start()
    await wait_serving(moved)
    warning = f"the cluster configuration names node 1 at {first.addr}, but it listens on --ws-addr {moved.addr}"
    assert moved.log_path.read_text().count(warning) == 1


async def test_a_node_listening_on_every_interface_is_named_by_its_port(nodes):
    """--ws-addr 0.0.0.0:P serves the address the configuration names (127.0.0.1:P): no warning."""
    wide = nodes(1)
    wide.extra += ["--ws-addr", f"0.0.0.0:{wide.port}"]  # the last --ws-addr given wins
    wide.start()
    await wait_serving(wide)
    c = await Conn.open(wide.addr)
    bad = await c.call("Init", nodes=[[1, "127.0.0.1:1"]])  # on every interface, but not on this port
    assert bad["InitResponse"]["kind"] == "invalid", bad
    reply = await c.call("Init", nodes=[[1, wide.addr]])
    assert reply["InitResponse"]["response"] == "Ok", reply
    await wait_until(lambda: _is_leader(c), what="leader")
    await c.close()
    assert wide.terminate() == 0
    wide.start()
    await wait_serving(wide)
    assert wide.terminate() == 0
    assert "the cluster configuration names node 1" not in wide.log_path.read_text()


async def test_initial_cluster_names_a_node_listening_on_every_interface_by_its_port(nodes):
    """--ws-addr 0.0.0.0:P --initial-cluster 1=127.0.0.1:P forms, as Init takes that list."""
    wide = nodes(1)
    wide.extra += ["--ws-addr", f"0.0.0.0:{wide.port}", "--initial-cluster", f"1={wide.addr}"]
    wide.start()
    await wait_serving(wide)
    c = await Conn.open(wide.addr)
    await wait_until(lambda: _is_leader(c), what="leader")
    await c.close()


def test_qcore_help_names_every_command_and_each_has_help():
    """`qcore --help` is where a new operator looks: it names the commands besides
    running a node, and each of them answers its own --help."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "qcore", *args], capture_output=True, text=True, timeout=60)

    top = run("--help")
    assert top.returncode == 0, top.stderr
    text = " ".join(top.stdout.split())  # argparse wraps the description
    for command in ("qcore bench", "qcore snapshot restore", "qcore gen-secret"):
        assert command in text, (command, top.stdout)
        sub = run(*command.split()[1:], "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout, (command, sub.stdout, sub.stderr)


def test_qcore_and_qcore_cli_say_their_version_and_semantics_level():
    """What an operator checks on each node during a rolling upgrade (docs/operations.md)."""
    import subprocess
    import sys
    from importlib.metadata import version

    from qcore.node.entries import ENTRY_LEVEL

    for module, prog in (("qcore", "qcore"), ("qcore.cli.client", "qcore-cli")):
        p = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == f"{prog} {version('qcore')} (log entry semantics level {ENTRY_LEVEL})\n", \
            (p.stdout, p.stderr)


async def test_sigterm_stops_an_uninitialised_or_joining_node_without_an_error_line(nodes):
    """SIGTERM is a clean stop (exit 0) for a node that never joined a cluster too: the tasks
    waiting for it to become a member are cancelled, and no "Future exception was never
    retrieved" ERROR is logged for what stopping failed after they stopped listening."""
    fresh = nodes(1).start()
    joining = nodes(2, "--join", fresh.addr).start()  # keeps asking an uninitialised node
    for n in (fresh, joining):
        await wait_serving(n)
    await wait_until(lambda: logged(joining, "joining the cluster via"), what="a join attempt")
    for n in (fresh, joining):
        assert n.terminate() == 0
        log = n.log_path.read_text()
        assert "stopped" in log and " ERROR " not in log and "never retrieved" not in log, n.log_tail()


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_an_ipv6_ws_addr_in_brackets_is_served(nodes):
    """--ws-addr [::1]:P, the HOST:PORT form of an IPv6 address, binds ::1 (it was looked up
    as a host named "[::1]": "Name or service not known"); the configuration names it so."""
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    n = nodes(1, "--init")
    n.addr = f"[::1]:{n.port}"
    n.start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    try:
        await wait_until(lambda: _is_leader(c), what="leader")
        assert (await c.metrics())["membership_config"]["membership"]["nodes"] == {"1": n.addr}
    finally:
        await c.close()


async def test_a_port_in_use_stops_the_node_before_it_writes_its_data_dir(nodes, tmp_path):
    """--ws-addr that cannot be bound (a port in use) is a one-line start-up error, exit 2,
    found before the data dir is created: it used to be found after --init had written a
    cluster naming that address into a new data dir (exit 1), which a start on another port
    then resumed, its configuration naming an address it did not serve."""
    import subprocess
    import sys

    held = nodes(1, "--init", "--in-memory").start()
    await wait_serving(held)
    data_dir = tmp_path / "second"
    p = subprocess.run([sys.executable, "-m", "qcore", "--id", "2", "--ws-addr", held.addr, "--data-dir",
                        str(data_dir), "--init"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr[-800:])
    assert f"qcore: cannot listen on --ws-addr {held.addr}: Address already in use" in p.stderr, p.stderr
    assert not data_dir.exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
async def test_a_stop_signal_while_a_large_config_file_is_read_stops_the_node_there(nodes, tmp_path, sig):
    """A stop signal during start-up stops the node where it is, even inside one long call such as
    reading the config file: one log line in the chosen format (no traceback), exit code 0 as for any
    stop, and a new node read it before creating its data dir, so none is left. (It was handled only
    once the loop ran again: after the whole file was read, the cluster initialised and the data dir
    written; SIGTERM and SIGHUP, a service manager's stop, after the whole start-up.)"""
    import signal

    schemas = SCHEMAS.read_text()
    folders = "".join(f"      - {{entity_type: Folder, name: f{i}, attributes: {{Description: {{String: d{i}}}}}}}\n"
                      for i in range(150_000))
    big = tmp_path / "big.yaml"
    big.write_text(schemas[:schemas.index("tree:")] + "tree:\n  - entity_type: Root\n    name: Root\n    children:\n"
                   + folders)
    n = nodes(1, "--init", "--log-format", "json", config_file=big).start()
    await wait_until(lambda: logged(n, "reading the config for Init"), what="the node reading its config file")
    assert n.proc is not None
    n.proc.send_signal(getattr(signal, sig))
    assert n.proc.wait(30) == 0
    records = [orjson.loads(line) for line in n.log_path.read_text().splitlines()]  # JSON lines only
    assert records[-1]["msg"] == f"received {sig} during start-up: stopped", records
    assert not n.data_dir.exists()
