"""Timing helpers shared by the rows: interleaved timeit repeats and percentiles.

Sides are timed in alternation (A B C A B C ...) so that drift on a shared VM hits every
side alike; each side's figure is the median over its repeats.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Effort", "interleaved_us", "percentile"]


@dataclass(frozen=True, slots=True)
class Effort:
    """How much to measure: the full run, ``--quick`` or ``--smoke``."""

    label: str
    repeats: int  # timeit repeats per side
    repeat_seconds: float  # minimum length of one repeat
    sync_orders: int  # orders per side, sync row
    warmup_orders: int
    async_rounds: int  # timed rounds per side, async row
    async_per_task: int  # orders each of the 50 tasks places in one round
    process_runs: int  # interpreter launches per side, import row
    memory_runs: int
    journal_intents: int


FULL = Effort("full", 7, 0.2, 300, 20, 9, 4, 15, 5, 300)
QUICK = Effort("quick", 5, 0.05, 100, 10, 5, 2, 5, 3, 100)
SMOKE = Effort("smoke", 3, 0.01, 20, 3, 1, 1, 2, 1, 20)


def interleaved_us(functions: Sequence[Callable[[], object]], effort: Effort) -> list[float]:
    """Median µs per call of each function, repeats taken in turn across the functions."""
    timers = [timeit.Timer(f) for f in functions]
    numbers = []
    for timer in timers:
        timer.timeit(number=10)  # warm caches and lazy imports
        number, _ = _autorange(timer, effort.repeat_seconds)
        numbers.append(number)
    samples: list[list[float]] = [[] for _ in timers]
    for _ in range(effort.repeats):
        for index, timer in enumerate(timers):
            seconds = timer.timeit(number=numbers[index])
            samples[index].append(seconds / numbers[index] * 1e6)
    return [statistics.median(s) for s in samples]


def _autorange(timer: timeit.Timer, seconds: float) -> tuple[int, float]:
    """Like :meth:`timeit.Timer.autorange`, with a chosen minimum duration."""
    number = 1
    while True:
        for factor in (1, 2, 5):
            count = number * factor
            taken = timer.timeit(number=count)
            if taken >= seconds:
                return count, taken
        number *= 10


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: ``fraction`` 0.5 is the median, 0.99 the p99."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]
