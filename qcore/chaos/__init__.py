"""Jepsen-style chaos testing of real qcore processes (see docs/chaos.md).

``linearizability`` checks histories, ``proxy`` cuts peer links, ``cluster``
runs node processes, ``workload`` and ``nemesis`` drive a run, ``run`` puts
them together; ``python -m qcore.chaos`` is the command line.
"""
