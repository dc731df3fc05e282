"""Golden interaction scripts (etcd-raft's testdata/*.txt, with a small runner of our own).

Each file in testdata/ is a sequence of blocks:

    command arg arg key=value
    ----
    expected output (no blank lines)

The runner executes the commands against a tiny cluster and compares the
transcript. Run with QCORE_REWRITE=1 to rewrite the files with the actual
output (then read the diff before committing it).

Commands: add-nodes N [key=value config...], campaign ID, propose ID DATA,
stabilize, process-ready ID..., deliver-msgs [ID...], tick-election ID,
tick-heartbeat ID, tick ID N, isolate ID, heal, status ID, raft-log ID,
read-index ID CTX, transfer-leader ID TO, conf-change ID v4 l5 r3 [joint],
compact ID, restart ID, link-down ID PEER (the transport lost its link to PEER),
cut FROM TO (drop messages on one link until heal).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qcore.raft import ConfChangeRejected, ProposalDropped, Ready
from qcore.raft.describe import describe_conf_state, describe_entries, describe_message, describe_ready
from qcore.raft.types import ConfChangeTransition, ConfChangeType

from .network import Network

DATA = Path(__file__).parent / "testdata"


class Transcript(Network):
    """The test network, narrating every Ready and delivery."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.out: list[str] = []
        super().__init__(*args, **kwargs)

    def on_ready(self, nid: int, rd: Ready) -> None:
        self.out.append(f"> {nid} handling Ready")
        self.out.extend("  " + line for line in describe_ready(rd).splitlines())

    def deliver(self, pred=None) -> int:  # type: ignore[no-untyped-def]
        shown = [m for m in self.queue if pred is None or pred(m)]
        for to in sorted({m.to for m in shown}):
            self.out.append(f"> {to} receiving messages")
            for m in shown:
                if m.to == to:
                    cut = (m.frm, m.to) in self.cut
                    self.out.append("  " + describe_message(m) + ("  DROPPED" if cut else ""))
        return super().deliver(pred)


def _cfg(args: dict[str, str]) -> dict[str, object]:
    names = {
        "pre_vote": ("pre_vote", lambda v: v == "true"),
        "check_quorum": ("check_quorum", lambda v: v == "true"),
        "max_inflight": ("max_inflight_msgs", int),
        "max_size": ("max_size_per_msg", int),
        "election": ("election_tick", int),
    }
    return {names[k][0]: names[k][1](v) for k, v in args.items()}


def run_command(net: Transcript | None, cmd: str, pos: list[str], kw: dict[str, str]) -> tuple[Transcript | None, list[str]]:
    if cmd == "add-nodes":
        net = Transcript(range(1, int(pos[0]) + 1), **_cfg(kw))
        return net, ["ok"]
    assert net is not None, "add-nodes first"
    net.out = []
    ids = [int(p) for p in pos if p.isdigit()]
    if cmd == "campaign":
        net.nodes[ids[0]].campaign()
    elif cmd == "propose":
        try:
            term, index = net.nodes[ids[0]].propose(pos[1].encode())
            net.out.append(f"proposed t{term}/i{index}")
        except ProposalDropped as e:
            net.out.append(str(e))
    elif cmd == "stabilize":
        net.stabilize()
    elif cmd == "process-ready":
        for nid in ids:
            net.process(nid)
    elif cmd == "deliver-msgs":
        net.deliver((lambda m: m.to in ids) if ids else None)
    elif cmd in ("tick-election", "tick-heartbeat", "tick"):
        node = net.nodes[ids[0]]
        cfg = net.config(ids[0])
        if cmd == "tick-heartbeat":
            n = cfg.heartbeat_tick
        elif cmd == "tick":
            n = ids[1]
        else:
            n = 2 * cfg.election_tick  # past any randomised timeout
        for _ in range(n):
            node.tick()
    elif cmd == "isolate":
        net.isolate(ids[0])
    elif cmd == "link-down":
        net.nodes[ids[0]].report_link_down(ids[1])
    elif cmd == "cut":
        net.cut.add((ids[0], ids[1]))
    elif cmd == "heal":
        net.heal()
    elif cmd == "status":
        st = net.status(ids[0])
        net.out.append(
            f"{st.role} term={st.term} vote={st.vote} lead={st.leader_id} "
            f"last=i{st.last_log_index}/t{st.last_log_term} commit={st.commit} applied={st.applied} "
            f"conf={describe_conf_state(st.conf_state)}"
        )
        for nid, p in st.progress.items():
            net.out.append(f"  {nid}: {p.state} match={p.match} next={p.next} inflight={p.inflight}")
    elif cmd == "raft-log":
        d = net.disks[ids[0]]
        if d.snapshot is not None:
            net.out.append(f"snapshot t{d.snapshot.meta.term}/i{d.snapshot.meta.index}")
        net.out.append(describe_entries(d.entries))
    elif cmd == "read-index":
        net.nodes[ids[0]].read_index(pos[1].encode())
    elif cmd == "transfer-leader":
        net.nodes[ids[0]].transfer_leader(ids[1])
    elif cmd == "conf-change":
        kinds = {"v": ConfChangeType.ADD_NODE, "l": ConfChangeType.ADD_LEARNER, "r": ConfChangeType.REMOVE_NODE}
        changes = [(kinds[p[0]], int(p[1:])) for p in pos[1:] if p[0] in kinds]
        extra = {"transition": ConfChangeTransition.JOINT_EXPLICIT} if "joint" in pos else {}
        for t, n in changes:
            if n not in net.nodes:
                net.add_node(n)
        try:
            term, index = net.change(ids[0], *changes, **extra)
            net.out.append(f"proposed t{term}/i{index}")
        except (ConfChangeRejected, ProposalDropped) as e:
            net.out.append(str(e))
    elif cmd == "compact":
        nid = ids[0]
        applied = net.status(nid).applied
        snap = net.nodes[nid].create_snapshot(applied, net.machines[nid].snapshot_bytes())
        net.disks[nid].snapshot = snap
        net.disks[nid].entries = [e for e in net.disks[nid].entries if e.index > applied]
        net.nodes[nid].compact(applied)
        net.out.append(f"snapshot t{snap.meta.term}/i{snap.meta.index}")
    elif cmd == "restart":
        net.restart(ids[0])
    else:
        raise ValueError(f"unknown command {cmd!r}")
    return net, net.out or ["ok"]


def parse(text: str) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        assert i < len(lines) and lines[i].strip() == "----", f"line {i}: expected ---- after {line!r}"
        i += 1
        out = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        blocks.append((line, out))
    return blocks


def render(blocks: list[tuple[str, list[str]]], comments: dict[int, list[str]]) -> str:
    parts = []
    for n, (cmd, out) in enumerate(blocks):
        parts.extend(comments.get(n, []))
        parts.append(cmd)
        parts.append("----")
        parts.extend(out)
        parts.append("")
    return "\n".join(parts)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda p: p.stem)
def test_interaction_script(path: Path) -> None:
    text = path.read_text()
    # Keep the comments that precede each command, for rewriting.
    comments: dict[int, list[str]] = {}
    pending: list[str] = []
    n = 0
    skip_output = False
    for line in text.splitlines():
        s = line.strip()
        if skip_output:
            if not s:
                skip_output = False
            continue
        if s.startswith("#"):
            pending.append(line)
        elif s == "----":
            skip_output = True
        elif s:
            comments[n] = pending
            pending = []
            n += 1
    blocks = parse(text)
    net: Transcript | None = None
    actual = []
    for cmd_line, _ in blocks:
        words = cmd_line.split()
        pos = [w for w in words[1:] if "=" not in w]
        kw = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        net, out = run_command(net, words[0], pos, kw)
        actual.append((cmd_line, out))
    if os.environ.get("QCORE_REWRITE") == "1":
        path.write_text(render(actual, comments))
        return
    for (cmd_line, expected), (_, got) in zip(blocks, actual):
        assert got == expected, f"{path.name}: {cmd_line}\n--- expected\n" + "\n".join(expected) + "\n--- got\n" + "\n".join(got)
