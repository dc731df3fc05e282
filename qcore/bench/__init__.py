"""``qcore bench``: the ruler that measures qcore against itself and its peers.

The orchestrator (:mod:`qcore.bench.cli`) starts servers as child processes
(qcore nodes, etcd members, PySyncObj processes, a no-op server) and drives
them with load-generator processes (:mod:`qcore.bench.loadgen`), so neither
the servers nor the orchestrator share an event loop with the client.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``qcore bench`` and ``python -m qcore.bench``."""
    from qcore.bench.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
