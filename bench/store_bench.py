"""Micro-benchmark of the entity store on one core (not a test).

    python bench/store_bench.py            # full run (100k entities)
    python bench/store_bench.py --quick    # smaller, for a smoke check

All figures are CPU time of this one process (``time.process_time``), so a
busy machine does not distort them much. Prints operations per second for simple reads and writes through
``Store.query`` / ``Store.apply`` (in-process, no I/O), the same with the JSON
codec around them (decode request -> apply -> encode response, as a node
does), creates per second, the size and time of a snapshot of N entities,
and creates under one parent against the same spread over 100. Bytes per
entity: ``python -m qcore.bench.memory tree4 100000``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import orjson  # noqa: E402

from qcore.protocol.values import decode_command_request, encode_command_response  # noqa: E402
from qcore.store import (  # noqa: E402
    AdjustBehavior,
    CreateEntity,
    EntityId,
    Int,
    Read,
    Store,
    String,
    Timestamp,
    UpdateEntity,
    Write,
)
from qcore.store.config import load_config  # noqa: E402

REPO = os.path.join(os.path.dirname(__file__), "..")


def rate(n: int, secs: float) -> str:
    return f"{n / secs:>12,.0f} /s  ({secs / n * 1e6:.2f} us each)"


clock = time.process_time  # CPU seconds of this process: robust to a busy machine


def timed(fn, n: int) -> float:
    gc.collect()
    t0 = clock()
    fn(n)
    return clock() - t0


def build(n_entities: int, folders: int) -> tuple[Store, list[EntityId]]:
    store = Store()
    now = Timestamp(1_700_000_000, 0)
    resp, _ = store.apply(load_config(os.path.join(REPO, "schemas.yaml")), now)
    assert resp.error is None, resp.error
    parents = []
    for i in range(folders):
        r, _ = store.apply(CreateEntity("Folder", EntityId("Root", 1), f"bench-{i}"), now)
        parents.append(r.response)
    users = []
    for i in range(n_entities):
        r, _ = store.apply(CreateEntity("User", parents[i % folders], f"user-{i}"), now)
        users.append(r.response)
    return store, users


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--entities", type=int, default=None, help="entities in the snapshot test (default 100000)")
    ap.add_argument("--gc-threshold", type=int, default=0,
                    help="set gc gen0 threshold (e.g. 100000, as the node does); 0 keeps Python's default")
    args = ap.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 50, 100)
    n_ops = 50_000 if args.quick else 300_000
    n_ents = args.entities or (10_000 if args.quick else 100_000)

    print(f"python {sys.version.split()[0]}, {n_ops:,} ops per figure, {n_ents:,} entities, "
          f"gc thresholds {gc.get_threshold()}")
    t0 = clock()
    store, users = build(n_ents, folders=100)
    t_build = clock() - t0
    print(f"create (100 folders)         {rate(n_ents, t_build)}")
    nu = len(users)
    now = Timestamp(1_700_000_001, 0)

    reads = [UpdateEntity([Read(users[i % nu], "Name")]) for i in range(n_ops)]
    writes = [UpdateEntity([Write(users[i % nu], "LoginCount", Int(i))]) for i in range(n_ops)]
    adds = [UpdateEntity([Write(users[i % nu], "LoginCount", Int(1), adjust_behavior=AdjustBehavior.Add)])
            for i in range(n_ops)]
    paths = [UpdateEntity([Read(users[i % nu], "Parent->Name")]) for i in range(n_ops)]

    def run_query(cmds):
        q = store.query

        def go(n: int) -> None:
            for c in cmds[:n]:
                q(c)
        return go

    def run_apply(cmds):
        a = store.apply

        def go(n: int) -> None:
            for c in cmds[:n]:
                a(c, now)
        return go

    print(f"read  via query()            {rate(n_ops, timed(run_query(reads), n_ops))}")
    print(f"read  via apply()            {rate(n_ops, timed(run_apply(reads), n_ops))}")
    print(f"read  Parent->Name (query)   {rate(n_ops, timed(run_query(paths), n_ops))}")
    print(f"write Set via apply()        {rate(n_ops, timed(run_apply(writes), n_ops))}")
    print(f"write Add via apply()        {rate(n_ops, timed(run_apply(adds), n_ops))}")
    batch = UpdateEntity([Write(users[i], "Email", String(f"u{i}@x")) for i in range(100)])
    nb = n_ops // 100
    print(f"write batch of 100 (per write){rate(nb * 100, timed(lambda n: [store.apply(batch, now) for _ in range(nb)], nb))}")

    # with the codec, as a node does it: JSON bytes -> command -> apply -> JSON bytes
    from qcore.protocol.values import encode_command_request

    read_bytes = [orjson.dumps(encode_command_request(c)) for c in reads[: n_ops // 3]]
    write_bytes = [orjson.dumps(encode_command_request(c)) for c in writes[: n_ops // 3]]

    def codec_query(n: int) -> None:
        q = store.query
        for b in read_bytes[:n]:
            orjson.dumps(encode_command_response(q(decode_command_request(orjson.loads(b)))))

    def codec_apply(n: int) -> None:
        a = store.apply
        for b in write_bytes[:n]:
            orjson.dumps(encode_command_response(a(decode_command_request(orjson.loads(b)), now)[0]))

    m = len(read_bytes)
    print(f"read  with JSON codec        {rate(m, timed(codec_query, m))}")
    print(f"write with JSON codec        {rate(m, timed(codec_apply, m))}")

    gc.collect()
    t0 = clock()
    data = store.snapshot()
    t_dump = clock() - t0
    gc.collect()
    t0 = clock()
    restored = Store.restore(data)
    t_load = clock() - t0
    assert restored.snapshot() == data
    total = store.entity_count()
    print(f"snapshot of {total:,} entities: {len(data):,} bytes ({len(data) / total:.0f} B/entity), "
          f"dump {t_dump:.3f} s, restore {t_load:.3f} s")

    # one parent with many children: appends to one child list, against the same spread over 100 folders
    k = 20_000 if not args.quick else 5_000
    for label, parent_of in (("under ONE parent  ", lambda i: EntityId("Folder", 2)),
                             ("over 100 parents  ", lambda i: parents[i % len(parents)])):
        s2 = Store()
        s2.apply(load_config(os.path.join(REPO, "schemas.yaml")), now)
        parents = [s2.apply(CreateEntity("Folder", EntityId("Root", 1), f"p{i}"), now)[0].response for i in range(100)]
        tenth = k // 10
        times = []
        for part in range(10):
            t0 = clock()
            for i in range(part * tenth, (part + 1) * tenth):
                s2.apply(CreateEntity("User", parent_of(i), f"u{i}"), now)
            times.append(clock() - t0)
        print(f"create {k:,} {label} {rate(k, sum(times))}  last/first tenth {times[0] / times[-1]:.2f}")


if __name__ == "__main__":
    main()
