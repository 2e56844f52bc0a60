"""The simulator's fault schedule: what goes wrong, on which request, how many times."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .._checks import instance, is_text, number, shown, whole
from ..errors import InvalidRequest

__all__ = ["EXECUTED", "Fault", "Faults"]

_KINDS = (
    "drop_request",
    "drop_response",
    "status",
    "status_after",
    "reset",
    "delay",
    "slow_arrival",
    "rate_limit",
    "rate_limit_after",
    "ban",
    "garbled_after",
    "html_after",
    "blocked_after",
    "empty_after",
    "early_hints",
    "cancel_not_found",
    "strip_after",
)

#: Kinds after which the request has been processed (the order exists).
EXECUTED = frozenset(
    {
        "drop_response",
        "status_after",
        "rate_limit_after",
        "reset",
        "delay",
        "garbled_after",
        "html_after",
        "blocked_after",
        "empty_after",
        "strip_after",
        "slow_arrival",
        "early_hints",
    }
)


@dataclass(slots=True)
class Fault:
    """One scheduled fault.

    Not processed: ``drop_request`` closes the connection (the client cannot tell whether
    it arrived); ``status`` answers ``status`` (a 5xx); ``rate_limit`` answers 429 and
    ``ban`` 418, both with Retry-After ``seconds``; ``cancel_not_found`` answers with the
    venue's own "no such order" (as to a cancel of an order it does not know), while the
    order stays as it was: a lagging venue, or a replica that has not caught up.
    Processed: ``drop_response`` closes the connection instead of answering; ``status_after``
    answers ``status``; ``rate_limit_after`` answers 429 with Retry-After ``seconds`` (a
    misbehaving proxy that forwarded the request, then throttled); ``reset`` sends half a
    response, then resets the connection; ``garbled_after`` answers 200 with the venue's
    JSON cut in half, and ``html_after`` answers 200 with an HTML page (a proxy or CDN
    that replaced the answer): delivered in full, but unreadable; ``blocked_after``
    answers ``status`` (a 4xx: 403, 404) with an HTML page, as a CDN or web application
    firewall that passed the request on and then blocked the answer does; ``empty_after``
    answers ``status`` with no body at all (a proxy's bare 404 or 502); ``strip_after``
    answers with the venue's JSON object less its top-level ``field`` (a replica or a
    proxy that drops what it does not know, OANDA's ``lastTransactionID`` say);
    ``early_hints`` answers normally, after an interim ``103 Early Hints`` (a CDN in front
    of the venue that sends one): the answer is whole and must be read as it is;
    ``delay`` holds the request ``seconds`` after the gateway's checks, then processes it
    (past the client's timeout, the order lands after the client gave up);
    ``slow_arrival`` holds it ``seconds`` before the venue counts it, as a slow first
    connection or a congested route does: it arrives late, then is processed as usual.
    ``method``/``path`` select the requests (``None`` matches any), and ``client`` the
    peer address they come from (one egress IP of several); ``times`` is how many
    matching requests it hits.
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int = 503
    seconds: float = 1.0
    client: str | None = None
    field: str | None = None

    def matches(self, method: str, path: str, client: str | None) -> bool:
        """Whether this fault selects a request."""
        return (
            self.method in (None, method)
            and self.path in (None, path)
            and self.client in (None, client)
        )

    def __post_init__(self) -> None:
        if not is_text(self.kind) or self.kind not in _KINDS:  # no caller's == or hash
            raise InvalidRequest(f"fault kind {shown(self.kind)} is not one of {', '.join(_KINDS)}")
        whole("Fault.times", self.times, 1)
        whole("Fault.status", self.status, 100, 599)
        number("Fault.seconds", self.seconds, least=0)
        if (self.kind == "strip_after") != (self.field is not None):
            raise InvalidRequest("Fault.field names the field a strip_after fault drops (only)")
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise InvalidRequest("Fault.field must be a field's name, such as 'lastTransactionID'")


class Faults:
    """A thread-safe list of pending faults, consumed in order."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str, str]] = []
        self._random: tuple[float, list[Fault], random.Random] | None = None

    def at_random(self, probability: float, faults: list[Fault], *, seed: int = 0) -> None:
        """Besides the schedule, hit each request with ``probability`` of one of ``faults``
        (picked uniformly among those matching it; seeded, so a run can be replayed)."""
        number("probability", probability, least=0.0, most=1.0)
        if isinstance(faults, (str, bytes)) or not isinstance(faults, Iterable):
            raise InvalidRequest("faults must be a list of Fault")
        faults = list(faults)
        if not all(isinstance(f, Fault) for f in faults):
            raise InvalidRequest("faults must be a list of Fault (Fault('error'), ...)")
        whole("seed", seed, 0)
        with self._lock:
            self._random = (probability, list(faults), random.Random(seed))  # noqa: S311  # nosec B311

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` for the next request it matches."""
        instance("fault", fault, Fault, optional=False)
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
        client: str | None = None,
        field: str | None = None,
    ) -> None:
        """Schedule a fault; see :class:`Fault`."""
        self.add(Fault(kind, method, path, times, status, seconds, client, field))

    def take(self, method: str, path: str, client: str | None = None) -> Fault | None:
        """The fault that hits this request from ``client``, if any (and count it down)."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path, client):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._pending.remove(fault)
                    self.fired.append((fault.kind, method, path))
                    return fault
            if self._random is not None:
                probability, faults, rng = self._random
                if rng.random() < probability:
                    matching = [f for f in faults if f.matches(method, path, client)]
                    if matching:
                        fault = rng.choice(matching)
                        self.fired.append((fault.kind, method, path))
                        return fault
        return None

    def clear(self) -> None:
        """Drop every scheduled fault and stop the random ones."""
        with self._lock:
            self._pending.clear()
            self._random = None
