"""Rate-limit metrics through the OpenTelemetry API (no-ops unless the app installs an SDK).

``securetrade.ratelimit.usage`` is an observable gauge: units used in each window of each
scope, read when the SDK collects. ``securetrade.ratelimit.capacity`` is the usable size of
the same window, so a dashboard can draw the one against the other.
``securetrade.ratelimit.waits`` counts the times a call had to wait for room (or for a
pause the venue imposed). Attributes are public values only: venue, kind, scope, window
length, scope id (the IP name, the account name, or a hash of the key), priority.

The OpenTelemetry import happens when a limiter first admits a call, not at import.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

    from .model import Usage

__all__ = ["Instruments", "Measured", "register"]


class Measured(Protocol):
    """What the metrics read from a limiter. A protocol, so this module sits below
    ``limiter`` (which registers itself here) instead of importing it back."""

    @property
    def venue(self) -> str: ...

    def usage(self) -> list[Usage]: ...


@dataclass(slots=True)
class Instruments:
    """The instruments of one meter provider, shared by every limiter that reports to it."""

    waits: Any
    limiters: weakref.WeakSet[Measured] = field(default_factory=weakref.WeakSet)


_lock = threading.Lock()
_by_provider: dict[int, tuple[Any, Instruments]] = {}


def register(limiter: Measured, provider: MeterProvider | None) -> Instruments:
    """Report ``limiter`` through ``provider`` (the global one if ``None``)."""
    from opentelemetry import metrics

    chosen = provider if provider is not None else metrics.get_meter_provider()
    with _lock:
        found = _by_provider.get(id(chosen))
        if found is None or found[0] is not chosen:
            meter = chosen.get_meter("securetrade")
            instruments = Instruments(
                waits=meter.create_counter(
                    "securetrade.ratelimit.waits",
                    unit="{wait}",
                    description="calls told to wait for room in a rate-limit window",
                )
            )

            def usage(options: CallbackOptions) -> Iterable[Observation]:
                return _observe(instruments, capacity=False)

            def capacity(options: CallbackOptions) -> Iterable[Observation]:
                return _observe(instruments, capacity=True)

            meter.create_observable_gauge(
                "securetrade.ratelimit.usage",
                callbacks=[usage],
                unit="{unit}",
                description="units spent in each rate-limit window, per scope",
            )
            meter.create_observable_gauge(
                "securetrade.ratelimit.capacity",
                callbacks=[capacity],
                unit="{unit}",
                description="usable units of each rate-limit window (limit less margin)",
            )
            found = (chosen, instruments)
            _by_provider[id(chosen)] = found
        found[1].limiters.add(limiter)
        return found[1]


def _observe(instruments: Instruments, *, capacity: bool) -> list[Observation]:
    from opentelemetry.metrics import Observation

    result = []
    for limiter in list(instruments.limiters):
        venue = limiter.venue
        for row in limiter.usage():
            attributes = {
                "venue": venue,
                "kind": row.limit.kind,
                "scope": row.limit.scope.value,
                "window_seconds": row.limit.seconds,
                "scope_id": row.scope_id,
            }
            result.append(Observation(row.capacity if capacity else row.used, attributes))
    return result
