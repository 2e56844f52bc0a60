"""Copy-trading latency rows: what healthy followers see, with and without bad neighbours.

- ``copy_healthy_p99_with_bad_followers``: the p99 fan-out latency of N healthy followers
  when one more follower is quarantined (its key unknown to the venue) and one more is
  throttled by its venue (every order answered 429, Retry-After 1 s), against the same
  N followers alone. Both engines share the simulator process; their events alternate,
  so the two sides see the same machine.
- ``copy_latency_p99_100`` and ``copy_latency_p99_1000``: the fan-out latency of one
  event (from its start to each follower's placed order), p99 with p50 in the note: SDK
  overhead plus one loopback round trip per follower, our own published "latency claim".
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from securetrade.core import Journal
from securetrade.keys import ApiKey, Scope
from securetrade.models import Side

from ._orders import CpuPlan, SimProcess, _order, _pinned
from ._report import Row, failed_row
from ._timing import Effort

__all__ = ["health_rows"]

_FOLLOWERS = {"full": 1000, "quick": 300, "smoke": 10}
# Events per side. One 1,000-follower event's p99 moves by 2x between events on a machine
# shared with other jobs (420-1,075 ms in one run, 1,870 ms once): three a side read the
# ratio anywhere from 0.78 to 1.47 in five runs of unchanged code, so seven a side, each
# pair alternating who goes first, and the per-pair ratios' spread in the note.
_ROUNDS = {"full": 7, "quick": 3, "smoke": 1}


def health_rows(effort: Effort, plan: CpuPlan) -> list[Row]:
    n = _FOLLOWERS.get(effort.label, 1000)
    rounds = _ROUNDS.get(effort.label, 7)
    with (
        _pinned(plan.client),
        SimProcess(n, plan.server, fast=True, timeout=600, kraken=1) as server,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-health-") as tmp,
    ):
        figures = asyncio.run(_measure(server, n, rounds, tmp))
    return _rows(figures, n, rounds, plan)


async def _measure(server: SimProcess, n: int, rounds: int, tmp: str) -> dict[str, Any]:
    from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode

    venue = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
    connect = {"binance": venue, "kraken": venue}
    price = _order().price
    assert price is not None  # the benchmark's order is a limit
    run = secrets.token_hex(4)

    def follower(name: str, key: ApiKey, **over: Any) -> Follower:
        return Follower(name, key, Sizing(SizingMode.FIXED_QUANTITY, Decimal("0.001")),
                        slippage_bps=Decimal(0), ttl_ms=600_000, **over)  # fmt: skip

    def engine(tag: str) -> CopyEngine:
        return CopyEngine(
            secret=secrets.token_bytes(32),
            connect=connect,
            journal=Journal(Path(tmp) / f"{tag}.sqlite3", synchronous="FULL"),
        )

    def event(tag: str) -> LeaderEvent:
        return LeaderEvent(
            f"{run}-{tag}", "BTCUSDT", Side.BUY, Decimal("0.001"), price, int(time.time() * 1000)
        )

    alone, crowded, small = engine("alone"), engine("crowded"), engine("small")
    for i in range(n):
        alone.add(follower(f"h{i}", server.api_key(i)))
        crowded.add(follower(f"h{i}", server.api_key(i)))
    for i in range(min(100, n)):
        small.add(follower(f"h{i}", server.api_key(i)))
    unknown = ApiKey("binance", "k-unknown-bench-0000001", "not-a-real-secret",
                     scopes=(Scope.READ, Scope.TRADE))  # fmt: skip
    crowded.add(follower("quarantined", unknown))
    crowded.add(follower("throttled", server.api_key(0, "kraken"), symbols={"BTCUSDT": "XBTUSDT"}))
    figures: dict[str, Any] = {"alone": [], "crowded": [], "small": [], "counts": None}
    for name, each in (("alone", alone), ("crowded", crowded), ("small", small)):
        await each.copy(event(f"warm-{name}"))  # balances read once; the bad key quarantined
    server.command("storm")  # from now on the throttled follower's venue answers 429
    order = [("alone", alone), ("crowded", crowded), ("small", small)]
    for r in range(rounds):
        for name, each in order if r % 2 == 0 else order[1::-1] + order[2:]:  # swap who goes first
            report = await each.copy(event(f"{name}-{r}"))
            figures[name].append((report.latency_ms(0.5), report.latency_ms(0.99)))
            if name == "crowded":
                figures["counts"] = report.counts
    for each in (alone, crowded, small):
        await each.aclose()
    return figures


def _median(pairs: list[tuple[float | None, float | None]], which: int) -> float | None:
    values = [p[which] for p in pairs if p[which] is not None]
    return statistics.median(values) if values else None  # type: ignore[type-var]


def _rows(figures: dict[str, Any], n: int, rounds: int, plan: CpuPlan) -> list[Row]:
    alone99, crowded99 = _median(figures["alone"], 1), _median(figures["crowded"], 1)
    if alone99 is None or crowded99 is None:
        return [failed_row("copy_healthy_p99_with_bad_followers", "ms p99", "no follower placed")]
    pairs = [
        c[1] / a[1]
        for a, c in zip(figures["alone"], figures["crowded"], strict=True)
        if a[1] and c[1] is not None
    ]
    spread = f"; per-event ratios {min(pairs):.2f}-{max(pairs):.2f}" if pairs else ""
    rows = [
        Row(
            "copy_healthy_p99_with_bad_followers",
            crowded99,
            alone99,
            "ms p99",
            peer_name=f"the same {n} followers without the two bad ones",
            note=f"{n} healthy followers + one quarantined + one answered 429 on every order "
            f"(outcomes {figures['counts']}); median of {rounds} alternating events per side"
            f"{spread}; {plan.describe()}",
        )
    ]
    for name, count, pairs in (
        ("copy_latency_p99_100", min(100, n), figures["small"]),
        ("copy_latency_p99_1000", n, figures["alone"]),
    ):
        p50, p99 = _median(pairs, 0), _median(pairs, 1)
        rows.append(
            Row(
                name,
                p99,
                None,
                "ms p99",
                note=f"{count} followers, one order each over loopback TLS, from the event's "
                f"start to each placed order: p50 {p50 or float('nan'):.0f} ms; median of "
                f"{rounds} events; SDK overhead plus one venue round trip",
            )
        )
    return rows
