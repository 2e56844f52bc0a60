"""A circuit breaker per follower, for trouble that is neither its key nor a rate limit.

A follower whose venue account keeps failing (5xx answers, connections refused, answers
lost) costs every event a slot, retries and time, and each of its attempts is another
request on the shared egress. After ``failures`` failures in a row its breaker *opens*:
the follower's copies are skipped with the reason ``circuit_open`` (recorded; the
reconciler catches the follower up later) and nothing is sent for it. After
``cooldown_s`` the breaker lets one attempt through (*half-open*): an answer closes it,
another failure opens it again for twice as long (up to ``max_cooldown_s``).

Authentication failures quarantine the follower instead (a person must fix the key), and
rate limits are the limiter's business (it waits a 429 or 418 out for the whole egress),
so neither counts here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .._checks import whole
from ..errors import InvalidRequest

__all__ = ["Breaker", "BreakerSettings"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a follower's breaker opens (``failures`` in a row) and for how long."""

    failures: int = 3
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    clock: Callable[[], float] = time.monotonic  # seconds; a simulation may pass its own

    def __post_init__(self) -> None:
        whole("BreakerSettings.failures", self.failures, 1)
        for name in ("cooldown_s", "max_cooldown_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidRequest(f"BreakerSettings.{name} must be a number of seconds > 0")
        if self.max_cooldown_s < self.cooldown_s:
            raise InvalidRequest("BreakerSettings.max_cooldown_s must be >= cooldown_s")
        if not callable(self.clock):
            raise InvalidRequest("BreakerSettings.clock must be a function returning seconds")


class Breaker:
    """One follower's breaker: ``closed``, ``open`` or ``half_open``."""

    __slots__ = ("_clock", "_cooldown", "_settings", "_until", "failures", "state")

    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._clock = settings.clock
        self._cooldown = settings.cooldown_s
        self._until = 0.0
        self.failures = 0  # in a row
        self.state = "closed"

    def allow(self) -> bool:
        """Whether an attempt may go out now (an open breaker past its cooldown lets one
        probe through and turns half-open; it lets no other through until that answers,
        or until a cooldown has passed without an answer: a probe lost is probed again)."""
        if self.state == "closed":
            return True
        now = self._clock()
        if now >= self._until:
            self.state = "half_open"
            self._until = now + self._cooldown  # the probe's lease
            return True
        return False

    def succeeded(self) -> None:
        self.state = "closed"
        self.failures = 0
        self._cooldown = self._settings.cooldown_s

    def failed(self) -> bool:
        """Count a failure; True when it opened the breaker."""
        self.failures += 1
        if self.state == "half_open":
            self._cooldown = min(self._cooldown * 2, self._settings.max_cooldown_s)
            return self._open()
        if self.state == "closed" and self.failures >= self._settings.failures:
            return self._open()
        return False

    def _open(self) -> bool:
        self.state = "open"
        self._until = self._clock() + self._cooldown
        return True

    def __repr__(self) -> str:
        return f"Breaker({self.state}, failures={self.failures})"
