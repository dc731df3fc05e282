"""``qcore bench export``: importing and exporting a big tree, end to end.

Import: a config file with N entities (a root, folders of 1000 items, each
item with an Int, a String and a reference) is given to a fresh node as
``qcore --config-file FILE --init``; the figure is the time from starting
the process to the node serving the whole tree (parse, validate, the
config entry written and fsynced, applied).

Export: ``qcore-cli export`` of that node to a file (a linearizable
snapshot pulled in chunks, restored into a local store, written as YAML);
then the file is parsed back and its entity count checked.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from qcore.bench import report
from qcore.bench.machine import describe, one_line
from qcore.local_procs import free_port, node_argv

FANOUT = 1000


def write_config(path: Path, entities: int) -> int:
    """A config file with `entities` tree entities; returns its size in bytes."""
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        f.write(
            "schemas:\n"
            "- entity_type: Object\n  inherit: null\n  fields:\n"
            "    Name: {default_value: {String: \"\"}, rank: 0}\n"
            "    Parent: {default_value: {EntityReference: null}, rank: 1}\n"
            "    Children: {default_value: {EntityList: []}, rank: 2}\n"
            "- entity_type: Folder\n  inherit: Object\n  fields: {}\n"
            "- entity_type: Item\n  inherit: Object\n  fields:\n"
            "    Count: {default_value: {Int: 0}, rank: 3}\n"
            "    Label: {default_value: {String: \"\"}, rank: 4}\n"
            "    Next: {default_value: {EntityReference: null}, rank: 5}\n"
            "tree:\n- entity_type: Folder\n  name: root\n  children:\n"
        )
        n = 1  # the root is Folder$1; ids follow the file order
        while n < entities:
            folder = n + 1
            f.write(f"  - entity_type: Folder\n    name: f{folder}\n")
            n += 1
            kids = min(FANOUT, entities - n)
            if kids:
                f.write("    children:\n")
                w = f.write
                for k in range(kids):
                    n += 1
                    # Each item points at the next one in its folder (ids follow the file order).
                    nxt = f", Next: {{EntityReference: Item${n + 1}}}" if k + 1 < kids else ""
                    w(f"    - {{entity_type: Item, name: i{n}, attributes: "
                      f"{{Count: {{Int: {n}}}, Label: {{String: item number {n}}}{nxt}}}}}\n")
    return path.stat().st_size


async def _serving(addr: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    from qcore.client import Client, QcoreError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited with {proc.returncode}")
        try:
            async with Client(addr, request_timeout=5, connect_timeout=1) as c:
                metrics = await c.metrics()
                if metrics.get("initialised") and metrics.get("current_leader") is not None:
                    found = await c.find("Object", limit=1)
                    if found:
                        return
        except (QcoreError, OSError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the node did not serve the tree within {timeout:.0f} s")


async def _export(addr: str, path: Path) -> dict[str, Any]:
    from qcore.client import Client
    from qcore.client.snapshot import fetch_snapshot
    from qcore.node.state_machine import StateMachine
    from qcore.store.config_export import export_config

    t0 = time.perf_counter()
    async with Client(addr, request_timeout=600) as c:
        snap = await fetch_snapshot(c)
    fetched = time.perf_counter()
    sm = StateMachine()
    sm.restore(snap.data, snap.index)
    restored = time.perf_counter()
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        result = export_config(sm.store, f)
    done = time.perf_counter()
    return {"export_s": done - t0, "fetch_s": fetched - t0, "restore_s": restored - fetched,
            "write_yaml_s": done - restored, "snapshot_bytes": len(snap.data), "exported": result.entities,
            "export_bytes": path.stat().st_size}


def run_export_import(entities: int, workdir: Path, out: Path) -> int:
    from qcore.store.config import load_config

    machine = describe(workdir)
    print(f"machine: {one_line(machine)}", flush=True)
    cfg = workdir / "import.yaml"
    size = write_config(cfg, entities)
    print(f"config file with {entities:,} entities: {size / 2**20:.0f} MiB", flush=True)
    addr = f"127.0.0.1:{free_port()}"
    log = open(workdir / "node.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(node_argv(1, addr, cfg, workdir / "data", "--init"), stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(_serving(addr, proc, timeout=900))
        import_s = time.perf_counter() - t0
        print(f"import (qcore --config-file F --init, start to serving): {import_s:.1f} s", flush=True)
        exported = workdir / "export.yaml"
        r = asyncio.run(_export(addr, exported))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print(f"export (qcore-cli export): {r['export_s']:.1f} s (snapshot pulled {r['fetch_s']:.1f} s, "
          f"restored {r['restore_s']:.1f} s, YAML written {r['write_yaml_s']:.1f} s; "
          f"{r['export_bytes'] / 2**20:.0f} MiB)", flush=True)
    t1 = time.perf_counter()
    back = load_config(exported)
    parse_s = time.perf_counter() - t1
    count = _count(back.tree)
    print(f"parsing the export back (load_config, libyaml): {parse_s:.1f} s, {count:,} entities", flush=True)
    if count != entities or r["exported"] != entities:
        print(f"FAILED: expected {entities} entities, exported {r['exported']}, parsed back {count}")
        return 1
    result = {"entities": entities, "config_bytes": size, "import_s": import_s, **r, "parse_back_s": parse_s}
    report.write_json(out / "export_import.json", {"kind": "qcore-bench-export-import", "machine": machine,
                                                    "result": result})
    print(f"wrote {out / 'export_import.json'}")
    return 0


def _count(tree: Any) -> int:
    n, stack = 0, list(tree)
    while stack:
        node = stack.pop()
        n += 1
        stack.extend(node.children)
    return n


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_export_import(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
