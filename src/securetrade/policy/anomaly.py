"""Anomaly detection over the client's own activity, as it happens.

A runaway bot or a stolen key shows itself in the client's own traffic before the account
is empty: orders far faster than usual, sizes far outside the account's habits, orders
placed and cancelled in a tight loop, a first order on a symbol never traded, a burst of
signature, timestamp or permission rejections, a withdrawal. Each detector here watches
one of these in a stream of :class:`Activity` and raises an :class:`Alert` with its
numbers. The :class:`AnomalyMonitor` feeds them, logs every alert at its severity, calls
the registered callbacks, and engages a kill switch on a critical alert when given one.

Detectors are streaming and bounded: each keeps a short window or a fixed-size sample,
never the whole history. Time comes from the activity, so a recorded stream replays the
same way.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .._checks import (
    Choice,
    flag,
    function,
    instance,
    is_text,
    number,
    seconds,
    text,
    texts,
    whole,
)
from ..errors import InvalidRequest
from .killswitch import KillSwitch

if TYPE_CHECKING:
    from ..record.events import AuditLog, Event

__all__ = [
    "Activity",
    "Alert",
    "AnomalyMonitor",
    "CancelReplaceLoop",
    "Detector",
    "NewSymbol",
    "OrderRateSpike",
    "RejectionBurst",
    "Severity",
    "SizeOutlier",
    "UnknownActivityDetector",
    "WithdrawalAttempt",
    "default_detectors",
]

log = logging.getLogger("securetrade.anomaly")


class Severity(int, Choice):
    """How urgent an alert is; the values are the :mod:`logging` levels it is logged at."""

    INFO = logging.INFO
    WARNING = logging.WARNING
    CRITICAL = logging.CRITICAL


# What a rejection was about. Only these count as signs of key misuse.
MISUSE_REASONS = frozenset({"signature", "timestamp", "permission", "credentials"})


@dataclass(frozen=True, slots=True)
class Activity:
    """One thing the client did or was told.

    ``kind`` is ``order`` (a new order was submitted), ``cancel``, ``rejection`` (with
    ``reason``: signature, timestamp, permission, credentials, or anything else) or
    ``withdrawal`` (``reason`` is ``refused`` when it was stopped locally), or ``unknown``:
    activity on the account no process sharing the journal made, seen on the live stream
    (``reason`` is ``order``, ``fill``, ``withdrawal`` or ``key``). ``at`` is in seconds since the
    epoch.
    """

    kind: str
    at: float
    symbol: str | None = None
    quantity: Decimal | None = None
    client_order_id: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        """Checked once here, so that no detector meets a wrong type later (a TypeError
        inside the monitor, on the order's path). The usual record takes the first test."""
        kind, at, symbol, quantity = self.kind, self.at, self.symbol, self.quantity
        if (
            type(kind) is str
            and kind
            and kind.isprintable()
            and (type(at) is float or type(at) is int)
            and -1e308 < at < 1e308  # NaN fails both
            and (symbol is None or (type(symbol) is str and symbol.isprintable()))
            and (quantity is None or (type(quantity) is Decimal and quantity.is_finite()
                                      and quantity >= 0))
            and (self.client_order_id is None or type(self.client_order_id) is str)
            and (self.reason is None or type(self.reason) is str)
            and (self.client_order_id is None or self.client_order_id.isprintable())
            and (self.reason is None or self.reason.isprintable())
        ):  # fmt: skip
            return
        text("kind", self.kind)
        number("at (epoch seconds)", self.at)
        for name in ("symbol", "client_order_id", "reason"):
            value = getattr(self, name)
            if value is not None and not is_text(value, empty=True):  # a venue may send ""
                raise InvalidRequest(f"{name} must be text or None")
        quantity = self.quantity
        if quantity is not None and not (
            isinstance(quantity, Decimal) and quantity.is_finite() and quantity >= 0
        ):
            raise InvalidRequest("quantity must be a finite Decimal of at least 0, or None")


@dataclass(frozen=True, slots=True)
class Alert:
    """What a detector saw, with the numbers that made it fire."""

    detector: str
    severity: Severity
    message: str
    at: float
    symbol: str | None = None
    numbers: Mapping[str, float | int | str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.severity.name}] {self.detector}: {self.message}"


class Detector(Protocol):
    """Watches the stream; returns an alert when what it watches for happens."""

    name: str

    def observe(self, activity: Activity) -> Alert | None: ...


def _activity(activity: object) -> None:
    """A detector is fed Activity records only (AnomalyMonitor.observe checks the same)."""
    if type(activity) is not Activity and not isinstance(activity, Activity):
        raise InvalidRequest("activity must be a securetrade.policy.Activity")


def _positive(name: str, value: float) -> float:
    return number(name, value, above=0)


def _trim(times: deque[float], oldest: float) -> None:
    while times and times[0] < oldest:
        times.popleft()


class OrderRateSpike:
    """Orders arrive far faster than the account's own recent pace.

    Fires when the last ``window`` seconds hold at least ``floor`` orders and ``factor``
    times what the pace of the previous ``baseline`` seconds predicts; critical at four
    times that threshold (a loop gone wild).
    """

    name = "order_rate"

    def __init__(
        self,
        *,
        window: float = 10.0,
        baseline: float = 900.0,
        factor: float = 5.0,
        floor: int = 12,
    ) -> None:
        self.window = _positive("window", window)
        self.baseline = _positive("baseline", baseline)
        if self.baseline <= self.window:
            raise InvalidRequest("baseline must be longer than window")
        self.factor = _positive("factor", factor)
        self.floor = whole("floor", floor, 1)
        self._times: deque[float] = deque()

    def observe(self, activity: Activity) -> Alert | None:
        """Alert when the recent order rate is far above the baseline rate."""
        _activity(activity)
        if activity.kind != "order":
            return None
        now = activity.at
        self._times.append(now)
        _trim(self._times, now - self.baseline)
        recent = sum(1 for t in self._times if t > now - self.window)
        before = len(self._times) - recent
        expected = before / (self.baseline - self.window) * self.window
        threshold = max(float(self.floor), self.factor * expected)
        if recent < threshold:
            return None
        severity = Severity.CRITICAL if recent >= 4 * threshold else Severity.WARNING
        return Alert(
            self.name,
            severity,
            f"{recent} orders in {self.window:g} s, against {expected:.2f} expected "
            f"from the last {self.baseline:g} s",
            now,
            numbers={"orders": recent, "expected": round(expected, 3), "threshold": threshold},
        )


class SizeOutlier:
    """An order far larger than this account's recent orders on the same symbol.

    Sizes are compared on a log scale against the median of the last ``history`` orders:
    it fires when the size is at least ``factor`` times the median and ``z`` robust
    standard deviations (median absolute deviation) above it; critical at ``10 * factor``.
    Silent until ``min_samples`` orders of the symbol have been seen.
    """

    name = "order_size"

    def __init__(
        self,
        *,
        history: int = 200,
        min_samples: int = 20,
        factor: float = 10.0,
        z: float = 4.0,
    ) -> None:
        self.history = whole("history", history, 1)
        self.min_samples = whole("min_samples", min_samples, 1)
        self.factor = _positive("factor", factor)
        self.z = _positive("z", z)
        self._sizes: dict[str, deque[float]] = {}

    def observe(self, activity: Activity) -> Alert | None:
        """Alert on an order far larger than this symbol's usual size (log-scale distance from the
        median)."""
        _activity(activity)
        if activity.kind != "order" or activity.symbol is None or not activity.quantity:
            return None
        size = math.log(float(activity.quantity))
        sizes = self._sizes.setdefault(activity.symbol, deque(maxlen=self.history))
        alert = None
        if len(sizes) >= self.min_samples:
            median = statistics.median(sizes)
            spread = 1.4826 * statistics.median(abs(s - median) for s in sizes)
            ratio = math.exp(size - median)
            score = (size - median) / max(spread, 0.05)
            if ratio >= self.factor and score >= self.z:
                severity = Severity.CRITICAL if ratio >= 10 * self.factor else Severity.WARNING
                alert = Alert(
                    self.name,
                    severity,
                    f"quantity {activity.quantity} of {activity.symbol} is {ratio:.1f}x the "
                    f"recent median {math.exp(median):.8g}",
                    activity.at,
                    activity.symbol,
                    {
                        "quantity": str(activity.quantity),
                        "ratio": round(ratio, 2),
                        "score": round(score, 2),
                    },
                )
        sizes.append(size)
        return alert


class CancelReplaceLoop:
    """Orders cancelled almost as soon as they are placed, over and over.

    Counts orders cancelled within ``max_life`` seconds of being placed; fires when the last
    ``window`` seconds hold ``threshold`` of them, critical at five times as many.
    """

    name = "cancel_replace"

    def __init__(self, *, window: float = 10.0, max_life: float = 2.0, threshold: int = 10) -> None:
        self.window = _positive("window", window)
        self.max_life = _positive("max_life", max_life)
        self.threshold = whole("threshold", threshold, 1)
        self._placed: dict[str, float] = {}
        self._quick: deque[float] = deque()

    def observe(self, activity: Activity) -> Alert | None:
        """Alert when orders are cancelled soon after placing, again and again (quote stuffing or a
        runaway loop)."""
        _activity(activity)
        cid = activity.client_order_id
        if activity.kind == "order" and cid is not None:
            self._placed[cid] = activity.at
            if len(self._placed) > 10_000:  # forget the oldest: bounded memory
                for old in list(self._placed)[:1000]:
                    del self._placed[old]
            return None
        if activity.kind != "cancel" or cid is None:
            return None
        placed = self._placed.pop(cid, None)
        if placed is None or activity.at - placed > self.max_life:
            return None
        self._quick.append(activity.at)
        _trim(self._quick, activity.at - self.window)
        count = len(self._quick)
        if count < self.threshold:
            return None
        severity = Severity.CRITICAL if count >= 5 * self.threshold else Severity.WARNING
        return Alert(
            self.name,
            severity,
            f"{count} orders cancelled within {self.max_life:g} s of placing them in the "
            f"last {self.window:g} s",
            activity.at,
            activity.symbol,
            {"quick_cancels": count, "threshold": self.threshold},
        )


class NewSymbol:
    """A first order on a symbol this account has not traded before.

    ``known`` seeds the symbols already traded. For ``learn_for`` seconds after the first
    activity it sees, the detector learns symbols silently (a new bot's first day).
    """

    name = "new_symbol"

    def __init__(self, *, known: Iterable[str] = (), learn_for: float = 3600.0) -> None:
        self.known = set(texts("known (symbols)", known))
        self.learn_for = seconds("learn_for", learn_for, least=0)
        self._started: float | None = None

    def observe(self, activity: Activity) -> Alert | None:
        """Alert on the first order in a symbol not traded before (once ``learn_for`` is over)."""
        _activity(activity)
        if self._started is None:
            self._started = activity.at
        if activity.kind != "order" or activity.symbol is None:
            return None
        if activity.symbol in self.known:
            return None
        self.known.add(activity.symbol)
        if activity.at - self._started < self.learn_for:
            return None
        return Alert(
            self.name,
            Severity.WARNING,
            f"first order ever on {activity.symbol}",
            activity.at,
            activity.symbol,
            {"known_symbols": len(self.known) - 1},
        )


class RejectionBurst:
    """Signature, timestamp, permission or credential rejections in a burst: key misuse.

    One stray timestamp rejection is clock drift; ``threshold`` of them within ``window``
    seconds is someone guessing, replaying or using a key from the wrong place. Critical.
    """

    name = "auth_rejections"

    def __init__(self, *, window: float = 60.0, threshold: int = 5) -> None:
        self.window = _positive("window", window)
        self.threshold = whole("threshold", threshold, 1)
        self._times: deque[float] = deque()
        self._reasons: deque[str] = deque()

    def observe(self, activity: Activity) -> Alert | None:
        """Alert on a burst of rejections that suggest misuse (signature, timestamp,
        permission, credentials)."""
        _activity(activity)
        if activity.kind != "rejection" or activity.reason not in MISUSE_REASONS:
            return None
        self._times.append(activity.at)
        self._reasons.append(activity.reason)
        while self._times and self._times[0] < activity.at - self.window:
            self._times.popleft()
            self._reasons.popleft()
        count = len(self._times)
        if count < self.threshold:
            return None
        kinds = {r: self._reasons.count(r) for r in sorted(set(self._reasons))}
        return Alert(
            self.name,
            Severity.CRITICAL,
            f"{count} authentication rejections in {self.window:g} s "
            f"({', '.join(f'{k}: {v}' for k, v in kinds.items())})",
            activity.at,
            numbers={"rejections": count, "threshold": self.threshold, **kinds},
        )


class WithdrawalAttempt:
    """Every withdrawal attempt is worth a look; one stopped locally is critical."""

    name = "withdrawal"

    def observe(self, activity: Activity) -> Alert | None:
        """Alert on every withdrawal attempt; critical when it was refused locally."""
        _activity(activity)
        if activity.kind != "withdrawal":
            return None
        refused = activity.reason == "refused"
        return Alert(
            self.name,
            Severity.CRITICAL if refused else Severity.WARNING,
            "withdrawal attempt refused locally" if refused else "withdrawal attempt",
            activity.at,
            activity.symbol,
            {
                "amount": str(activity.quantity) if activity.quantity is not None else "",
                "refused": int(refused),
            },
        )


class UnknownActivityDetector:
    """Orders, fills, withdrawals or key permission changes on the account that none of
    ours made: a stolen key.

    Kinds in ``kill_on`` are critical (an :class:`AnomalyMonitor` with a kill switch
    engages it); the others are warnings. By default a withdrawal nobody asked for stops
    everything; pass ``kill_on={"order", "withdrawal"}`` to stop on a foreign order too.
    """

    name = "unknown_activity"

    def __init__(self, *, kill_on: Iterable[str] = ("withdrawal",)) -> None:
        if isinstance(kill_on, str) or not hasattr(kill_on, "__iter__"):
            raise InvalidRequest("kill_on must be a set of kinds: order, fill, withdrawal, key")
        kinds = frozenset(kill_on)
        unknown = kinds - {"order", "fill", "withdrawal", "key"}
        if unknown:
            raise InvalidRequest(
                f"kill_on names unknown kinds {sorted(unknown)}; use order, fill, withdrawal, key"
            )
        self.kill_on = kinds

    def observe(self, activity: Activity) -> Alert | None:
        _activity(activity)
        if activity.kind != "unknown":
            return None
        what = activity.reason or "order"
        return Alert(
            self.name,
            Severity.CRITICAL if what in self.kill_on else Severity.WARNING,
            f"{what} on the account that no process sharing the journal made",
            activity.at,
            activity.symbol,
            {
                "kind": what,
                "quantity": str(activity.quantity) if activity.quantity is not None else "",
                "client_order_id": activity.client_order_id or "",
            },
        )


def default_detectors() -> list[Detector]:
    """One of each detector with its default thresholds."""
    return [
        OrderRateSpike(),
        SizeOutlier(),
        CancelReplaceLoop(),
        NewSymbol(),
        RejectionBurst(),
        WithdrawalAttempt(),
        UnknownActivityDetector(),
    ]


class AnomalyMonitor:
    """Feeds activity to the detectors; logs, fans out, and may pull the kill switch.

    After a detector fires, the same detector stays quiet about the same symbol at the same
    severity for ``cooldown`` seconds, so one incident gives one alert, not hundreds. With a
    ``kill_switch``, a critical alert engages it (cancelling open orders too when
    ``cancel_open_on_kill``).
    """

    def __init__(
        self,
        detectors: Iterable[Detector] | None = None,
        *,
        kill_switch: KillSwitch | None = None,
        cancel_open_on_kill: bool = False,
        cooldown: float = 60.0,
        keep: int = 1000,
    ) -> None:
        if detectors is None:
            self.detectors = default_detectors()
        else:
            if isinstance(detectors, (str, bytes)) or not hasattr(detectors, "__iter__"):
                raise InvalidRequest("detectors must be a list of detectors")
            self.detectors = list(detectors)
            if not all(callable(getattr(d, "observe", None)) for d in self.detectors):
                raise InvalidRequest("each detector must have an observe(activity) method")
        self.kill_switch = instance("kill_switch", kill_switch, KillSwitch)
        self.cancel_open_on_kill = flag("cancel_open_on_kill", cancel_open_on_kill)
        self.cooldown = seconds("cooldown", cooldown, least=0)
        self.alerts: deque[Alert] = deque(maxlen=whole("keep", keep, 1))
        self._callbacks: list[Callable[[Alert], None]] = []
        self._last: dict[tuple[str, str | None, Severity], float] = {}
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Alert], None]) -> None:
        """Call ``callback(alert)`` for every alert raised from now on."""
        self._callbacks.append(function("callback", callback))

    def observe(self, activity: Activity) -> list[Alert]:
        """Feed one activity to every detector; returns the alerts it raised."""
        instance("activity", activity, Activity, optional=False)
        raised = []
        with self._lock:
            for detector in self.detectors:
                alert = detector.observe(activity)
                if alert is None:
                    continue
                key = (alert.detector, alert.symbol, alert.severity)
                last = self._last.get(key)
                if last is not None and alert.at - last < self.cooldown:
                    continue
                self._last[key] = alert.at
                self.alerts.append(alert)
                raised.append(alert)
        for alert in raised:
            self._publish(alert)
        return raised

    def watch(self, audit: AuditLog) -> None:
        """Watch everything a client reports (pass ``client.audit``)."""
        if not callable(getattr(audit, "subscribe", None)):
            raise InvalidRequest("watch() takes an AuditLog (such as client.audit)")
        audit.subscribe(self.observe_event)

    def observe_event(self, event: Event) -> None:
        """Listener for :class:`~securetrade.record.AuditLog`: reads the core's events."""
        if not (
            isinstance(getattr(event, "kind", None), str)
            and isinstance(getattr(event, "fields", None), Mapping)
            and isinstance(getattr(event, "at", None), (int, float))
        ):
            raise InvalidRequest("observe_event() takes an audit Event (kind, fields, at)")
        activity = activity_of(event.kind, event.fields, event.at)
        if activity is not None:
            self.observe(activity)

    def _publish(self, alert: Alert) -> None:
        log.log(int(alert.severity), "%s %s", alert, dict(alert.numbers))
        for callback in list(self._callbacks):
            callback(alert)
        if alert.severity is Severity.CRITICAL and self.kill_switch is not None:
            self.kill_switch.engage(
                f"anomaly {alert.detector}: {alert.message}",
                cancel_open=self.cancel_open_on_kill,
            )


def activity_of(kind: str, fields: Mapping[str, Any], at: float) -> Activity | None:
    """The activity an audit event stands for, if it is one the detectors watch."""
    if kind == "order.intent" and fields.get("new", True):
        quantity = fields.get("quantity")
        return Activity(
            "order",
            at,
            symbol=fields.get("symbol"),
            quantity=None if quantity is None else Decimal(str(quantity)),
            client_order_id=fields.get("client_order_id"),
        )
    if kind == "order.canceled":
        return Activity(
            "cancel", at, symbol=fields.get("symbol"), client_order_id=fields.get("client_order_id")
        )
    if kind in ("auth.rejected", "scope.refused"):
        return Activity("rejection", at, reason=str(fields.get("reason", "credentials")))
    if kind in ("withdraw.attempt", "withdraw.refused"):
        amount = fields.get("amount")
        return Activity(
            "withdrawal",
            at,
            symbol=fields.get("asset"),
            quantity=None if amount is None else Decimal(str(amount)),
            reason="refused" if kind == "withdraw.refused" else None,
        )
    return None
