"""Deadlines for reading request bodies: one sweeping timer per gateway, not one per request.

A slow body holds a worker, so the gateway cuts it off after ``body_timeout``. Under
asyncio, ``asyncio.timeout`` per request cost about 30,000 instructions (a timer handle, its
heap entry, an async context manager): about a tenth of all the gateway does. Here a read in
progress is one dict entry; one timer, armed only while reads are in progress, wakes every
``tick`` seconds and cancels the tasks whose reads are overdue, as ``asyncio.timeout``
would (the same ``cancel``/``uncancel`` accounting, so a cancellation from elsewhere is
never swallowed). The deadline is kept to within one tick (a quarter of a second at most).

Other event loops (trio) and Pythons without ``Task.uncancel`` (3.10) get anyio's
``fail_after``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import anyio

__all__ = ["BodyDeadlines", "SlowBody"]


class SlowBody(Exception):
    """The body did not arrive within the deadline."""


class BodyDeadlines:
    """Times the body reads of one gateway (see the module docstring)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(0.25, seconds / 4)
        self._reading: dict[asyncio.Task[Any], tuple[float, int]] = {}  # due, cancelling
        self._expired: dict[asyncio.Task[Any], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def timed(self) -> _Timed | _AnyioTimed:
        """``with deadlines.timed():`` (or ``async with``) around a read, inside the task
        that reads; raises :class:`SlowBody`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio)
            return _AnyioTimed(self.seconds)
        task = asyncio.current_task(loop)
        if task is None or not hasattr(task, "uncancel"):
            return _AnyioTimed(self.seconds)
        if self._loop is not loop:
            if self._reading:  # reads of another loop are being timed: keep them apart
                return _AnyioTimed(self.seconds)
            self._loop, self._timer = loop, None
        return _Timed(self, task, loop)

    def _begin(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        counts: Any = task  # cancelling/uncancel: 3.11+, checked in timed()
        self._reading[task] = (loop.time() + self.seconds, counts.cancelling())
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep)

    def _end(self, task: asyncio.Task[Any], cancelled: bool) -> bool:
        """The read is over; True if it was cut off by this deadline (and nothing else
        wants the task cancelled)."""
        self._reading.pop(task, None)
        entry = self._expired.pop(task, None)
        if entry is None or not cancelled:
            return False
        counts: Any = task
        return bool(counts.uncancel() <= entry)

    def _sweep(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        for task, (due, cancelling) in list(self._reading.items()):
            if due <= now:
                del self._reading[task]
                self._expired[task] = cancelling
                task.cancel()  # lands in the read: the task is waiting there
        self._timer = loop.call_later(self.tick, self._sweep) if self._reading else None


class _Timed:
    __slots__ = ("_deadlines", "_loop", "_task")

    def __init__(
        self, deadlines: BodyDeadlines, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._deadlines = deadlines
        self._task = task
        self._loop = loop

    def __enter__(self) -> None:
        self._deadlines._begin(self._task, self._loop)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        cancelled = kind is not None and issubclass(kind, asyncio.CancelledError)
        if self._deadlines._end(self._task, cancelled):
            raise SlowBody from None

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.__exit__(kind, exc, trace)


class _AnyioTimed:
    __slots__ = ("_scope", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        self._scope = anyio.fail_after(self._seconds)
        self._scope.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._scope.__exit__(kind, exc, trace)
        except TimeoutError:
            raise SlowBody from None

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.__exit__(kind, exc, trace)
