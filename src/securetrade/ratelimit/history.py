"""A bounded history of what this limiter granted, for charts of window occupancy over time.

Each grant costs one ``deque.append`` of ``(monotonic time, id(plan))`` on the admission
path (the plan is the compiled, cached description of a call's costs, kept alive by
:meth:`History.describe`, so its id names it for good); everything else happens when
someone asks for a chart. A grant holds a number, not the plan: a tuple of a float and
an int is no container the garbage collector follows (it stops tracking it at its first
collection), so the log's 100,000 grants neither age into the old generation, one more
per order, nor lengthen every full collection. The deque has a fixed length, so memory stays
bounded however long the process runs: at :data:`SIZE` grants the oldest fall off.

The occupancy it rebuilds is this process's own grants, dated at admission. Other
processes sharing a SQLite or Redis backend, and the venue's own count, are in
:meth:`~securetrade.ratelimit.RateLimiter.usage` (the shared value now), not here.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .model import RateLimit

__all__ = ["SIZE", "History", "Series"]

#: Grants kept; at ~20 requests a second that is well over the last hour.
SIZE = 100_000

_Draws = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Series:
    """One window of one scope over time: ``used[i]`` units at ``seconds_ago[i]``.

    ``capacity`` is the usable part of ``limit.limit`` (the limiter's margin kept back)."""

    limit: RateLimit
    scope_id: str
    capacity: int
    seconds_ago: tuple[float, ...]
    used: tuple[int, ...]

    @property
    def label(self) -> str:
        """A short name for a legend: kind, window length and scope."""
        return (
            f"{self.limit.kind} /{self.limit.seconds:g}s {self.limit.scope.value}:{self.scope_id}"
        )

    @property
    def peak(self) -> int:
        """The highest occupancy in the series."""
        return max(self.used, default=0)


class History:
    """Grants as ``(monotonic time, id(plan))``, at most :data:`SIZE` of them."""

    __slots__ = ("_draws", "_log", "add")

    def __init__(self, size: int = SIZE) -> None:
        self._log: deque[tuple[float, int]] = deque(maxlen=size)
        # By id(plan); the plan is kept too, so that its id is never another's.
        self._draws: dict[int, tuple[Any, _Draws]] = {}
        #: Record one grant: ``add((time.monotonic(), id(plan)))``, the plan described.
        self.add: Callable[[tuple[float, int]], None] = self._log.append

    def describe(self, plan: Any, draws: Iterable[tuple[str, int]]) -> None:
        """What a grant of ``plan`` draws on: (log name, cost) per kind and scope. Limits
        over the same kind and scope share one log whatever their window length, so a
        history outlives the venue's published limits replacing the built-in ones."""
        self._draws[id(plan)] = (plan, tuple(draws))

    def grants(self) -> list[tuple[float, int]]:
        """A snapshot of the log (another thread may be appending)."""
        for _ in range(10):
            try:
                return list(self._log)
            except RuntimeError:  # mutated while copied: try again
                continue
        return []

    def series(
        self,
        windows: Iterable[tuple[RateLimit, str, str]],
        *,
        now: float,
        seconds: float,
        points: int,
        capacity: Callable[[RateLimit], int],
    ) -> list[Series]:
        """Occupancy of each of ``windows`` (limit, scope id, log name) at ``points``
        instants over the last ``seconds``."""
        logs: dict[str, tuple[list[float], list[int]]] = {}
        for when, plan_id in self.grants():
            described = self._draws.get(plan_id)
            if described is None:
                continue
            for name, cost in described[1]:
                times, costs = logs.setdefault(name, ([], []))
                times.append(when)
                costs.append(cost)
        step = seconds / max(1, points - 1)
        instants = [now - seconds + i * step for i in range(points)]
        ago = tuple(round(now - at, 3) for at in instants)
        result = []
        for limit, scope_id, name in windows:
            times, costs = logs.get(name, ([], []))
            totals = [0]
            for cost in costs:
                totals.append(totals[-1] + cost)
            used = tuple(
                totals[bisect.bisect_right(times, at)]
                - totals[bisect.bisect_right(times, at - limit.seconds)]
                for at in instants
            )
            result.append(Series(limit, scope_id, capacity(limit), ago, used))
        result.sort(key=lambda s: (s.limit.kind, s.limit.seconds, s.scope_id))
        return result
