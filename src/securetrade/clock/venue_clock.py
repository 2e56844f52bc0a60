"""Estimate the venue's clock so that timestamps are fresh in the venue's time, not ours."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["VenueClock"]


class VenueClock:
    """Local monotonic time plus a measured offset to the venue.

    Each sample is taken as ``server_ms - midpoint(sent, received)``; the offset is the
    median of the last ``window`` samples, so one slow round trip does not skew it. Wall
    time is read once and then advanced by the monotonic clock, so a local NTP step does
    not move venue time.
    """

    def __init__(
        self,
        *,
        window: int = 5,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._base_ms = wall() * 1000.0 - monotonic() * 1000.0
        self._samples: deque[float] = deque(maxlen=window)
        self._offset_ms = 0.0
        self._lock = threading.Lock()

    @property
    def offset_ms(self) -> float:
        """Venue time minus local time, in milliseconds."""
        return self._offset_ms

    @property
    def synced(self) -> bool:
        return bool(self._samples)

    def local_ms(self) -> float:
        return self._base_ms + self._monotonic() * 1000.0

    def now_ms(self) -> int:
        """The venue's current time in milliseconds, as best we know it."""
        return int(self._base_ms + self._monotonic() * 1000.0 + self._offset_ms)

    def add_sample(self, sent_local_ms: float, received_local_ms: float, server_ms: int) -> None:
        """Record one ``/time`` round trip measured with :meth:`local_ms`."""
        midpoint = (sent_local_ms + received_local_ms) / 2.0
        with self._lock:
            self._samples.append(server_ms - midpoint)
            self._offset_ms = statistics.median(self._samples)

    def reset(self) -> None:
        """Forget the samples (after the venue reports a timestamp error)."""
        with self._lock:
            self._samples.clear()
