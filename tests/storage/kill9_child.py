"""Child of test_kill9: appends batches to a data dir and acknowledges each
one on stdout only after save() returned, until it is killed.

Usage: python -m tests.storage.kill9_child DATA_DIR TERM SEED
"""

from __future__ import annotations

import random
import sys

from qcore.raft.types import Entry, HardState
from qcore.storage import FileStorage


def payload(term: int, index: int) -> bytes:
    """Deterministic content, so the parent can check every byte it gets back."""
    return f"{term}:{index}:".encode() * (index % 13 + 1)


def main() -> None:
    path, term, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    st = FileStorage(path, segment_bytes=64 << 10)
    rec = st.recover()
    last = rec.entries[-1].index if rec.entries else (rec.snapshot.meta.index if rec.snapshot else 0)
    st.save(HardState(term, 1, rec.hard_state.commit), [], None, True)
    print(f"term {term}", flush=True)
    out = sys.stdout
    while True:
        n = rng.choice((1, 1, 4, 16, 64, 256))
        batch = [Entry(term, i, data=payload(term, i)) for i in range(last + 1, last + 1 + n)]
        st.save(HardState(term, 1, last), batch, None, True)
        last += n
        out.write(f"ack {last}\n")
        out.flush()
        if rng.random() < 0.02 and last > 100:
            idx = last - rng.randrange(50)
            st.save_snapshot(_snap(st, idx))
            out.write(f"snap {idx}\n")
            out.flush()


def _snap(st: FileStorage, index: int):
    from qcore.raft.types import ConfState, Snapshot, SnapshotMeta

    return Snapshot(SnapshotMeta(index, st.term(index), ConfState(voters=(1,))), b"snapshot at %d" % index)


if __name__ == "__main__":
    main()
