"""The nonce contract and the in-process source.

A nonce is an unsigned integer that must grow with every signed request of one API key
(Kraken and other counter-based venues). Each source hands out ``max(last + 1, now)``,
where ``now`` is the wall clock in the source's :class:`Resolution`: nonces track the clock
when requests are sparse and fall back to counting when they are dense or when the clock
steps backwards, so they never repeat and never go down.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .._checks import Choice, is_text, whole
from ..errors import InvalidRequest

__all__ = ["MemoryNonceSource", "NonceSource", "Resolution", "stream_name"]

# Lua and JSON numbers are doubles: integers are exact only below 2**53. Microseconds stay
# below it until the year 2255, nanoseconds are past it already, so they are not offered.
MAX_NONCE = 2**53 - 1


class Resolution(Choice):
    """The unit of a clock-based nonce. A venue key, once used at one, may be stuck at it.

    Kraken compares each nonce with the highest it has seen for the key, forever: after a
    single microsecond nonce (~1.7e15) every millisecond nonce (~1.7e12) is "too small".
    """

    MILLISECONDS = 1_000
    MICROSECONDS = 1_000_000

    def now(self, time_ns: Callable[[], int] = time.time_ns) -> int:
        """The wall clock in this unit."""
        return time_ns() // (1_000_000_000 // self.value)


@runtime_checkable
class NonceSource(Protocol):
    """Hands out strictly increasing nonces, one sequence per API key id.

    Every backend keeps the highest nonce it issued (the high-water mark) and never issues
    one at or below it again, including after a restart for the persistent backends.
    """

    resolution: Resolution

    def next(self, key_id: str) -> int:
        """The next nonce for ``key_id``: larger than every nonce issued for it before."""
        ...

    def advance_to(self, key_id: str, floor: int) -> None:
        """Make every later nonce of ``key_id`` larger than ``floor``.

        Use it when the key was driven by another tool, possibly at a finer resolution:
        pass the last nonce that tool sent (or the venue reported) and counting resumes
        above it.
        """
        ...


def stream_name(key_id: str) -> str:
    """A stable name for the key's sequence that does not spell out the key id."""
    if not is_text(key_id):  # an int or None would name a sequence by its text
        raise InvalidRequest("a nonce sequence needs a key id: non-empty printable text")
    return hashlib.sha256(key_id.encode("utf-8")).hexdigest()[:32]


def check_floor(floor: int) -> int:
    """``floor`` as a plain int: what a store writes is never the caller's subclass (whose
    own str or repr the Redis client or SQLite would call)."""
    try:
        return int.__int__(whole("floor", floor, 0, MAX_NONCE - 1))
    except InvalidRequest:
        raise InvalidRequest(
            f"a nonce floor must be an integer in [0, {MAX_NONCE}): the highest nonce the "
            "venue has seen"
        ) from None


def following(high_water: int, now: int) -> int:
    """The nonce after ``high_water`` at clock reading ``now``."""
    value = max(high_water + 1, now)
    if value > MAX_NONCE:
        raise InvalidRequest("nonce space exhausted (above 2**53 - 1)")
    return value


class MemoryNonceSource:
    """Thread-safe, strictly increasing nonces within one process.

    Enough for one bot process per key. Several processes or hosts on one key need
    :class:`~securetrade.nonce.FileNonceSource` or :class:`~securetrade.nonce.RedisNonceSource`,
    because two clocks can hand out the same value.
    """

    def __init__(
        self,
        resolution: Resolution = Resolution.MILLISECONDS,
        *,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.resolution = resolution
        self._time_ns = time_ns
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, key_id: str) -> int:
        name = stream_name(key_id)
        now = self.resolution.now(self._time_ns)
        with self._lock:
            value = following(self._last.get(name, 0), now)
            self._last[name] = value
        return value

    def advance_to(self, key_id: str, floor: int) -> None:
        name = stream_name(key_id)
        floor = check_floor(floor)
        with self._lock:
            self._last[name] = max(self._last.get(name, 0), floor)

    def __repr__(self) -> str:
        return f"MemoryNonceSource({self.resolution.name.lower()})"
