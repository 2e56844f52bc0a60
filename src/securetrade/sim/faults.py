"""The simulator's fault schedule: what goes wrong, on which request, how many times."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["EXECUTED", "Fault", "Faults"]

_KINDS = (
    "drop_request",
    "drop_response",
    "status",
    "status_after",
    "reset",
    "delay",
    "rate_limit",
    "ban",
)

#: Kinds after which the request has been processed (the order exists).
EXECUTED = frozenset({"drop_response", "status_after", "reset", "delay"})


@dataclass(slots=True)
class Fault:
    """One scheduled fault.

    Not processed: ``drop_request`` closes the connection (the client cannot tell whether
    it arrived); ``status`` answers ``status`` (a 5xx); ``rate_limit`` answers 429 and
    ``ban`` 418, both with Retry-After ``seconds``.
    Processed: ``drop_response`` closes the connection instead of answering; ``status_after``
    answers ``status``; ``reset`` sends half a response, then resets the connection;
    ``delay`` holds the request ``seconds`` after the gateway's checks, then processes it
    (past the client's timeout, the order lands after the client gave up).
    ``method``/``path`` select the requests (``None`` matches any); ``times`` is how many
    matching requests it hits.
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int = 503
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"fault kind must be one of {_KINDS}")


class Faults:
    """A thread-safe list of pending faults, consumed in order."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str, str]] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        status: int = 503,
        seconds: float = 1.0,
    ) -> None:
        """Schedule a fault; see :class:`Fault`."""
        self.add(Fault(kind, method, path, times, status, seconds))

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that hits this request, if any (and count it down)."""
        with self._lock:
            for fault in self._pending:
                if (fault.method in (None, method)) and (fault.path in (None, path)):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._pending.remove(fault)
                    self.fired.append((fault.kind, method, path))
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
