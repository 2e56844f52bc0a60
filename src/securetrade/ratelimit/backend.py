"""Where the windows live: the contract every rate-limit backend fulfils.

The :class:`~securetrade.ratelimit.RateLimiter` turns a call into *draws*: for each limit
the call touches, the log it spends from (one per kind of cost and scope, the same name in
every process that shares it), the window length, the most the call's priority may fill,
and the cost. Every window over one log sees every unit spent from it, whichever limits
the spender was configured with, so a table swapped in one process (the venue's published
limits replacing the built-in ones) never hides what another process spent.

A backend admits all draws or none, atomically, and otherwise says how long to wait. An
admission made with :meth:`Backend.admit` is *in flight*: it occupies every window of its
logs until :meth:`Backend.land` says the request can no longer reach the venue (its answer
came back, or its transport gave up), and only then starts leaving them, one window length
later. That is how the venue counts it: at its arrival, which is somewhere in between.
Server feedback (usage the venue reports, its 429 pause and 418 ban) is written to the
same backend, so every process that shares it learns from every answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from .._checks import LARGEST, LONGEST, is_text, number, text
from ..errors import InvalidRequest

__all__ = ["Backend", "Draw"]


class Draw(NamedTuple):
    """``cost`` units from the log ``bucket``, if its ``seconds`` window stays <= ``ceiling``."""

    bucket: str
    seconds: float
    ceiling: int
    cost: int


class Backend(ABC):
    """Shared window state. ``shared`` says whether other processes can see it."""

    shared: bool = False
    #: The type of every admission :meth:`admit` returns, when the backend gives them one
    #: of their own: the limiter refuses any other value before :meth:`land` sees it (a
    #: wrong argument is the caller's :class:`~securetrade.errors.InvalidRequest`, while an
    #: error raised inside :meth:`land` stays the backend's own). ``None``: not declared,
    #: every value is passed on.
    admission_type: type | None = None

    @abstractmethod
    def compile(self, pause_key: str, draws: Sequence[Draw], *, flight: float = 60.0) -> Any:
        """Prepare a reusable plan for one shape of call (made once, used for every call).

        ``flight`` bounds how long an admission of this plan can stay in flight: a shared
        backend counts an admission whose process died without landing it as landed then.
        """

    @abstractmethod
    def acquire_at(self, plan: Any) -> tuple[float, float]:
        """Take every draw of ``plan`` or none, dated now: ``(0.0, when)`` if taken, else
        ``(wait, when)``.

        ``when`` is the backend's clock at the decision (Redis's TIME for Redis), so grants
        from many processes can be compared on one time line.
        """

    def acquire(self, plan: Any) -> float:
        """:meth:`acquire_at` without the time: 0.0 if taken, else the wait."""
        return self.acquire_at(plan)[0]

    @abstractmethod
    def admit(self, plan: Any) -> tuple[float, Any]:
        """Take every draw of ``plan`` or none, in flight: ``(0.0, admission)`` if taken,
        else ``(wait, None)``. The admission counts in every window of its logs from now
        until :meth:`land` and one window length after."""

    @abstractmethod
    def land(self, admission: Any, reports: Sequence[tuple[str, float, int]] = ()) -> None:
        """``admission`` can no longer reach the venue: date it now. Then :meth:`reconcile`
        ``reports`` (in the same step, so the venue's count that includes this request is
        compared with ours that includes it too)."""

    @abstractmethod
    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        """For each ``(bucket, seconds, reported)``: raise that window's usage to
        ``reported`` if the venue counts more than has landed with us (one call per
        response, all headers at once)."""

    @abstractmethod
    def pause(self, key: str, seconds: float) -> None:
        """Refuse every call under ``key`` for ``seconds`` (never shortening a pause)."""

    @abstractmethod
    def paused_for(self, key: str) -> float:
        """Seconds left of the pause under ``key``, else 0."""

    @abstractmethod
    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        """Current usage of each ``(bucket, seconds)`` window, admissions in flight included."""

    def close(self) -> None:  # noqa: B027 optional: the in-memory backend holds nothing
        """Release connections; the shared state itself stays."""


# The checks of a backend's public methods, for a caller that uses one directly (the
# limiter passes only what it built, which passes them): a hostile value is refused with
# InvalidRequest before any window is touched, never a TypeError from inside, nor a NaN
# window length kept.


def _length(value: Any) -> bool:
    """A window length: a positive finite number of seconds (NaN fails the comparison)."""
    kind = type(value)
    return (kind is float or kind is int) and 0 < value <= LONGEST


def checked_draws(draws: Any) -> Sequence[Draw]:
    """``compile``'s draws: a list of :class:`Draw` (empty for a call that costs
    nothing), each field of its type."""
    if type(draws) is not list and type(draws) is not tuple:
        raise InvalidRequest("draws must be a list of Draw(bucket, seconds, ceiling, cost)")
    for draw in draws:
        if not (
            isinstance(draw, Draw)
            and is_text(draw.bucket)
            and _length(draw.seconds)
            and type(draw.ceiling) is int
            and 0 <= draw.ceiling <= LARGEST
            and type(draw.cost) is int
            and 0 <= draw.cost <= LARGEST
        ):
            raise InvalidRequest(
                "each draw must be a Draw of a bucket name, a window length in seconds, "
                "and a ceiling and a cost that are whole numbers of at least 0"
            )
    return cast("Sequence[Draw]", draws)


class Reports(list[tuple[str, float, int]]):
    """Reports the limiter built from a venue's headers (its own buckets and window
    lengths, a whole number it parsed): checked where built, so not again on every
    landing (the per-report check costs a few thousand instructions a request)."""

    __slots__ = ()


def checked_reports(reports: Any) -> Sequence[tuple[str, float, int]]:
    """``land``'s and ``reconcile``'s reports: a list of ``(bucket, seconds, used)``."""
    kind = type(reports)
    if kind is Reports:
        return cast("Reports", reports)
    if kind is not list and kind is not tuple:
        raise InvalidRequest("reports must be a list of (bucket, seconds, used) tuples")
    for report in reports:
        if not (
            type(report) is tuple
            and len(report) == 3
            and is_text(report[0])
            and _length(report[1])
            and type(report[2]) is int
            and 0 <= report[2] <= LARGEST
        ):
            raise InvalidRequest(
                "each report must be (bucket name, window length in seconds, units used as "
                "a whole number of at least 0)"
            )
    return cast("Sequence[tuple[str, float, int]]", reports)


def checked_buckets(buckets: Any) -> Sequence[tuple[str, float]]:
    """``used``'s windows: a list of ``(bucket, seconds)``."""
    if type(buckets) is not list and type(buckets) is not tuple:
        raise InvalidRequest("buckets must be a list of (bucket, seconds) tuples")
    for bucket in buckets:
        if not (
            type(bucket) is tuple and len(bucket) == 2 and is_text(bucket[0]) and _length(bucket[1])
        ):
            raise InvalidRequest("each bucket must be (bucket name, window length in seconds)")
    return buckets


def checked_pause(key: Any, duration: Any = 0.0) -> tuple[str, float]:
    """``pause``'s key and seconds (``paused_for``'s key). No bound on the seconds but
    a finite float's: a venue's Retry-After of a year pauses for a year."""
    return text("pause key", key), number("pause (seconds)", duration, least=0)
