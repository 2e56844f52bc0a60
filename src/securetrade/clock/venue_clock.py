"""Estimate the venue's clock so that timestamps are fresh in the venue's time, not ours."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .._checks import function, number, whole

__all__ = ["ClockAlarm", "VenueClock"]

log = logging.getLogger("securetrade.clock")


@dataclass(frozen=True, slots=True)
class ClockAlarm:
    """The measured offset to the venue crossed a threshold.

    ``reason`` is ``"offset"`` when the local clock is further than ``threshold_ms`` from
    the venue's (its NTP is broken: nonces and logs made from it are off too), or
    ``"drift"`` when the offset moved by more than ``threshold_ms`` since the previous sync
    (the clock was stepped or drifts fast: requests signed between syncs carry timestamps
    that far off, and a short validity window will refuse them).
    """

    reason: str
    offset_ms: float
    previous_ms: float | None
    threshold_ms: float


class VenueClock:
    """Local monotonic time plus a measured offset to the venue.

    Each sample is taken as ``server_ms - midpoint(sent, received)``; the offset is the
    median of the last ``window`` samples, so one slow round trip does not skew it. Wall
    time is read once and then advanced by the monotonic clock, so a local NTP step does
    not move venue time.

    After each batch of samples, :meth:`check` compares the offset with ``max_offset_ms``
    and with the previous batch (``max_drift_ms``); a crossing is logged as a warning on
    the ``securetrade.clock`` logger and passed to ``on_alarm``.

    A measured offset is trusted for ``resync_every`` seconds (``None``: until a venue
    refuses a timestamp): after that :attr:`synced` turns False and the next signed request
    measures again first, so a venue clock that drifts is followed before its window
    refuses our timestamps.
    """

    def __init__(
        self,
        *,
        window: int = 5,
        max_offset_ms: float = 1000.0,
        max_drift_ms: float = 500.0,
        on_alarm: Callable[[ClockAlarm], None] | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        resync_every: float | None = 300.0,
    ) -> None:
        number("max_offset_ms", max_offset_ms, above=0)
        number("max_drift_ms", max_drift_ms, above=0)
        if resync_every is not None:
            number("resync_every (seconds, or None)", resync_every, above=0)
        whole("window", window, 1, 10_000)
        function("on_alarm", on_alarm, optional=True)
        function("wall", wall)
        function("monotonic", monotonic)
        self.resync_every = resync_every
        self._fresh_until = float("inf")  # monotonic seconds: the offset is trusted until
        self._monotonic = monotonic
        self._base_ms = wall() * 1000.0 - monotonic() * 1000.0
        self._samples: deque[float] = deque(maxlen=window)
        self._offset_ms = 0.0
        self._lock = threading.Lock()
        self.max_offset_ms = max_offset_ms
        self.max_drift_ms = max_drift_ms
        self.on_alarm = on_alarm
        self._checked_ms: float | None = None  # the offset at the previous check
        self._beyond = False  # the offset is past max_offset_ms (alarm once per crossing)

    @property
    def offset_ms(self) -> float:
        """Venue time minus local time, in milliseconds."""
        return self._offset_ms

    @property
    def synced(self) -> bool:
        """True while there is a measured offset younger than ``resync_every``."""
        return bool(self._samples) and self._monotonic() < self._fresh_until

    def local_ms(self) -> float:
        """This host's wall time in ms, advanced by the monotonic clock so that a system clock step
        does not move it."""
        return self._base_ms + self._monotonic() * 1000.0

    def now_ms(self) -> int:
        """The venue's current time in milliseconds, as best we know it."""
        return int(self._base_ms + self._monotonic() * 1000.0 + self._offset_ms)

    def add_sample(self, sent_local_ms: float, received_local_ms: float, server_ms: int) -> None:
        """Record one ``/time`` round trip measured with :meth:`local_ms`."""
        import statistics  # loaded at the first sync, not at import

        for name, value in (
            ("sent_local_ms", sent_local_ms),
            ("received_local_ms", received_local_ms),
            ("server_ms", server_ms),
        ):
            number(name, value, least=0)
        midpoint = (sent_local_ms + received_local_ms) / 2.0
        with self._lock:
            if self.resync_every is not None:
                self._fresh_until = self._monotonic() + self.resync_every
            self._samples.append(server_ms - midpoint)
            self._offset_ms = statistics.median(self._samples)

    def reset(self) -> None:
        """Forget the samples (after the venue reports a timestamp error)."""
        with self._lock:
            self._samples.clear()

    def check(self) -> list[ClockAlarm]:
        """Raise the alarms due for the current offset (call once per batch of samples)."""
        with self._lock:
            if not self._samples:
                return []
            offset, previous = self._offset_ms, self._checked_ms
            self._checked_ms = offset
            alarms = []
            beyond = abs(offset) > self.max_offset_ms
            if beyond and not self._beyond:
                alarms.append(ClockAlarm("offset", offset, previous, self.max_offset_ms))
            self._beyond = beyond
            if previous is not None and abs(offset - previous) > self.max_drift_ms:
                alarms.append(ClockAlarm("drift", offset, previous, self.max_drift_ms))
        for alarm in alarms:
            log.warning(
                "venue clock alarm (%s): offset %.1f ms, previous %s, threshold %.0f ms",
                alarm.reason,
                alarm.offset_ms,
                "none" if alarm.previous_ms is None else f"{alarm.previous_ms:.1f} ms",
                alarm.threshold_ms,
            )
            if self.on_alarm is not None:
                self.on_alarm(alarm)
        return alarms
