"""argparse types shared by qcore's command lines (the node's and qcore-cli's)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, so that a value out of range is a usage
    error (exit 2) rather than a node that cannot work or a request the node refuses."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text!r}")
        return value
    return parse


def members(text: str) -> dict[int, str]:
    """An argparse type: ``--initial-cluster`` (``1=h:p,2=h:p``), so that a bad list is a usage error."""
    from qcore.node.bootstrap import parse_members  # here: qcore-cli, which imports this module, needs no node code

    try:
        return parse_members(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
