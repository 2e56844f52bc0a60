"""Where the windows live: the contract every rate-limit backend fulfils.

The :class:`~securetrade.ratelimit.RateLimiter` turns a call into *draws*: for each limit
the call touches, the bucket (a name that is the same in every process that shares the
limit), the window length, the most the call's priority may fill, and the cost. A backend
admits all of them or none, atomically, and otherwise says how long to wait. Server
feedback (usage the venue reports, its 429 pause and 418 ban) is written to the same
backend, so every process that shares it learns from every answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["Backend", "Draw"]


class Draw(NamedTuple):
    """``cost`` units from ``bucket`` (a ``seconds``-long window), if it stays <= ``ceiling``."""

    bucket: str
    seconds: float
    ceiling: int
    cost: int


class Backend(ABC):
    """Shared window state. ``shared`` says whether other processes can see it."""

    shared: bool = False

    @abstractmethod
    def compile(self, pause_key: str, draws: Sequence[Draw]) -> Any:
        """Prepare a reusable plan for one shape of call (made once, used for every call)."""

    @abstractmethod
    def acquire_at(self, plan: Any) -> tuple[float, float]:
        """Take every draw of ``plan`` or none: ``(0.0, when)`` if taken, else ``(wait, when)``.

        ``when`` is the backend's clock at the decision (Redis's TIME for Redis), so grants
        from many processes can be compared on one time line.
        """

    def acquire(self, plan: Any) -> float:
        """:meth:`acquire_at` without the time: 0.0 if taken, else the wait."""
        return self.acquire_at(plan)[0]

    @abstractmethod
    def reconcile(self, reports: Sequence[tuple[str, float, int]]) -> None:
        """For each ``(bucket, seconds, reported)``: raise the bucket's usage to ``reported``
        if the venue counts more than we do (one call per response, all headers at once)."""

    @abstractmethod
    def pause(self, key: str, seconds: float) -> None:
        """Refuse every call under ``key`` for ``seconds`` (never shortening a pause)."""

    @abstractmethod
    def paused_for(self, key: str) -> float:
        """Seconds left of the pause under ``key``, else 0."""

    @abstractmethod
    def used(self, buckets: Sequence[tuple[str, float]]) -> list[int]:
        """Current usage of each ``(bucket, seconds)``."""

    @abstractmethod
    def seed(self, target: str, source: str, seconds: float) -> None:
        """Start an empty ``target`` window with what ``source`` spent in the last ``seconds``."""

    def close(self) -> None:  # noqa: B027 optional: the in-memory backend holds nothing
        """Release connections; the shared state itself stays."""
