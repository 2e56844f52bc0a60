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
from typing import Any, NamedTuple

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
