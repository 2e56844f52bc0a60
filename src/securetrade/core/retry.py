"""When to try again and how long to wait first: tenacity's stop and wait strategies.

The flows cannot hand a callable to ``tenacity.Retrying`` (they yield their waits to a
driver, sync or async), so they ask a :class:`RetryPolicy` after each failed attempt and
yield the answer. Any tenacity ``stop_*``/``wait_*`` strategy, combined as tenacity allows,
can be passed in :class:`~securetrade.core.Settings`. tenacity is imported on the first
failure only: a run without retries never pays for loading it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._checks import function, safe_repr, seconds, whole

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["Attempts", "RetryPolicy"]


class RetryPolicy:
    """A stop and a wait strategy. ``None`` means the default: at most ``max_attempts``
    sends within ``max_delay`` seconds, exponential backoff with jitter between them."""

    __slots__ = ("_stop", "_wait", "max_attempts", "max_delay")

    def __init__(
        self,
        stop: Any | None = None,
        wait: Any | None = None,
        *,
        max_attempts: int = 4,
        max_delay: float = 60.0,
    ) -> None:
        # A strategy is called with tenacity's retry state: a tenacity ``stop_*``/``wait_*``
        # object or any function of it. Anything else would fail on the first retry, after
        # a send, so it is refused here.
        self._stop = function("RetryPolicy.stop (a tenacity stop strategy)", stop, optional=True)
        self._wait = function("RetryPolicy.wait (a tenacity wait strategy)", wait, optional=True)
        self.max_attempts = whole("RetryPolicy.max_attempts", max_attempts, 1)
        self.max_delay = seconds("RetryPolicy.max_delay", max_delay, above=0)

    def start(self, started: float | None = None) -> Attempts:
        """Track one request's attempts; ``started`` is when the first began (monotonic)."""
        return Attempts(self, time.monotonic() if started is None else started)

    def strategies(self) -> tuple[Any, Any]:
        """The (stop, wait) pair, defaults built on first use."""
        if self._stop is None or self._wait is None:
            from tenacity import stop_after_attempt, stop_after_delay, wait_exponential, wait_random

            if self._stop is None:
                self._stop = stop_after_attempt(self.max_attempts) | stop_after_delay(
                    self.max_delay
                )
            if self._wait is None:
                # 0.05 s doubling to 2 s, plus up to 50 ms of jitter. Built from the two
                # strategies every tenacity since 8.2 has (``wait_exponential_jitter`` takes
                # ``multiplier`` only in releases after 9.1.2).
                self._wait = wait_exponential(multiplier=0.05, max=2.0) + wait_random(0, 0.05)
        return self._stop, self._wait

    @safe_repr
    def __repr__(self) -> str:
        return f"RetryPolicy(max_attempts={self.max_attempts}, max_delay={self.max_delay})"


class Attempts:
    """The attempts of one request so far, as tenacity sees them."""

    __slots__ = ("_policy", "_state")

    def __init__(self, policy: RetryPolicy, started: float) -> None:
        from tenacity import RetryCallState

        self._policy = policy
        self._state: RetryCallState = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        self._state.start_time = started

    @property
    def number(self) -> int:
        """The attempt now being made (1 for the first)."""
        return self._state.attempt_number

    def failed(self, error: BaseException, *, at_least: float = 0.0) -> float | None:
        """Record a failed attempt: the wait before the next one, or ``None`` to give up.

        ``at_least`` is a pause the venue asked for (Retry-After); the wait is never shorter.
        """
        stop, wait = self._policy.strategies()
        self._state.set_exception((type(error), error, None))
        if stop(self._state):
            return None
        pause = max(float(wait(self._state)), at_least)
        self._state.idle_for += pause
        self._state.prepare_for_next_attempt()
        return pause
