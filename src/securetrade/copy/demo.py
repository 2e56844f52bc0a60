"""``securetrade demo copy``: one leader fill copied to 100 followers on two venues.

Among the followers: one whose key the venue does not know, one with no funds, one whose
venue has no mapping for the symbol; the venue loses some answers and throttles some
requests (429). The verdict comes from the simulator's own book: each follower holds at
most one order for the event, and every follower has an outcome with a reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from typing import TextIO

from ..keys import ApiKey
from ..models import Side
from ..sim import SimLimits, Simulator
from ..venues import get_venue
from .engine import CopyEngine
from .model import Follower, LeaderEvent, Sizing, SizingMode
from .plan import copy_key

__all__ = ["run_copy_demo"]

_FOLLOWERS = 100
_RICH = {"USDT": Decimal(100_000), "BTC": Decimal(1)}


def run_copy_demo(out: TextIO) -> int:
    """Run the copy demo, narrating to ``out``. Returns the process exit code."""
    return asyncio.run(_demo(out))


async def _demo(out: TextIO) -> int:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    started = time.monotonic()
    limits = SimLimits(weight=10**6, orders=10**6, orders_seconds=10)
    with Simulator(limits=limits) as sim:
        server = sim.serve_fast()
        connect = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
        secret = b"securetrade-demo-copy-secret-000"
        say("securetrade demo copy: one leader fill, 100 followers, two venues")
        followers = [
            Follower(f"binance-{i:03d}", sim.create_key(balances=_RICH),
                     Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100)), slippage_bps=Decimal(300))
            for i in range(_FOLLOWERS - 30)
        ]  # fmt: skip
        followers += [
            Follower(f"kraken-{i:03d}", sim.create_key(venue="kraken", balances=_RICH),
                     Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100)),
                     symbols={"BTCUSDT": "XBTUSDT"}, slippage_bps=Decimal(300))
            for i in range(27)
        ]  # fmt: skip
        unknown = ApiKey("binance", "demo-key-the-venue-never-issued", "not-a-real-secret",
                         scopes=["read", "trade"])  # fmt: skip
        followers.append(Follower("revoked-key", unknown, Sizing(SizingMode.FIXED_NOTIONAL,
                                                                  Decimal(100))))  # fmt: skip
        followers.append(Follower("no-funds", sim.create_key(balances={"USDT": Decimal(1)}),
                                  Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100))))  # fmt: skip
        followers.append(Follower("kraken-unmapped",
                                  sim.create_key(venue="kraken", balances=_RICH),
                                  Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100))))  # fmt: skip
        price = sim.market.price("BTCUSDT")
        event = LeaderEvent("leader-fill-1", "BTCUSDT", Side.BUY, Decimal("0.01"), price,
                            int(time.time() * 1000))  # fmt: skip
        say(f"    leader      BUY 0.01 BTCUSDT at {price} (event {event.id})")
        say(f"    followers   {len(followers)}: 70 on Binance, 28 on Kraken (one without a "
            "symbol mapping), one revoked key, one without funds")  # fmt: skip
        sim.faults.inject("drop_response", method="POST", path="/api/v3/order", times=3)
        sim.faults.inject("rate_limit", method="POST", path="/api/v3/order", times=5, seconds=1)
        say("    venue       loses 3 order answers, and answers 429 to 5 order requests")
        async with CopyEngine(
            secret=secret,
            connect={"binance": connect, "kraken": connect},
            journal=":memory:",
        ) as engine:
            for follower in followers:
                engine.add(follower)
            report = await engine.copy(event)
            again = await engine.copy(event)  # the same event delivered twice
        say()
        p50, p99 = report.latency_ms(0.5) or 0, report.latency_ms(0.99) or 0
        say(f"[1] fan-out: {report.counts} in {report.seconds * 1000:.0f} ms "
            f"(p50 {p50:.0f} ms, p99 {p99:.0f} ms)")  # fmt: skip
        reasons = Counter((o.status, o.reason) for o in report.outcomes if o.status != "placed")
        for (status, reason), count in sorted(reasons.items()):
            say(f"      {status:<12} {reason:<20} x{count}")
        say(f"[2] the same event again: {again.counts} (nothing sent twice)")
        held = 0
        twice = 0
        for follower in followers:
            idem = copy_key(engine._secret, event.id, follower.id, 0)
            cid = get_venue(follower.venue).client_order_id(follower.account, idem)
            count = len(sim.market.orders_with_client_id(cid))
            held += count
            twice += count > 1
        say(f"[3] the venue's own book: {held} copies held, {twice} followers with more than "
            "one order for the event")  # fmt: skip
        expected = {
            "revoked-key": ("quarantined", "AuthenticationRejected"),
            "no-funds": ("skipped", "balance"),
            "kraken-unmapped": ("skipped", "unmapped_symbol"),
        }
        by_id = {o.follower_id: o for o in report.outcomes}
        ok = (
            twice == 0
            and report.complete
            and held == report.counts.get("placed", 0)
            and all((by_id[f].status, by_id[f].reason) == e for f, e in expected.items())
        )
        say()
        say(
            f"{'Every follower behaved' if ok else 'SOMETHING MISBEHAVED'} "
            f"({time.monotonic() - started:.1f} s)."
        )
        return 0 if ok else 1
