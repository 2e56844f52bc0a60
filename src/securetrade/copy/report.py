"""What a fan-out did: each follower's outcome for one event, readable in a notebook."""

from __future__ import annotations

import html
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .model import LeaderEvent
from .outbox import Outcome

__all__ = ["EventReport"]


@dataclass(frozen=True, slots=True)
class EventReport:
    """Every follower's outcome for ``event`` (placed, skipped with its reason, failed with
    its reason, quarantined, or unresolved: not concluded yet, resumed later), and how
    long the fan-out took from its start to the last follower's answer."""

    event: LeaderEvent
    outcomes: tuple[Outcome, ...]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        """How many outcomes of each status (placed, skipped, failed, quarantined, unresolved)."""
        return dict(Counter(o.status for o in self.outcomes))

    @property
    def complete(self) -> bool:
        """Every follower has a final outcome (nothing left to resume)."""
        return all(o.status != "unresolved" for o in self.outcomes)

    def latency_ms(self, quantile: float) -> float | None:
        """A quantile (0-1) of the placed followers' latencies, in milliseconds."""
        values = sorted(o.latency_ms for o in self.outcomes if o.latency_ms is not None)
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        index = min(98, max(0, round(quantile * 100) - 1))
        return cuts[index]

    def to_pandas(self) -> Any:
        """One row per follower and leg (the ``pandas`` extra)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "follower": o.follower_id,
                    "leg": o.leg,
                    "status": o.status,
                    "reason": o.reason,
                    "client_order_id": o.client_order_id,
                    "order_id": o.order_id,
                    "latency_ms": o.latency_ms,
                }
                for o in self.outcomes
            ]
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (
                    o.follower_id,
                    o.status,
                    o.reason,
                    o.order_id or "",
                    "" if o.latency_ms is None else f"{o.latency_ms:.1f}",
                )
            )
            + "</tr>"
            for o in self.outcomes[:200]
        )
        more = len(self.outcomes) - 200
        tail = f"<tr><td colspan=5>... {more} more</td></tr>" if more > 0 else ""
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        return (
            f"<p><b>copy of {html.escape(self.event.id)}</b> ({counts}; "
            f"{self.seconds * 1000:.0f} ms)</p><table><tr><th>follower</th><th>status</th>"
            f"<th>reason</th><th>order</th><th>ms</th></tr>{rows}{tail}</table>"
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"EventReport({self.event.id!r}, {counts}, {self.seconds * 1000:.0f} ms)"
