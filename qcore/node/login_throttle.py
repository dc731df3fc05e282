"""How long a login attempt waits before its password is checked (SPEC 8.3:
failures are slowed per connection and per user). Sans-I/O: the clock is
passed in; the node sleeps what `wait` says (docs/security.md, "Logging in").

* Per (user, source address): after n failures in a row, the next attempt
  for that user from that address waits ``BASE * 2**(n-1)`` seconds (at
  most ``CAP``) after the last failure. A success, or ``FORGET`` seconds
  without a failure, starts over.
* Per connection: the same back-off over the connection's own failures,
  whatever user they were for (a connection cannot go down a list of names).
* Per user, from every address: past ``USER_BURST`` failures within
  ``USER_WINDOW`` seconds, an address that has failed for that user waits
  ``CAP`` per attempt, and an address that has not waits ``FRESH`` seconds:
  a burst from elsewhere slows the real user's login by a second, and never
  locks them out.

Together with one attempt at a time per (user, address) and per connection
(the node's side) and the bounded hashing pool, one address gets a guess
per ``CAP`` seconds per user once it is guessing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LoginThrottle", "backoff"]

BASE = 0.25
CAP = 8.0
FORGET = 900.0
USER_BURST = 20
USER_WINDOW = 60.0
FRESH = 1.0
_MAX_TRACKED = 100_000  # (user, address) pairs remembered; the oldest are forgotten beyond


def backoff(failures: int) -> float:
    """Seconds an attempt waits after `failures` failures in a row."""
    return 0.0 if failures <= 0 else min(CAP, BASE * 2 ** (failures - 1))


@dataclass(slots=True)
class _Pair:
    failures: int = 0
    last: float = 0.0


@dataclass(slots=True)
class _User:
    recent: deque[float] = field(default_factory=deque)  # times of failures in the last window


class LoginThrottle:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._users: dict[str, _User] = {}

    def wait(self, user: str, source: str, conn_failures: int) -> float:
        """Seconds this attempt waits before its password is checked."""
        now = self._clock()
        pair = self._pair(user, source, now)
        wait = max(0.0, pair.last + backoff(pair.failures) - now) if pair is not None else 0.0
        wait = max(wait, backoff(conn_failures))
        if self._under_attack(user, now):
            wait = max(wait, CAP if pair is not None and pair.failures else FRESH)
        return wait

    def failed(self, user: str, source: str) -> None:
        now = self._clock()
        pair = self._pair(user, source, now)
        if pair is None:
            if len(self._pairs) >= _MAX_TRACKED:
                self._pairs.pop(next(iter(self._pairs)))
            pair = self._pairs[(user, source)] = _Pair()
        pair.failures += 1
        pair.last = now
        u = self._users.get(user)
        if u is None:
            if len(self._users) >= _MAX_TRACKED:
                self._users.pop(next(iter(self._users)))
            u = self._users[user] = _User()
        u.recent.append(now)
        self._trim(u, now)

    def succeeded(self, user: str, source: str) -> None:
        self._pairs.pop((user, source), None)

    def _pair(self, user: str, source: str, now: float) -> _Pair | None:
        pair = self._pairs.get((user, source))
        if pair is not None and now - pair.last > FORGET:
            del self._pairs[(user, source)]
            return None
        return pair

    def _under_attack(self, user: str, now: float) -> bool:
        u = self._users.get(user)
        if u is None:
            return False
        self._trim(u, now)
        if not u.recent:
            del self._users[user]
            return False
        return len(u.recent) > USER_BURST

    @staticmethod
    def _trim(u: _User, now: float) -> None:
        while u.recent and now - u.recent[0] > USER_WINDOW:
            u.recent.popleft()
