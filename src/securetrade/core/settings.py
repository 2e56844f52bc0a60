"""The pipeline's tunables, checked when they are made.

A setting that would weaken a guarantee is refused here, with a typed error, before any
client exists: a negative settle margin turns one delayed answer into two orders; zero
attempts or clock samples leave an order path that cannot work.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .._checks import flag, instance, seconds, whole
from .retry import RetryPolicy

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Tunables of the pipeline. The defaults suit a bot on a normal network.

    ``retry`` decides how often and how soon a request is sent again (tenacity strategies);
    every order resend reuses the client order id and is signed afresh. ``settle_ms`` is
    added to a request's venue deadline before "not found" counts as proof that it never
    executed (it covers the venue's internal queueing after its gateway check).
    """

    max_attempts: int = 4  # sends of one request, retries included (the default stop)
    max_rate_wait: float = 30.0  # longest a venue-imposed pause is waited out, seconds
    settle_ms: int = 10_000  # margin after a request's venue deadline, see above
    resolve_timeout: float = 60.0  # how long to keep asking about an ambiguous order, seconds
    clock_samples: int = 3  # /time round trips per clock sync
    recover_on_start: bool = True  # reconcile the journal before this client's first order
    owner_patience: float = 60.0  # seconds before a PENDING intent of a silent owner is taken
    # An account's reconciliation lease, seconds. Its holder renews it at every step, so a
    # live reconciler keeps it however long it works, and one that died frees the account
    # for the next process within this time (a copy worker taking over a dead one's events
    # waits it out: see docs/copy-trading.md, "The takeover bound").
    recovery_lease: float = 10.0
    retry: RetryPolicy | None = None  # None: RetryPolicy(max_attempts=max_attempts)
    # A 429/418 answer to an order is ambiguous: for a proxy or gateway that may forward
    # the order, then answer "rate limited" itself. The venue is then asked before a resend.
    ambiguous_rate_limits: bool = False

    def __post_init__(self) -> None:
        whole("Settings.max_attempts", self.max_attempts, 1, 1_000)
        seconds("Settings.max_rate_wait", self.max_rate_wait, least=0)
        whole("Settings.settle_ms", self.settle_ms, 0, 3_600_000)
        seconds("Settings.resolve_timeout", self.resolve_timeout, least=0.001)
        whole("Settings.clock_samples", self.clock_samples, 1, 100)
        seconds("Settings.owner_patience", self.owner_patience, least=0.001)
        seconds("Settings.recovery_lease", self.recovery_lease, least=0.1, most=3_600.0)
        flag("Settings.recover_on_start", self.recover_on_start)
        flag("Settings.ambiguous_rate_limits", self.ambiguous_rate_limits)
        instance("Settings.retry", self.retry, RetryPolicy)

    def retry_policy(self) -> RetryPolicy:
        """The retry policy in force: ``retry`` if given, else one of ``max_attempts`` attempts."""
        return self.retry or RetryPolicy(max_attempts=self.max_attempts)

    def __repr__(self) -> str:
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != f.default
        ]
        return f"Settings({', '.join(changed)})"
