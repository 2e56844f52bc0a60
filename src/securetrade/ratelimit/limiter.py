"""Exact sliding-window limits with server feedback.

Every configured limit is an exact log of (time, cost) entries: no window of ``seconds``
ever holds more than the limit less the safety margin, at any boundary, which also makes it
correct for a venue's clock-aligned fixed windows. A call draws on several limits at once
(a Binance order weighs on REQUEST_WEIGHT per IP and on ORDERS per account, per 10 s and
per day) and is admitted only when all have room; the wait is computed from the log, never
polled.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` units of ``kind`` in any ``seconds``-long window.

    ``kind`` is what endpoint costs name (``"REQUEST_WEIGHT"``, ``"ORDERS"``); several
    limits may count the same kind over different windows. ``header`` is the response
    header in which the venue reports its own count for this window, if it does.
    """

    kind: str
    seconds: float
    limit: int
    header: str | None = None


class _Window:
    __slots__ = ("capacity", "entries", "kind", "seconds", "spec", "total")

    def __init__(self, spec: RateLimit, margin: float) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.seconds = spec.seconds
        self.capacity = max(1, math.floor(spec.limit * (1.0 - margin)))
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, now: float) -> None:
        # Same arithmetic as delay(): an entry leaves exactly when stamp + seconds <= now.
        seconds = self.seconds
        entries = self.entries
        while entries and entries[0][0] + seconds <= now:
            self.total -= entries.popleft()[1]

    def delay(self, now: float, cost: int) -> float:
        """Seconds until ``cost`` more fits; 0.0 if it fits now."""
        excess = self.total + cost - self.capacity
        if excess <= 0:
            return 0.0
        freed = 0
        for stamp, weight in self.entries:
            freed += weight
            if freed >= excess:
                return stamp + self.seconds - now
        return self.seconds  # cost alone exceeds capacity: cannot be admitted


class RateLimiter:
    """Admits calls against every limit they draw on; learns from the venue's answers.

    Thread-safe; the lock is never held across a wait, so the same limiter serves
    threads and asyncio tasks. ``margin`` keeps that share of every limit unused, for
    traffic the venue counts but we cannot see. The state is per process: processes that
    share an IP or key need a shared backend.
    """

    def __init__(
        self,
        limits: Iterable[RateLimit],
        *,
        margin: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        default_pause: float = 60.0,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError("margin must be in [0, 1)")
        self._margin = margin
        self._windows = [_Window(spec, margin) for spec in limits]
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._default_pause = default_pause

    @property
    def limits(self) -> list[RateLimit]:
        return [w.spec for w in self._windows]

    def configure(self, limits: Iterable[RateLimit]) -> None:
        """Replace the limits (with those the venue publishes), keeping what was spent."""
        with self._lock:
            now = self._clock()  # read under the lock: an entry is dated when admitted
            fresh = [_Window(spec, self._margin) for spec in limits]
            for window in fresh:
                source = max(
                    (w for w in self._windows if w.kind == window.kind),
                    key=lambda w: w.seconds,
                    default=None,
                )
                if source is None:
                    continue
                for stamp, weight in source.entries:
                    if stamp + window.seconds > now:
                        window.entries.append((stamp, weight))
                        window.total += weight
            self._windows = fresh

    def reserve(self, costs: Mapping[str, int]) -> float:
        """Take ``costs`` if every limit has room and return 0.0; else return the wait.

        A positive result reserves nothing: wait that long and call again.
        """
        with self._lock:
            now = self._clock()  # read under the lock: an entry is dated when admitted
            if now < self._paused_until:
                return self._paused_until - now
            wait = 0.0
            for window in self._windows:
                cost = costs.get(window.kind)
                if cost:
                    window.expire(now)
                    delay = window.delay(now, cost)
                    if delay > wait:
                        wait = delay
            if wait > 0.0:
                return wait
            for window in self._windows:
                cost = costs.get(window.kind)
                if cost:
                    window.entries.append((now, cost))
                    window.total += cost
            return 0.0

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Reconcile with the venue's reported usage, and pause on 429 or 418."""
        with self._lock:
            now = self._clock()  # read under the lock: an entry is dated when admitted
            for window in self._windows:
                header = window.spec.header
                if header is None:
                    continue
                reported = headers.get(header)
                if reported is None or not reported.isdigit():
                    continue
                window.expire(now)
                missing = int(reported) - window.total
                if missing > 0:
                    window.entries.append((now, missing))
                    window.total += missing
            if status in (418, 429):
                retry_after = _parse_retry_after(headers.get("retry-after"))
                pause = retry_after if retry_after is not None else self._default_pause
                self._paused_until = max(self._paused_until, now + pause)

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause the venue imposed (429/418), else 0."""
        return max(0.0, self._paused_until - self._clock())

    def usage(self) -> list[tuple[RateLimit, int, int]]:
        """``(limit, used, usable capacity)`` for each window right now."""
        with self._lock:
            now = self._clock()  # read under the lock: an entry is dated when admitted
            result = []
            for window in self._windows:
                window.expire(now)
                result.append((window.spec, window.total, window.capacity))
            return result


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
