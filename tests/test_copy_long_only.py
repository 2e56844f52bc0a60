"""Long-only followers in reconciliation: never a correction that takes one below zero.

The pure decision is checked on its own (a short leader, a sell bigger than what is free,
a follower that may short); then against the simulator over TLS, where the venue's
accounts and book say what was sold.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from securetrade import Client, LimitOrder
from securetrade.copy import (
    CopyEngine,
    Follower,
    FollowerView,
    LeaderEvent,
    LeaderSnapshot,
    Sizing,
    reconcile_plan,
)
from securetrade.errors import InvalidRequest
from securetrade.keys import ApiKey, Secret
from securetrade.models import Instrument
from securetrade.sim import SimLimits, Simulator

SECRET = Secret(b"copy-long-only-test-secret-01")
RULES = Instrument(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size="0.01",
                   step_size="0.00001", min_quantity="0.00001", min_notional="5")  # fmt: skip
TENTH = Sizing("multiplier", "0.1")


def _snapshot(position: str) -> LeaderSnapshot:
    return LeaderSnapshot("snap-1", {"BTCUSDT": Decimal(position)},
                          {"BTCUSDT": Decimal(60_000)}, 1_000_000)  # fmt: skip


def _follower(**over: Any) -> Follower:
    key = ApiKey("binance", "k-follower-0001", "not-a-real-secret", scopes=["read", "trade"])
    return Follower(**{"id": "f1", "key": key, "sizing": TENTH, **over})


def _view(held: str, copied: str, **over: Any) -> FollowerView:
    return FollowerView(RULES, Decimal(held), Decimal(copied), quote_free=Decimal(50_000), **over)


def _plan(snapshot: LeaderSnapshot, follower: Follower, view: FollowerView) -> Any:
    return reconcile_plan(snapshot, follower, "BTCUSDT", "BTCUSDT", view, secret=SECRET)


def test_a_short_leader_takes_a_long_only_follower_to_zero_and_no_further() -> None:
    """The leader is short 0.02: a long-only follower holding 0.002 of copies sells those,
    not the 0.002 more a mirror would sell, and the report says what it left out."""
    found = _plan(_snapshot("-0.02"), _follower(), _view("1.002", "0.002"))
    assert (found.action, found.target, found.reason) == ("place", Decimal(0), "long_only")
    assert found.clamped == Decimal("0.002")
    assert found.intent is not None
    order = found.intent.order
    assert (order.side.value, order.quantity) == ("SELL", Decimal("0.002"))
    flat = _plan(_snapshot("-0.02"), _follower(), _view("1", "0"))  # no copies: nothing to sell
    assert (flat.action, flat.reason, flat.clamped, flat.intent) == (
        "in_line",
        "long_only",
        Decimal("0.002"),
        None,
    )


def test_a_sell_is_cut_to_the_base_the_follower_has_free() -> None:
    """Its own resting order locks 0.0015 of the 0.002 it holds: the correction sells the
    0.0005 that is free (the venue would refuse more), and reports the 0.0015 left."""
    found = _plan(_snapshot("0"), _follower(), _view("0.002", "0.002", base_free=Decimal("0.0005")))
    assert (found.action, found.reason, found.clamped) == ("place", "long_only", Decimal("0.0015"))
    assert found.intent is not None
    assert found.intent.order.quantity == Decimal("0.0005")
    locked = _plan(_snapshot("0"), _follower(), _view("0.002", "0.002", base_free=Decimal(0)))
    assert (locked.action, locked.reason, locked.clamped) == (
        "skip",
        "below_minimum",
        Decimal("0.002"),
    )
    roomy = _plan(_snapshot("0"), _follower(), _view("0.002", "0.002", base_free=Decimal("0.002")))
    assert (roomy.action, roomy.reason, roomy.clamped) == ("place", "", Decimal(0))


def test_a_follower_that_may_short_mirrors_the_short_leader() -> None:
    """``long_only=False``: the target is the leader's short scaled, the sell goes past
    what it holds, and a short it already has counts as its position."""
    shorting = _follower(long_only=False)
    found = _plan(_snapshot("-0.02"), shorting, _view("0", "0"))
    assert (found.action, found.target, found.clamped) == ("place", Decimal("-0.002"), Decimal(0))
    assert found.intent is not None
    assert (found.intent.order.side.value, found.intent.order.quantity) == (
        "SELL",
        Decimal("0.002"),
    )
    already = _plan(_snapshot("-0.02"), shorting, _view("0", "-0.002"))
    assert (already.action, already.position) == ("in_line", Decimal("-0.002"))
    cover = _plan(_snapshot("0"), shorting, _view("0", "-0.002"))
    assert cover.intent is not None
    assert (cover.intent.order.side.value, cover.intent.order.quantity) == (
        "BUY",
        Decimal("0.002"),
    )
    with pytest.raises(InvalidRequest, match="long_only"):
        _follower(long_only="yes")


def test_reconciling_a_short_leader_never_sells_below_zero_at_the_venue() -> None:
    """Two long-only followers copied the leader's 0.02 open; one then put up 0.0015 of it
    for sale itself. The leader turns short: the first sells its copies and keeps its own
    BTC; the second sells what is free, the venue refuses nothing, and the report shows
    both clamps. Applying the snapshot again sells nothing more."""
    with Simulator(limits=SimLimits(weight=10**8, orders=10**7, orders_seconds=10)) as venue:
        served = venue.serve_fast()
        connect = {"base_url": served.base_url, "pins": served.pins, "cadata": served.ca_pem}
        own = {"USDT": Decimal(100_000), "BTC": Decimal(1)}
        keep, busy = (
            Follower(name, venue.create_key(balances=balances), TENTH, slippage_bps=Decimal(300))
            for name, balances in (("keep", own), ("busy", {"USDT": Decimal(100_000)}))
        )
        price = venue.market.price("BTCUSDT")

        async def run() -> Any:
            async with CopyEngine(secret=SECRET, connect={"binance": connect},
                                  journal=":memory:") as engine:  # fmt: skip
                engine.add(keep)
                engine.add(busy)
                event = LeaderEvent("open-1", "BTCUSDT", "BUY", "0.02", price,
                                    int(time.time() * 1000))  # fmt: skip
                opened = await engine.copy(event)
                with Client(busy.key, **connect) as client:  # its own resting sell
                    client.place_order(LimitOrder(symbol="BTCUSDT", side="SELL",
                                                  quantity="0.0015", price=price * 2))  # fmt: skip
                short = LeaderSnapshot("short-1", {"BTCUSDT": Decimal("-0.02")},
                                       {"BTCUSDT": price}, int(time.time() * 1000))  # fmt: skip
                applied = await engine.reconcile(short, apply=True)
                again = await engine.reconcile(short, apply=True)
                audited = [e.fields["clamped"] for e in engine.audit.events("copy.reconciled")]
                return opened, applied, again, audited

        opened, applied, again, audited = asyncio.run(run())
        balances = {
            f.id: venue.market.accounts[venue.account_of(f.key.key_id)].balances["BTC"]
            for f in (keep, busy)
        }
        rejected = dict(venue.dialect.stats.rejections)

    assert opened.counts == {"placed": 2}
    found = {d.follower_id: d for d in applied.divergences}
    assert {f: (d.action, d.reason, d.outcome) for f, d in found.items()} == {
        "keep": ("place", "long_only", "placed:FILLED"),
        "busy": ("place", "long_only", "placed:FILLED"),
    }
    assert found["keep"].clamped == Decimal("0.002")  # the short it did not mirror
    assert found["busy"].intent is not None
    sold = found["busy"].intent.order.quantity
    assert 0 < sold <= found["busy"].position - Decimal("0.0015")  # what its order left free
    assert found["busy"].clamped >= Decimal("0.002") + Decimal("0.0015")  # the short, the lock
    assert {d.follower_id for d in applied.clamped} == {"keep", "busy"}
    assert audited[0] == 2  # the audit trail counts the clamps too
    assert rejected == {}  # no sell the venue had to refuse
    keep_free, keep_locked = balances["keep"]
    assert 1 <= keep_free + keep_locked < Decimal("1.00001")  # its own BTC stays (and dust)
    busy_free, busy_locked = balances["busy"]
    assert busy_free >= 0
    assert busy_locked == Decimal("0.0015")  # its own order untouched
    assert {d.action for d in again.divergences} <= {"in_line", "skip"}
    assert not again.proposals
