"""Traces and metrics through the OpenTelemetry API (no-ops unless the application installs
an SDK).

Each client operation is a span (``securetrade.place_order``...), and each request it
sends to the venue is a child span of kind CLIENT that follows the HTTP client semantic
conventions: ``http.request.method``, ``url.full`` (redacted: no signature, no key),
``server.address``, ``http.response.status_code``, ``error.type`` and
``http.request.resend_count``, plus ``securetrade.*`` attributes (venue, operation, client
order id, verdict, policy decision). Counters record resends and outcomes that are not
known (the idempotency layer then asks the venue). Attribute values are public values
only. The tracer and meter are looked up on first use so that importing securetrade stays
cheap, and the expensive attributes are built only when a span is being recorded. While
no SDK is installed (no tracer or meter provider set), nothing is built at all: every span
and metric would go nowhere. An SDK installed later is seen at the next call.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from .base import HttpRequest, TransportFailure
from .redaction import redact_query

__all__ = ["VenueCall", "annotate", "span", "venue_call"]


@lru_cache(maxsize=1)
def _registries() -> tuple[ModuleType, ModuleType] | None:
    """The API modules that hold the global providers; None where an API version keeps them
    elsewhere (every call then records, as if an SDK were installed).

    Read directly because the public getters look the environment up on every call, which
    costs more than the rest of a silent span; a provider named in the environment is
    installed here, by one call to each getter.
    """
    from opentelemetry import metrics, trace

    trace.get_tracer_provider()
    metrics.get_meter_provider()
    try:
        from opentelemetry.metrics import _internal as metrics_state
    except ImportError:
        return None
    if not (hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_state, "_METER_PROVIDER")):
        return None
    return trace, metrics_state


def _silent() -> bool:
    """True while neither a tracer nor a meter provider is installed."""
    registries = _registries()
    return (
        registries is not None
        and registries[0]._TRACER_PROVIDER is None
        and registries[1]._METER_PROVIDER is None
    )


_NOTHING: AbstractContextManager[None] = nullcontext()


@lru_cache(maxsize=1)
def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("securetrade")


@lru_cache(maxsize=1)
def _instruments() -> tuple[Any, Any, Any]:
    from opentelemetry import metrics

    meter = metrics.get_meter("securetrade")
    return (
        meter.create_counter(
            "securetrade.client.retries",
            unit="{retry}",
            description="requests sent again after a failure that proved nothing executed",
        ),
        meter.create_counter(
            "securetrade.client.unknown_outcomes",
            unit="{outcome}",
            description="requests whose outcome was unknown (timeout, reset, 5xx)",
        ),
        meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="duration of venue requests",
        ),
    )


@lru_cache(maxsize=1)
def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def span(name: str, **attributes: str) -> AbstractContextManager[Any]:
    """A span named ``securetrade.<name>`` with only the given public attributes."""
    if _silent():
        return _NOTHING
    return _tracer().start_as_current_span(  # type: ignore[no-any-return]
        f"securetrade.{name}", attributes={f"securetrade.{k}": v for k, v in attributes.items()}
    )


def annotate(name: str, value: str | int) -> None:
    """Set ``securetrade.<name>`` on the current span (the operation's span)."""
    if _silent():
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(f"securetrade.{name}", value)


class VenueCall:
    """One request to a venue, traced from the moment it is sent to its answer.

    Started and ended explicitly (not as the current span), because the request is
    handed to a driver between the two and the same code serves threads and asyncio.
    """

    __slots__ = ("_attributes", "_span", "_started")

    def __init__(self, span: Any, attributes: dict[str, str]) -> None:
        self._span = span
        self._attributes = attributes
        self._started = time.perf_counter()

    def end(
        self,
        *,
        status: int | None = None,
        verdict: str | None = None,
        error: BaseException | None = None,
        unknown: bool = False,
    ) -> None:
        """Finish the span with the answer (``status``, ``verdict``) or the failure."""
        if self._span is None:  # made while no SDK was installed
            return
        _, unknown_outcomes, duration = _instruments()
        error_type: str | None = None
        if error is not None:
            error_type = type(error).__name__
            if isinstance(error, TransportFailure) and error.sent:
                unknown = True
        elif status is not None and status >= 400:
            error_type = str(status)
        if unknown:
            unknown_outcomes.add(1, self._attributes)
        metric_attributes: dict[str, str | int] = dict(self._attributes)
        if status is not None:
            metric_attributes["http.response.status_code"] = status
        if error_type is not None:
            metric_attributes["error.type"] = error_type
        duration.record(time.perf_counter() - self._started, metric_attributes)
        span = self._span
        if span.is_recording():
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if verdict is not None:
                span.set_attribute("securetrade.verdict", verdict)
            if error_type is not None:
                from opentelemetry.trace import Status, StatusCode

                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


def venue_call(
    request: HttpRequest,
    *,
    venue: str,
    operation: str,
    base_url: str | None,
    resend_count: int = 0,
    client_order_id: str | None = None,
) -> VenueCall:
    """Start the CLIENT span of one request; count it as a retry when it is a resend."""
    if _silent():
        return _UNTRACED
    attributes = {"securetrade.venue": venue, "securetrade.operation": operation}
    if resend_count > 0:
        _instruments()[0].add(1, attributes)
    path = request.target.partition("?")[0]
    span = _tracer().start_span(f"{request.method} {path}", kind=_client_kind())
    if span.is_recording():
        base = base_url or f"inproc://{venue}"
        parts = urlsplit(base)
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("url.full", base.rstrip("/") + redact_query(request.target))
        span.set_attribute("url.template", path)
        if parts.hostname:
            span.set_attribute("server.address", parts.hostname)
        try:
            port = parts.port
        except ValueError:  # "inproc://ccxt:binance": a venue name, not a port
            port = None
        if port:
            span.set_attribute("server.port", port)
        if resend_count > 0:
            span.set_attribute("http.request.resend_count", resend_count)
        for key, value in attributes.items():
            span.set_attribute(key, value)
        if client_order_id is not None:
            span.set_attribute("securetrade.client_order_id", client_order_id)
    return VenueCall(span, attributes)


_UNTRACED = VenueCall(None, {})
