"""The in-process backend: a log per window under one lock. Per process only.

Thread-safe; the lock is held for a few list operations and never across a wait, so one
backend serves threads and asyncio tasks alike (a reservation never awaits). Processes that
share an IP or key need :class:`~securetrade.ratelimit.sqlite.SQLiteBackend` or
:class:`~securetrade.ratelimit.redis.RedisBackend` instead.

Units admitted in flight are a count per budget (:class:`_Log`), counted in every window
over it, until they land: then they join each window's log, dated by the landing. Memory
dies with the process, so nothing here needs the deadline the shared backends keep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .._checks import function
from .._checks import seconds as checked_seconds
from ..errors import InvalidRequest
from .backend import (
    Backend,
    Draw,
    Reports,
    checked_buckets,
    checked_draws,
    checked_pause,
    checked_reports,
)

__all__ = ["MemoryBackend"]


_TICK = 0.001  # admissions this close together share one log entry
_NEVER = float("-inf")


class _Log:
    """One budget (a kind of cost in one scope): every window over it, and the units
    admitted in flight that every one of those windows counts until they land."""

    __slots__ = ("flying", "windows")

    def __init__(self) -> None:
        self.flying = 0
        self.windows: list[_Window] = []

    def add(self, now: float, cost: int) -> None:
        for window in self.windows:
            window.expire(now)  # windows no plan draws on any more stay small too
            window.add(now, cost)


class _Window:
    """The log of one window: ``[last, weight]`` entries, oldest first.

    Admissions less than a millisecond after an entry's first one join that entry, which
    is dated by its latest: every unit stays in the window at least as long as an exact
    log would keep it (so no window ever admits more), at most 1 ms longer. The log then
    holds at most one entry per millisecond of the window, and a burst allocates nothing.
    Units the venue reported for a window of ``span`` seconds are ``[when, weight, span]``:
    they count only in windows at least that long.
    """

    __slots__ = ("entries", "log", "opened", "seconds", "total")

    def __init__(self, seconds: float, log: _Log) -> None:
        self.seconds = seconds
        self.log = log
        self.entries: deque[list[float]] = deque()
        self.total = 0
        self.opened = _NEVER  # when the newest entry's first admission was

    def add(self, now: float, cost: int) -> None:
        entries = self.entries
        if entries and now - self.opened < _TICK:
            newest = entries[-1]
            newest[0] = now
            newest[1] += cost
        else:
            entries.append([now, cost])
            self.opened = now
        self.total += cost

    def report(self, now: float, cost: int, span: float) -> None:
        self.entries.append([now, cost, span])
        self.opened = _NEVER  # nothing joins it: it must keep its span
        self.total += cost

    def expire(self, now: float) -> None:
        # Same arithmetic as delay(): an entry leaves exactly when stamp + seconds <= now.
        seconds = self.seconds
        entries = self.entries
        while entries and entries[0][0] + seconds <= now:
            self.total -= int(entries.popleft()[1])

    def delay(self, now: float, excess: int) -> float:
        """Seconds until ``excess`` units have left the window.

        Units in flight leave one window length after they land, which is now at the
        earliest: when the landed entries cannot free enough, that is the wait.
        """
        freed = 0.0
        for entry in self.entries:
            freed += entry[1]
            if freed >= excess:
                return entry[0] + self.seconds - now
        return self.seconds


# The pause cell shared by every plan under one pause key, (window, cost, ceiling, log) per
# draw, the backend's lock and clock, the draw again when it is the only one, the answer
# an admission gets (made once), and (log, cost) per budget drawn on: all that the hot
# path needs, without an attribute lookup or a len().
_Draws = tuple[tuple[_Window, int, int, _Log], ...]


class _Logs(tuple[tuple[_Log, int], ...]):
    """An admission: (log, cost) per budget drawn on, made once per plan. A type of its
    own, so that the limiter tells one from any other value with a single type test."""

    __slots__ = ()

    def __new__(cls, iterable: Any = ()) -> _Logs:
        """Made by :meth:`MemoryBackend.compile` only (it is reachable as the backend's
        ``admission_type``): anything but its (log, cost) pairs is refused."""
        try:
            pairs = tuple(iterable)
        except Exception:
            pairs = None
        if pairs is None or not all(
            type(p) is tuple and len(p) == 2 and type(p[0]) is _Log and type(p[1]) is int
            for p in pairs
        ):
            raise InvalidRequest("an admission is made by MemoryBackend.compile(), not by hand")
        return super().__new__(cls, pairs)


_Plan = tuple[
    list[float],
    _Draws,
    threading.Lock,
    Callable[[], float],
    "tuple[_Window, int, int, _Log] | None",
    "tuple[float, _Logs]",
    _Logs,
]


def _not_a_plan() -> InvalidRequest:
    return InvalidRequest("plan must be what this backend's compile() returned")


class MemoryBackend(Backend):
    """Windows in this process's memory, dated by ``clock`` (monotonic by default)."""

    admission_type = _Logs

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = function("clock", clock)
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        self._windows: dict[tuple[str, float], _Window] = {}
        self._pauses: dict[str, list[float]] = {}

    def _window(self, bucket: str, seconds: float, now: float) -> _Window:
        """The ``seconds`` window over ``bucket``; a new one starts with what the log's
        longest window holds for it (called under the lock)."""
        window = self._windows.get((bucket, seconds))
        if window is None:
            log = self._logs.get(bucket)
            if log is None:
                log = self._logs[bucket] = _Log()
            window = _Window(seconds, log)
            if log.windows:
                source = max(log.windows, key=lambda w: w.seconds)
                for entry in source.entries:
                    if entry[0] + seconds > now and (len(entry) < 3 or entry[2] <= seconds):
                        window.entries.append(list(entry))
                        window.total += int(entry[1])
            log.windows.append(window)
            self._windows[(bucket, seconds)] = window
        return window

    def compile(self, pause_key: str, draws: Sequence[Draw], *, flight: float = 60.0) -> _Plan:
        pause_key = checked_pause(pause_key)[0]
        draws = checked_draws(draws)
        checked_seconds("flight", flight, above=0)
        with self._lock:
            now = self._clock()
            pause = self._pauses.setdefault(pause_key, [0.0])
            compiled = []
            costs: dict[_Log, int] = {}
            for draw in draws:
                window = self._window(draw.bucket, draw.seconds, now)
                compiled.append((window, draw.cost, draw.ceiling, window.log))
                costs[window.log] = max(costs.get(window.log, 0), draw.cost)
            logs = _Logs(costs.items())
            single = compiled[0] if len(compiled) == 1 else None
            return pause, tuple(compiled), self._lock, self._clock, single, (0.0, logs), logs

    def acquire(self, plan: _Plan) -> float:
        # acquire_at() with expire() inlined, a short cut for single-window calls, and no
        # time returned. Both must reach the same decision;
        # test_memory_fast_path_decides_like_acquire_at checks it. The lock is taken with
        # acquire()/release() rather than "with": 120 ns less on CPython 3.11.
        try:
            pause, draws, lock, clock, single, _, logs = plan
        except (TypeError, ValueError):
            raise _not_a_plan() from None
        if lock is not self._lock:
            raise _not_a_plan()
        lock.acquire()
        try:
            now = clock()  # read under the lock: an entry is dated when admitted
            if now < pause[0]:
                return pause[0] - now
            if single is not None:
                window, cost, ceiling, log = single
                entries = window.entries
                if entries:
                    seconds = window.seconds
                    while entries and entries[0][0] + seconds <= now:  # as in expire()
                        window.total -= int(entries.popleft()[1])
                used = window.total + log.flying + cost
                if used > ceiling:
                    return window.delay(now, used - ceiling)
                if len(log.windows) > 1:
                    log.add(now, cost)
                    return 0.0
                if entries and now - window.opened < _TICK:  # as in add()
                    newest = entries[-1]
                    newest[0] = now
                    newest[1] += cost
                else:
                    entries.append([now, cost])
                    window.opened = now
                window.total += cost
                return 0.0
            wait = 0.0
            for window, cost, ceiling, log in draws:
                entries = window.entries
                seconds = window.seconds
                while entries and entries[0][0] + seconds <= now:
                    window.total -= int(entries.popleft()[1])
                used = window.total + log.flying + cost
                if used > ceiling:
                    delay = window.delay(now, used - ceiling)
                    if delay > wait:
                        wait = delay
            if wait > 0.0:
                return wait
            for log, cost in logs:
                log.add(now, cost)
            return 0.0
        finally:
            lock.release()

    def acquire_at(self, plan: _Plan) -> tuple[float, float]:
        try:
            pause, draws, lock, _, _, _, logs = plan
        except (TypeError, ValueError):
            raise _not_a_plan() from None
        if lock is not self._lock:
            raise _not_a_plan()
        with self._lock:
            now = self._clock()
            if now < pause[0]:
                return pause[0] - now, now
            wait = 0.0
            for window, cost, ceiling, log in draws:
                window.expire(now)
                used = window.total + log.flying + cost
                if used > ceiling:
                    wait = max(wait, window.delay(now, used - ceiling))
            if wait > 0.0:
                return wait, now
            for log, cost in logs:
                log.add(now, cost)
            return 0.0, now

    def admit(self, plan: _Plan) -> tuple[float, _Logs | None]:
        # The hot path of every request (<= 1 µs uncontended): acquire() that counts the
        # units in flight instead of logging them, and answers with a tuple made once.
        try:
            pause, draws, lock, clock, single, granted, logs = plan
        except (TypeError, ValueError):
            raise _not_a_plan() from None
        if lock is not self._lock:
            raise _not_a_plan()
        lock.acquire()
        try:
            now = clock()
            if now < pause[0]:
                return pause[0] - now, None
            if single is not None:
                window, cost, ceiling, log = single
                entries = window.entries
                if entries:
                    seconds = window.seconds
                    while entries and entries[0][0] + seconds <= now:  # as in expire()
                        window.total -= int(entries.popleft()[1])
                used = window.total + log.flying + cost
                if used > ceiling:
                    return window.delay(now, used - ceiling), None
                log.flying += cost
                return granted
            wait = 0.0
            for window, cost, ceiling, log in draws:
                entries = window.entries
                seconds = window.seconds
                while entries and entries[0][0] + seconds <= now:
                    window.total -= int(entries.popleft()[1])
                used = window.total + log.flying + cost
                if used > ceiling:
                    delay = window.delay(now, used - ceiling)
                    if delay > wait:
                        wait = delay
            if wait > 0.0:
                return wait, None
            for log, cost in logs:
                log.flying += cost
            return granted
        finally:
            lock.release()

    def land(self, admission: _Logs, reports: Sequence[tuple[str, float, int]] = ()) -> None:
        # On every request too: _Log.add() with expire() and add() inlined.
        if type(admission) is not _Logs:
            raise InvalidRequest("admission must be what this backend's admit() returned")
        kind = type(reports)
        if kind is not Reports and (kind is not tuple or reports):  # the limiter's, or ()
            checked_reports(reports)
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            for log, cost in admission:
                log.flying -= cost
                for window in log.windows:
                    entries = window.entries
                    seconds = window.seconds
                    while entries and entries[0][0] + seconds <= now:
                        window.total -= int(entries.popleft()[1])
                    if entries and now - window.opened < _TICK:
                        newest = entries[-1]
                        newest[0] = now
                        newest[1] += cost
                    else:
                        entries.append([now, cost])
                        window.opened = now
                    window.total += cost
            if reports:
                self._reconcile(now, reports)
        finally:
            lock.release()

    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        checked_reports(reports)
        with self._lock:
            self._reconcile(self._clock(), reports)

    def _reconcile(self, now: float, reports: Sequence[tuple[str, float, int]]) -> None:
        for bucket, seconds, reported in reports:
            window = self._window(bucket, seconds, now)
            window.expire(now)
            missing = reported - window.total  # what landed: the venue may not have the rest
            if missing > 0:
                for other in window.log.windows:
                    if other.seconds >= seconds:  # they lie somewhere in that window
                        other.expire(now)
                        other.report(now, missing, seconds)

    def pause(self, key: str, seconds: float) -> None:
        key, seconds = checked_pause(key, seconds)
        with self._lock:
            cell = self._pauses.setdefault(key, [0.0])
            cell[0] = max(cell[0], self._clock() + seconds)

    def paused_for(self, key: str) -> float:
        key = checked_pause(key)[0]
        with self._lock:
            cell = self._pauses.get(key)
            return 0.0 if cell is None else max(0.0, cell[0] - self._clock())

    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        checked_buckets(buckets)
        with self._lock:
            now = self._clock()
            result = []
            for bucket, seconds in buckets:
                window = self._window(bucket, seconds, now)
                window.expire(now)
                result.append(window.total + window.log.flying)
            return result
