"""Exact sliding-window limits per scope, with priorities, server feedback and backends.

Every kind of cost is a log of (time, cost) entries per scope (the in-memory backend folds
each millisecond into one entry dated by its latest admission), and every configured limit
is a window over that log: no window of ``seconds`` ever holds more than the limit less the
safety margin, at any boundary, which also makes it correct for a venue's clock-aligned
fixed windows. A call draws on several limits at once (a Binance order weighs on
REQUEST_WEIGHT per IP and on ORDERS per account, per 10 s and per day) and is admitted only
when all have room; the wait is computed from the log, never polled.

The venue counts a request when it arrives, which is after we admitted it (a fresh TLS
connection alone takes 0.1-0.3 s). So the client admits with :meth:`RateLimiter.admit`:
the request occupies its windows from admission until :meth:`RateLimiter.landed` (its
answer came back, or its transport gave up, so it can no longer arrive), and leaves them
one window length after that. Where the logs live is the backend's business: this process
(:meth:`RateLimiter.in_memory`), processes on one host (:meth:`RateLimiter.sqlite`) or
processes on many hosts (:meth:`RateLimiter.redis`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._checks import number, safe_repr, shown, text, whole
from .._checks import seconds as duration
from ..errors import InvalidRequest
from . import metrics
from .backend import Backend, Draw, Reports
from .history import History, Series
from .memory import MemoryBackend
from .model import DEFAULT_SHARES, Caller, LimitScope, Priority, RateLimit, Usage

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = ["RateLimiter"]

_Key = tuple[int, "str | None", "Caller | None"]
_Plans = list[dict[_Key, tuple[Mapping[str, int], Any]]]


class RateLimiter:
    """Admits calls against every limit they draw on; learns from the venue's answers.

    ``limits`` are the venue's limits; leave them out to take the venue's table and then
    what the venue publishes (Binance ``exchangeInfo``). ``margin`` keeps that share of
    every limit unused, for traffic the venue counts but we cannot see. ``shares`` is the
    part of each window a :class:`Priority` may fill (the rest is headroom for the classes
    above it). ``ip`` names the egress address: limiters sharing a backend and an ``ip``
    share the venue's per-IP budget. ``account`` names the account behind the keys (by
    default each key is its own account). ``max_flight`` is the longest a request can take
    to reach the venue once admitted: shared backends count an admission whose process died
    before landing it as landed then. Thread-safe.
    """

    def __init__(
        self,
        limits: Iterable[RateLimit] | None = None,
        *,
        backend: Backend | None = None,
        margin: float = 0.1,
        shares: Mapping[Priority, float] | None = None,
        ip: str = "default",
        account: str | None = None,
        namespace: str = "securetrade",
        default_pause: float = 60.0,
        max_flight: float = 60.0,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        limits = _check_options(limits, backend, margin, ip, account, namespace)
        duration("default_pause", default_pause, above=0)
        duration("max_flight", max_flight, above=0)
        self._margin = margin
        self._shares = _shares(shares)
        self._ip = ip
        self._account = account
        self._namespace = namespace
        self._venue = ""
        self._default_pause = default_pause
        self._max_flight = float(max_flight)
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self._acquire = self.backend.acquire
        self._acquire_at = self.backend.acquire_at
        self._admit = self.backend.admit
        self._admission_type = self.backend.admission_type
        self._lock = threading.Lock()  # guards configuration, never held across I/O waits
        self._limits: tuple[RateLimit, ...] = tuple(limits) if limits is not None else ()
        self._given = limits is not None
        self._plans: _Plans = _no_plans()  # per priority (a list: IntEnum hashing is slow)
        self._last: tuple[Any, ...] = _NO_LAST  # the last plan used: a bot repeats its calls
        self._headers: dict[tuple[Caller | None, str | None], list[tuple[str, str, float]]] = {}
        # (id of limit, bucket) -> (limit, scope id): every window drawn on so far.
        self._seen: dict[tuple[int, str], tuple[RateLimit, str]] = {}
        self._meter_provider = meter_provider
        self._metrics: metrics.Instruments | None = None
        self.history = History()  # this process's grants, bounded: for usage charts
        self._granted = self.history.add

    # --- one setting for the backend --------------------------------------------------------

    @classmethod
    def in_memory(
        cls,
        limits: Iterable[RateLimit] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> RateLimiter:
        """Windows in this process only: threads and tasks share them, processes do not."""
        return cls(limits, backend=MemoryBackend(clock), **options)

    @classmethod
    def sqlite(
        cls,
        path: str | Path,
        limits: Iterable[RateLimit] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> RateLimiter:
        """Windows in a SQLite file: every process on this host that opens it shares them."""
        from .sqlite import SQLiteBackend

        return cls(limits, backend=SQLiteBackend(path, clock=clock), **options)

    @classmethod
    def redis(
        cls, url: str | Any, limits: Iterable[RateLimit] | None = None, **options: Any
    ) -> RateLimiter:
        """Windows in Redis (a URL or a ``redis.Redis``): processes on many hosts share them."""
        from .redis import RedisBackend

        return cls(limits, backend=RedisBackend(url), **options)

    # --- configuration ----------------------------------------------------------------------

    @property
    def limits(self) -> list[RateLimit]:
        """The limits in force now (the venue's published ones once read)."""
        return list(self._limits)

    @property
    def venue(self) -> str:
        """The venue this limiter serves ("" until a client attaches it)."""
        return self._venue

    def attach(
        self, venue: str, table: Iterable[RateLimit], *, caller: Caller | None = None
    ) -> bool:
        """Serve ``venue`` (one per limiter); start from its ``table`` if given no limits.

        Returns whether the venue's published limits should replace ours when read, which
        is when nobody chose the limits. ``caller`` makes that key's and account's windows
        visible in :meth:`usage` before their first call.
        """
        text("venue", venue)
        fresh = _limit_list("table", table)
        _check_target(None, caller)
        with self._lock:
            if self._venue and self._venue != venue:
                raise InvalidRequest(
                    f"this rate limiter serves {self._venue!r}; make another for {shown(venue)}"
                )
            self._venue = venue
            if not self._limits and not self._given:
                self._limits = fresh
            for limit in self._limits:
                if limit.scope not in (LimitScope.INSTRUMENT, LimitScope.PAIR):
                    self._bucket(limit, caller, None)
            self._plans = _no_plans()
            self._last = _NO_LAST
            self._headers = {}
        return not self._given

    def configure(self, limits: Iterable[RateLimit]) -> None:
        """Replace the limits (with those the venue publishes), keeping what was spent.

        Nothing is copied: a new window reads the log that every limit of its kind and
        scope writes to, so it starts with every unit spent there, by any process and
        under any table, including those still in flight.
        """
        fresh = _limit_list("limits", limits)
        with self._lock:
            seen = set(self._seen.values())
            self._limits = fresh
            self._plans = _no_plans()
            self._last = _NO_LAST
            self._headers = {}
            self._seen = {}
            for old, scope_id in seen:
                for limit in fresh:
                    if limit.kind == old.kind and limit.scope is old.scope:
                        self._bucket_of(limit, scope_id)

    def adopt(self, published: Iterable[RateLimit]) -> None:
        """Take the limits the venue publishes, kind by kind: a kind it publishes gets the
        venue's limits, a kind it does not keep ours (the built-in table stays in force
        for whatever the venue has not told us). What was spent and what is in flight
        count in the new windows from their first moment (see :meth:`configure`)."""
        fresh = _limit_list("published", published)
        kinds = {limit.kind for limit in fresh}
        with self._lock:
            kept = tuple(limit for limit in self._limits if limit.kind not in kinds)
        self.configure(fresh + kept)

    @property
    def blocking(self) -> bool:
        """Whether its calls wait on a file or the network (a shared backend): the async
        client then makes them in a worker thread, off its event loop."""
        return not isinstance(self.backend, MemoryBackend)

    # --- admission --------------------------------------------------------------------------

    def admit(
        self,
        costs: Mapping[str, int],
        priority: Priority = Priority.NORMAL,
        *,
        symbol: str | None = None,
        caller: Caller | None = None,
    ) -> tuple[float, Any]:
        """Take ``costs`` for a request about to be sent: ``(0.0, admission)`` if every limit
        has room for ``priority``, else ``(wait, None)``.

        The admission holds its windows while the request is on its way: pass it to
        :meth:`landed` (or to :meth:`observe` with the answer) once the request can no
        longer reach the venue, whether it was answered, failed or never sent; it leaves
        each window one window length after that. A positive wait reserves nothing: wait
        that long and call again. ``symbol`` and ``caller`` pick the instrument, pair, key
        and account windows.
        """
        plan = self._plan(costs, priority, symbol, caller)
        answer: tuple[float, Any] = self._admit(plan)
        if answer[0] > 0.0:
            self._waited(priority, answer[0])
        else:
            self._granted((_monotonic(), id(plan)))
        return answer

    def _plan(
        self,
        costs: Mapping[str, int],
        priority: Priority,
        symbol: str | None,
        caller: Caller | None,
    ) -> Any:
        """The compiled plan for one call's arguments: the last call's when it is the same
        call again (an ``==`` of a caller's object never runs), else checked and looked
        up, compiled on first use."""
        last = self._last
        if (
            last[0] is costs
            and last[1] is priority
            and last[2] is caller
            and (last[3] is symbol or (type(symbol) is str and last[3] == symbol))
        ):
            return last[4]
        _check_call(costs, priority, symbol, caller)
        entry = self._plans[priority].get((id(costs), symbol, caller))
        if entry is None or entry[0] is not costs:
            entry = self._compile(costs, priority, symbol, caller)
        plan = entry[1]
        self._last = (costs, priority, caller, symbol, plan)
        return plan

    def landed(self, admission: Any) -> None:
        """The request ``admission`` let through can no longer reach the venue (answered,
        failed, timed out or never sent): its units start leaving their windows now."""
        if admission is not None:
            self._check_admission(admission)
            self.backend.land(admission)

    def _check_admission(self, admission: Any) -> None:
        """Refuse a value :meth:`admit` did not return, before the backend sees it: an
        error raised inside ``land`` is then the backend's own, never taken for the
        caller's (one type test per request)."""
        kind = self._admission_type
        if kind is not None and type(admission) is not kind:
            raise InvalidRequest(_ADMISSION)

    def reserve(
        self,
        costs: Mapping[str, int],
        priority: Priority = Priority.NORMAL,
        *,
        symbol: str | None = None,
        caller: Caller | None = None,
    ) -> float:
        """Take ``costs`` if every limit has room for ``priority`` and return 0.0; else the wait.

        The units are dated now, as if they reached the venue at once: for calls whose
        time on the way does not matter. A request to a venue uses :meth:`admit`. A
        positive result reserves nothing: wait that long and call again. ``symbol`` and
        ``caller`` pick the instrument, pair, key and account windows.
        """
        plan = self._plan(costs, priority, symbol, caller)
        wait: float = self._acquire(plan)
        if wait > 0.0:
            self._waited(priority, wait)
        else:
            self._granted((_monotonic(), id(plan)))
        return wait

    def reserve_at(
        self,
        costs: Mapping[str, int],
        priority: Priority = Priority.NORMAL,
        *,
        symbol: str | None = None,
        caller: Caller | None = None,
    ) -> tuple[float, float]:
        """:meth:`reserve`, and when it was decided on the backend's clock.

        For audits and for checking limits from outside: grants made by many processes
        through one Redis are all dated by that server's clock.
        """
        plan = self._plan(costs, priority, symbol, caller)
        wait, when = self._acquire_at(plan)
        if wait > 0.0:
            self._waited(priority, wait)
        else:
            self._granted((_monotonic(), id(plan)))
        return wait, when

    def _compile(
        self,
        costs: Mapping[str, int],
        priority: Priority,
        symbol: str | None,
        caller: Caller | None,
    ) -> tuple[Mapping[str, int], Any]:
        if not isinstance(priority, Priority):
            raise InvalidRequest(f"priority must be a Priority, not {shown(priority)}")
        if self._metrics is None:
            self._metrics = metrics.register(self, self._meter_provider)
        share = self._shares[priority]
        with self._lock:
            draws: dict[tuple[str, float], Draw] = {}
            marks: dict[str, int] = {}  # log name -> cost, for the usage history
            for limit in self._limits:
                cost = costs.get(limit.kind, 0)
                if not cost:
                    continue
                ceiling = max(1, math.floor(self._capacity(limit) * share))
                if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                    raise InvalidRequest(f"cost of {limit.kind} must be a whole number >= 0")
                if cost > ceiling:
                    raise InvalidRequest(
                        f"a call costing {cost} {limit.kind} can never pass: a "
                        f"{priority.name} call may fill at most {ceiling} of that window"
                    )
                bucket = self._bucket(limit, caller, symbol)
                window = (bucket, limit.seconds)
                if window in draws:  # the same window listed twice: the tighter limit holds
                    ceiling = min(ceiling, draws[window].ceiling)
                draws[window] = Draw(bucket, limit.seconds, ceiling, cost)
                marks.setdefault(bucket, cost)
            plan = self.backend.compile(
                self._pause_key(), list(draws.values()), flight=self._max_flight
            )
            self.history.describe(plan, marks.items())
            entry = (costs, plan)
            self._plans[priority][(id(costs), symbol, caller)] = entry
            return entry

    def _waited(self, priority: Priority, wait: float) -> None:
        instruments = self._metrics
        if instruments is not None:
            instruments.waits.add(1, {"venue": self._venue, "priority": priority.name.lower()})

    # --- what the venue tells us ------------------------------------------------------------

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        symbol: str | None = None,
        caller: Caller | None = None,
        landed: Any = None,
    ) -> None:
        """Reconcile with the venue's reported usage, and pause everyone on 429 or 418.

        ``landed`` is the admission of the request this answers (see :meth:`admit`): it is
        landed first, in the same step, so the venue's count (which includes the request)
        meets ours with the request in it too.
        """
        if not isinstance(headers, Mapping):
            raise InvalidRequest("headers must be the response's headers (a mapping)")
        if type(status) is not int:  # compared with 418 and 429: a hostile __eq__ ran
            raise InvalidRequest("status must be the response's HTTP status (an int)")
        reported = self._headers.get((caller, symbol)) if _target_ok(symbol, caller) else None
        if reported is None:
            _check_target(symbol, caller)
            with self._lock:
                reported = [
                    (limit.header, self._bucket(limit, caller, symbol), limit.seconds)
                    for limit in self._limits
                    if limit.header is not None
                ]
                self._headers[(caller, symbol)] = reported
        reports = Reports()  # checked here: the backend takes it as it is
        for header, bucket, seconds in reported:
            value = headers.get(header)
            # ASCII digits only, and fewer than a 64-bit count has: int() refuses "²" and
            # 5,000 digits with a ValueError; a venue that sends either reports nothing.
            if type(value) is str and value.isascii() and value.isdigit() and len(value) < 19:
                used = int(value)
                if used > 0:
                    reports.append((bucket, seconds, used))
        if landed is not None:
            self._check_admission(landed)
            self.backend.land(landed, reports)
        elif reports:
            self.backend.reconcile(reports)
        if status in (418, 429):
            retry_after = _parse_retry_after(headers.get("retry-after"))
            pause = retry_after if retry_after is not None else self._default_pause
            self.backend.pause(self._pause_key(), pause)

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause the venue imposed on our IP (429/418), else 0."""
        return self.backend.paused_for(self._pause_key())

    # --- visibility -------------------------------------------------------------------------

    def usage(self) -> list[Usage]:
        """Every window this limiter has drawn on (per scope), with its usage right now."""
        with self._lock:
            rows: list[tuple[str, RateLimit, str]] = []
            for limit in self._limits:
                mine = sorted(
                    (scope_id, bucket)
                    for (_, bucket), (seen, scope_id) in self._seen.items()
                    if seen is limit
                )
                if not mine:  # nobody has called yet: the window as a caller-less call sees it
                    scope_id = self._scope_id(limit.scope, None, None)
                    mine = [(scope_id, self._name(limit, scope_id))]
                rows += [(bucket, limit, scope_id) for scope_id, bucket in mine]
        used = self.backend.used([(bucket, limit.seconds) for bucket, limit, _ in rows])
        return [
            Usage(limit, scope_id, spent, self._capacity(limit))
            for (_, limit, scope_id), spent in zip(rows, used, strict=True)
        ]

    def usage_history(self, minutes: float = 5.0, *, points: int = 300) -> list[Series]:
        """Each window's occupancy by this process's grants over the last ``minutes``, at
        ``points`` instants (oldest first), with its usable capacity: what
        ``client.limits.plot()`` draws. Kept in a bounded log (see ``ratelimit.history``)."""
        number("minutes", minutes, above=0, most=24 * 60)
        whole("points", points, 2, 10_000)
        with self._lock:
            current = {id(limit) for limit in self._limits}
            windows = [
                (limit, scope_id, name)
                for (_, name), (limit, scope_id) in self._seen.items()
                if id(limit) in current
            ]
        return self.history.series(
            windows,
            now=_monotonic(),
            seconds=minutes * 60.0,
            points=points,
            capacity=self._capacity,
        )

    def close(self) -> None:
        """Release the backend's connections (the shared state stays)."""
        self.backend.close()

    @safe_repr
    def __repr__(self) -> str:
        return (
            f"RateLimiter(venue={self._venue!r}, backend={type(self.backend).__name__}, "
            f"limits={len(self._limits)}, ip={self._ip!r})"
        )

    # --- naming -----------------------------------------------------------------------------

    def _capacity(self, limit: RateLimit) -> int:
        return max(1, math.floor(limit.limit * (1.0 - self._margin)))

    def _scope_id(self, scope: LimitScope, caller: Caller | None, symbol: str | None) -> str:
        key_id = "-" if caller is None else caller.key
        account = self._account or ("-" if caller is None else caller.account)
        if scope is LimitScope.IP:
            return self._ip
        if scope is LimitScope.ACCOUNT:
            return account
        if scope is LimitScope.API_KEY:
            return key_id
        return f"{account if scope is LimitScope.INSTRUMENT else key_id}/{symbol or '*'}"

    def _name(self, limit: RateLimit, scope_id: str) -> str:
        # One log per kind and scope, whatever the window: every limit over it (ours, the
        # venue's published ones, another process's) reads what all of them spent.
        # The {hash tag} keeps every key of a namespace in one Redis Cluster slot.
        return f"{{{self._namespace}}}:{self._venue}:{limit.kind}:{limit.scope.value}:{scope_id}"

    def _bucket(self, limit: RateLimit, caller: Caller | None, symbol: str | None) -> str:
        return self._bucket_of(limit, self._scope_id(limit.scope, caller, symbol))

    def _bucket_of(self, limit: RateLimit, scope_id: str) -> str:
        name = self._name(limit, scope_id)
        self._seen[(id(limit), name)] = (limit, scope_id)
        return name

    def _pause_key(self) -> str:
        return f"{{{self._namespace}}}:{self._venue}:pause:ip:{self._ip}"


_NO_LAST: tuple[Any, ...] = (None, None, None, None, None)
_monotonic = time.monotonic


def _no_plans() -> _Plans:
    return [{} for _ in Priority]


def _check_options(
    limits: Any, backend: Any, margin: Any, ip: Any, account: Any, namespace: Any
) -> tuple[RateLimit, ...] | None:
    """The constructor's arguments, refused with a typed error when they cannot be used."""
    chosen: tuple[RateLimit, ...] | None = None
    if limits is not None:
        if isinstance(limits, (str, bytes)) or not hasattr(limits, "__iter__"):
            raise InvalidRequest("limits must be a list of RateLimit (or None for the venue's)")
        chosen = tuple(limits)
        if not all(isinstance(limit, RateLimit) for limit in chosen):
            raise InvalidRequest("limits must be a list of RateLimit")
    if backend is not None and not all(
        callable(getattr(backend, name, None)) for name in ("acquire", "compile", "pause")
    ):
        raise InvalidRequest(
            "backend must be a rate-limit backend; use RateLimiter.sqlite(path) or "
            "RateLimiter.redis(url) for shared windows"
        )
    number("margin", margin, least=0, most=0.99)
    for name, value in (("ip", ip), ("account", account), ("namespace", namespace)):
        if value is not None and (text(name, value) and "}" in value):
            raise InvalidRequest(f"{name} must be non-empty printable text without '}}'")
    return chosen


_ADMISSION = (
    "admission must be the second item admit() returned for that request, "
    "or None when admit() returned a wait"
)


def _limit_list(name: str, limits: Any) -> tuple[RateLimit, ...]:
    """A list of :class:`RateLimit`, refused with a typed error otherwise."""
    if isinstance(limits, (str, bytes)) or not hasattr(limits, "__iter__"):
        raise InvalidRequest(f"{name} must be a list of RateLimit")
    chosen = tuple(limits)
    if not all(isinstance(limit, RateLimit) for limit in chosen):
        raise InvalidRequest(f"{name} must be a list of RateLimit")
    return chosen


def _target_ok(symbol: Any, caller: Any) -> bool:
    """Whether ``symbol`` and ``caller`` may key a window (the common case, checked fast)."""
    return (symbol is None or type(symbol) is str) and (caller is None or type(caller) is Caller)


def _check_target(symbol: Any, caller: Any) -> None:
    """The instrument and the key/account a call spends, refused unless usable."""
    if symbol is not None:
        text("symbol", symbol)
    if caller is not None and not isinstance(caller, Caller):
        raise InvalidRequest("caller must be a securetrade.ratelimit.Caller (or None)")


def _check_call(costs: Any, priority: Any, symbol: Any, caller: Any) -> None:
    """A request's costs, priority and windows: checked before a plan is looked up."""
    if not isinstance(costs, Mapping):
        raise InvalidRequest("costs must map a limit kind to a whole number of units")
    if not isinstance(priority, Priority):
        raise InvalidRequest(f"priority must be a Priority, not {shown(priority, 40)}")
    _check_target(symbol, caller)


def _shares(shares: Mapping[Priority, float] | None) -> dict[Priority, float]:
    chosen = dict(DEFAULT_SHARES)
    if shares is not None:
        if not isinstance(shares, Mapping):
            raise InvalidRequest("shares must map each Priority to a fraction of a window")
        for priority, share in shares.items():
            if not isinstance(priority, Priority):
                raise InvalidRequest(f"shares are keyed by Priority, not {shown(priority)}")
            chosen[priority] = share
    previous = 0.0
    for priority in sorted(chosen):
        share = chosen[priority]
        if not (
            isinstance(share, (int, float)) and not isinstance(share, bool) and 0.0 < share <= 1.0
        ):
            raise InvalidRequest(f"the share of {priority.name} must be in (0, 1]")
        if share < previous:
            raise InvalidRequest("a higher priority must not get a smaller share than a lower one")
        previous = share
    return chosen


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
