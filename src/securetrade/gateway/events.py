"""Security events: one per refusal, to the logs, the audit trail and OpenTelemetry.

An event names the reason, the HTTP status, the route, the key id the request claimed (a
public identifier, checked against the key-id grammar before it gets here) and the client
address (cut to its /24 or /48 in logs and the audit trail: minimised). Never a secret,
a signature or a body. Metrics: ``securetrade.gateway.refusals``
(a counter, by reason and status) and ``securetrade.gateway.check_duration`` (a histogram
of the time the checks took, in seconds, by outcome). OpenTelemetry is imported on the
first event, and is a no-op unless the application installs an SDK.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._checks import function, text
from .._checks import seconds as duration
from ..errors import InvalidRequest
from ..privacy.tags import truncate_ip

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from ..record import AuditLog

__all__ = ["GatewayMonitor", "SecurityEvent"]

log = logging.getLogger("securetrade.gateway")


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One refused request."""

    reason: str
    status: int
    route: str
    key_id: str | None
    address: str | None


class GatewayMonitor:
    """Reports refusals and check latency. ``audit`` (an :class:`AuditLog`) records each
    refusal as a ``gateway.refused`` event; ``listeners`` see every :class:`SecurityEvent`."""

    def __init__(
        self,
        *,
        audit: AuditLog | None = None,
        meter_provider: MeterProvider | None = None,
        log_level: int = logging.WARNING,
    ) -> None:
        self.audit = audit
        self.log_level = log_level
        self._provider = meter_provider
        self._lock = threading.Lock()
        self._instruments: tuple[Any, Any] | None = None
        self._listeners: list[Callable[[SecurityEvent], None]] = []
        self.counts: dict[str, int] = {}

    def subscribe(self, listener: Callable[[SecurityEvent], None]) -> None:
        """Call ``listener(event)`` for every refusal from now on."""
        self._listeners.append(function("listener", listener))

    def _meters(self) -> tuple[Any, Any]:
        instruments = self._instruments
        if instruments is None:
            from opentelemetry import metrics

            with self._lock:
                provider = self._provider or metrics.get_meter_provider()
                meter = provider.get_meter("securetrade")
                instruments = (
                    meter.create_counter(
                        "securetrade.gateway.refusals",
                        unit="{request}",
                        description="inbound requests the gateway refused, by reason",
                    ),
                    meter.create_histogram(
                        "securetrade.gateway.check_duration",
                        unit="s",
                        description="time the gateway's checks took for one request",
                    ),
                )
                self._instruments = instruments
        return instruments

    def refused(self, event: SecurityEvent) -> None:
        """Record one refusal everywhere it is reported."""
        if not isinstance(event, SecurityEvent):
            raise InvalidRequest("refused() takes a SecurityEvent")
        with self._lock:
            self.counts[event.reason] = self.counts.get(event.reason, 0) + 1
        self._meters()[0].add(1, {"reason": event.reason, "status": event.status})
        # A locked-out flood is logged once, when the lock engages (locked()); each of its
        # requests still counts in the metrics and the audit trail.
        level = logging.DEBUG if event.reason == "locked_out" else self.log_level
        if log.isEnabledFor(level):
            log.log(
                level,
                "gateway refused %s %s: %s (%d) key=%s from %s",
                event.route.split(" ", 1)[0],
                event.route.split(" ", 1)[-1],
                event.reason,
                event.status,
                event.key_id or "-",
                truncate_ip(event.address) if event.address else "-",  # minimised: a /24 or /48
            )
        if self.audit is not None:
            self.audit.emit(
                "gateway.refused",
                reason=event.reason,
                status=event.status,
                route=event.route,
                key_id=event.key_id,
                address=truncate_ip(event.address) if event.address else None,  # minimised
            )
        for listener in self._listeners:
            listener(event)

    def locked(self, name: str, seconds: float) -> None:
        """``name`` (``addr:<ip>`` or ``key:<id>``) is locked out for ``seconds``."""
        text("name", name)
        duration("seconds", seconds, least=0)
        shown = "addr:" + truncate_ip(name[5:]) if name.startswith("addr:") else name
        log.log(self.log_level, "gateway locked out %s for %.0f s", shown, seconds)
        if self.audit is not None:
            self.audit.emit("gateway.locked_out", name=shown, seconds=seconds)

    def timed(self, seconds: float, outcome: str) -> None:
        """The checks for one request took ``seconds`` and ended in ``outcome``."""
        duration("seconds", seconds, least=0)
        text("outcome", outcome)
        self._meters()[1].record(seconds, {"outcome": outcome})
