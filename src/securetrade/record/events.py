"""Structured events for every intent, request, response and state change, redacted first.

The core reports everything that happens to one :class:`AuditLog`. It keeps the recent
events in memory, logs each at DEBUG, appends each to a hash-chained, signed
:class:`~securetrade.record.trail.AuditTrail` when given one, and hands each to listeners
(the anomaly monitor is one). Requests are recorded through the one redaction policy
(:mod:`securetrade.transport.redaction`), so no key, signature or passphrase is ever
written down.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._checks import function, is_text, text, whole
from ..errors import InvalidRequest
from ..transport.redaction import redact_headers, redact_query

if TYPE_CHECKING:
    from ..transport.base import HttpRequest, HttpResponse
    from .trail import AuditTrail

__all__ = ["AuditLog", "Event"]

log = logging.getLogger("securetrade.audit")

# Response bodies longer than this are recorded by size and hash only (exchangeInfo is
# hundreds of kilobytes; an order answer is well under it).
MAX_BODY = 4096


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``fields`` hold only redacted, public values."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class AuditLog:
    """Keeps the most recent events, logs each at DEBUG, records and fans them out.

    ``trail`` makes the record durable and tamper-evident; without one, events live in
    memory only (``keep`` of them) and requests and responses are not recorded at all.
    """

    def __init__(self, *, keep: int = 10_000, trail: AuditTrail | None = None) -> None:
        if trail is not None and not callable(getattr(trail, "append", None)):
            raise InvalidRequest("trail must be an AuditTrail (or None)")  # not imported: lazy
        # Kept as (kind, at) and fields side by side (appended and read together, under
        # the lock), an Event made again when read: a tuple of text and a float, and a
        # dict of plain values, are no containers the garbage collector follows (the
        # tuple is untracked at its first collection, the dict never tracked), where a
        # kept Event would age into the old generation, two per order, and bring the
        # next full collection on.
        keep = whole("keep", keep, 1)
        self._kinds: deque[tuple[str, float]] = deque(maxlen=keep)
        self._fields: deque[dict[str, Any]] = deque(maxlen=keep)
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.trail = trail

    @property
    def records_wire(self) -> bool:
        """Whether requests and responses are worth describing (a trail keeps them)."""
        return self.trail is not None

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for every event from now on."""
        self._listeners.append(function("listener", listener))

    def emit(self, kind: str, **fields: Any) -> None:
        """Record one event. Fields must already be public (no secrets, redacted URLs)."""
        self.record(kind, fields)

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        """:meth:`emit`, with the fields as the dict they already are (the core's notes,
        made per order: not packed into keywords a second time). The dict is kept."""
        if not isinstance(fields, dict):
            raise InvalidRequest("fields must be a dict of public values")
        if not is_text(kind):
            text("kind", kind)  # the layers' own kinds pass above: this says what is wrong
        event = Event(kind, fields)
        with self._lock:
            self._kinds.append((kind, event.at))
            self._fields.append(fields)
        if self.trail is not None:
            self.trail.append(kind, fields, at=event.at)
        if log.isEnabledFor(logging.DEBUG):
            personal = getattr(self.trail, "personal", None)  # pseudonyms, never the raw ids
            log.debug("%s %s", kind, fields if personal is None else personal.minimise(fields))
        for listener in self._listeners:
            listener(event)

    def request(self, op: str, request: HttpRequest, *, attempt: int = 1) -> None:
        """Record a request as it goes out, through the redaction policy."""
        if not self.records_wire:
            return
        body = request.body.decode("utf-8", "replace") if request.body else ""
        self.emit(
            "http.request",
            op=op,
            method=request.method,
            target=redact_query(request.target),
            headers=redact_headers(request.headers),
            body=redact_query(body),
            attempt=attempt,
        )

    def response(self, op: str, response: HttpResponse, *, verdict: str) -> None:
        """Record a venue's answer: status, verdict and body (or its hash when large)."""
        if not self.records_wire:
            return
        fields: dict[str, Any] = {
            "op": op,
            "status": response.status,
            "verdict": verdict,
            "size": len(response.body),
            "sha256": hashlib.sha256(response.body).hexdigest(),
        }
        if len(response.body) <= MAX_BODY:
            fields["body"] = redact_query(response.body.decode("utf-8", "replace"))
        self.emit("http.response", **fields)

    def events(self, kind: str | None = None) -> list[Event]:
        """The events kept in memory, oldest first, optionally of one kind."""
        with self._lock:
            return [
                Event(kept, fields, at)
                for (kept, at), fields in zip(self._kinds, self._fields, strict=True)
                if kind is None or kept == kind
            ]
