"""Structured events for every intent, request and outcome, redacted before they exist."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditLog", "Event"]

log = logging.getLogger("securetrade.audit")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``fields`` hold only redacted, public values."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class AuditLog:
    """Keeps the most recent events, logs each at DEBUG, and fans them out to listeners."""

    def __init__(self, *, keep: int = 10_000) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def emit(self, kind: str, **fields: Any) -> None:
        event = Event(kind, fields)
        with self._lock:
            self._events.append(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", kind, fields)
        for listener in self._listeners:
            listener(event)

    def events(self, kind: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self._events if kind is None or e.kind == kind]
