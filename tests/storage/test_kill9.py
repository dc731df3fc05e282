"""Real processes, real SIGKILL: everything a child acknowledged (printed after
save() returned) must be there after reopening, byte for byte.

A few rounds by default; QCORE_SLOW=1 (or QCORE_KILL9_ROUNDS=N) runs more.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from qcore.storage import FileStorage

from .kill9_child import payload

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("QCORE_KILL9_ROUNDS", "200" if os.environ.get("QCORE_SLOW") == "1" else "6"))


def test_acknowledged_batches_survive_kill_9(tmp_path) -> None:
    seed = int(os.environ.get("QCORE_KILL9_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    d = str(tmp_path / "data")
    acked: dict[int, int] = {}  # index -> term of every acknowledged entry
    acked_term = 0
    for term in range(1, ROUNDS + 1):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.kill9_child", d, str(term), str(rng.randrange(1 << 30))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        kill_after = rng.randrange(1, 120)  # acknowledgements to read before the kill
        prev_last = max(acked, default=0)
        try:
            assert child.stdout.readline() == f"term {term}\n".encode(), f"seed {seed}: child failed"
            acked_term = term
            for _ in range(kill_after):
                line = child.stdout.readline().split()
                if not line:
                    break
                if line[0] == b"ack":
                    last = int(line[1])
                    for i in range(prev_last + 1, last + 1):
                        acked[i] = term
                    # A new term's first batch starts right after the recovered log.
                    prev_last = last
        finally:
            child.kill()  # SIGKILL, wherever it is
            child.wait()
        st = FileStorage(d)
        rec = st.recover()
        st.close()
        where = f"seed {seed}, round {term}"
        assert rec.hard_state.term == acked_term, where
        base = rec.snapshot.meta.index if rec.snapshot else 0
        got = {e.index: e for e in rec.entries}
        assert [e.index for e in rec.entries] == list(range(base + 1, base + 1 + len(rec.entries))), where
        for index, t in acked.items():
            if index > base:
                assert index in got, f"{where}: acknowledged entry {index} lost"
                assert got[index].term == t, f"{where}: entry {index} has term {got[index].term}, acked {t}"
        for e in rec.entries:
            assert e.data == payload(e.term, e.index), f"{where}: entry {e.index} damaged"
        # Unacknowledged entries that survived count as written from now on.
        for e in rec.entries:
            acked[e.index] = e.term
        for i in [i for i in acked if i > (rec.entries[-1].index if rec.entries else base)]:
            del acked[i]
