"""A failed round stops the node (qcore.node.driver): an exception inside the
Raft core or the runtime core means a broken invariant, and the core may
have changed state before raising, so the process logs one line and exits
non-zero instead of going on; a restart recovers from durable state.

The driver runs in a child process of its own, whose Raft core is broken
on purpose there, so that the real exit path (os._exit) is what is tested.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from qcore.node.driver import EXIT_BROKEN_INVARIANT

CHILD = textwrap.dedent(
    """
    import asyncio, logging, random
    from qcore.node.driver import RaftDriver
    from qcore.node.options import NodeOptions
    from qcore.node.state_machine import StateMachine
    from qcore.raft import Config, RawNode
    from qcore.raft import core
    from qcore.storage import MemoryStorage

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def broken_tick(self):
        raise AssertionError("planted: an invariant of the core does not hold")

    core.Raft.tick = broken_tick

    async def main():
        opts = NodeOptions(id=1, ws_addr="127.0.0.1:1", tick_ms=10, election_ticks=10)
        raw = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1), rng=random.Random(1))
        driver = RaftDriver(opts, raw, MemoryStorage(), StateMachine(), lambda msgs: None)
        driver.start()
        await asyncio.sleep(30)  # the first tick's round fails long before this
        print("the node went on after a failed round")

    asyncio.run(main())
    """
)


def test_an_exception_inside_a_round_exits_the_process() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BROKEN_INVARIANT == 70, (proc.returncode, proc.stdout, proc.stderr)
    assert "went on" not in proc.stdout
    critical = [line for line in proc.stderr.splitlines() if line.startswith("CRITICAL")]
    assert critical == ["CRITICAL qcore.node.driver: a Raft round failed (a broken invariant); stopping the node (exit 70)"]
    assert "planted: an invariant of the core does not hold" in proc.stderr  # the traceback follows


ABANDONED_INIT = textwrap.dedent(
    """
    import asyncio, logging, random
    from qcore.node.driver import RaftDriver
    from qcore.node.options import NodeOptions
    from qcore.node.state_machine import StateMachine
    from qcore.protocol.values import encode_load_config
    from qcore.raft import Config, RawNode
    from qcore.storage import MemoryStorage
    from qcore.store.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    async def main():
        opts = NodeOptions(id=1, ws_addr="127.0.0.1:1", tick_ms=10, election_ticks=10)
        raw = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1), rng=random.Random(1))
        driver = RaftDriver(opts, raw, MemoryStorage(), StateMachine(), lambda msgs: None)
        driver.start()
        config_json = encode_load_config(load_config("schemas.yaml"))
        driver.bootstrap({1: "127.0.0.1:1"}, config_json).cancel()  # its caller gone (Ctrl-C at --init)
        await driver.bootstrap({1: "127.0.0.1:1"}, config_json)  # queued behind it, in the same round
        print("the second Init initialised the node")

    asyncio.run(main())
    """
)


def test_an_init_whose_caller_gave_up_is_dropped_and_the_round_goes_on() -> None:
    """Ctrl-C while --init waited for its bootstrap cancelled the waiter; the round then
    settled it again and failed as a broken invariant (exit 70, 'InvalidStateError')."""
    proc = subprocess.run([sys.executable, "-c", ABANDONED_INIT], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "the second Init initialised the node" in proc.stdout
