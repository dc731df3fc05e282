"""Which qcore this is: the package version and the highest semantics level of log
entries it applies (qcore.node.entries), as `qcore --version`, `/health` and the
`qcore_build_info` metric report them, so an operator can follow a rolling upgrade."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version as _dist_version


@cache
def version() -> str:
    """The installed package's version ("unknown" when run from a source tree not installed)."""
    try:
        return _dist_version("qcore")
    except PackageNotFoundError:
        return "unknown"


def entry_level() -> int:
    """The highest semantics level of log entries this build applies (and writes)."""
    from qcore.node.entries import ENTRY_LEVEL  # at call time: qcore.node imports this module

    return ENTRY_LEVEL


def describe(prog: str) -> str:
    """`qcore 0.1.0 (log entry semantics level 3)`: what --version prints."""
    return f"{prog} {version()} (log entry semantics level {entry_level()})"
