"""Pre-trade policy: every rule refuses before any byte of the order leaves the process."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from securetrade import (
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderStatus,
    PolicyViolation,
    Scope,
)
from securetrade.errors import AmbiguousOutcome, VenueRejected
from securetrade.models import Order
from securetrade.policy import Decision, KillSwitch, Policy, ReferencePrice
from securetrade.sim import Simulator

BTC_NOW = Decimal("65000.00")  # the simulator's BTCUSDT price at the start of its path


def _requests(sim: Simulator) -> int:
    return sim.dialect.stats.requests


def _orders_sent(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def _limit(quantity: str = "0.01", price: str = "64000", side: str = "BUY") -> LimitOrder:
    return LimitOrder(symbol="BTCUSDT", side=side, quantity=quantity, price=price)


class Clock:
    """A hand-driven clock for the time-based rules."""

    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DENIALS: list[tuple[str, dict[str, Any], Any, str]] = [
    ("max_notional", {"max_notional": "500"}, _limit(), "notional 640.00 exceeds"),
    ("max_quantity", {"max_quantity": "0.005"}, _limit(), "quantity 0.01 exceeds"),
    ("symbols", {"symbols": ["ETHUSDT"]}, _limit(), "BTCUSDT is not on the allowlist"),
    ("sides", {"sides": ["SELL"]}, _limit(), "BUY orders are not allowed"),
    ("price_band", {"price_band": "0.05"}, _limit(price="6500"), "90.00% from the reference"),
    (
        "max_notional",
        {"max_notional": "100"},
        MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.01"),
        "notional 650.0000 exceeds",
    ),
]


@pytest.mark.parametrize(("rule", "limits", "order", "message"), DENIALS)
def test_each_static_rule_denies_with_zero_requests(
    sim: Simulator, make_client: Any, rule: str, limits: dict[str, Any], order: Any, message: str
) -> None:
    client = make_client(sim.create_key(), policy=Policy(**limits))
    client.instruments()
    if client.policy.needs_reference(order):
        assert client.would_pass(order).rule == rule  # reads the reference price once
    before = _requests(sim)
    with pytest.raises(PolicyViolation, match=message) as excinfo:
        client.place_order(order)
    assert excinfo.value.rule == rule
    assert _requests(sim) == before, "a refused order must not cause any request"
    assert _orders_sent(sim) == 0
    denied = client.audit.events("policy.denied")
    assert denied[-1].fields["rule"] == rule


def test_max_open_orders_counts_resting_orders(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key(), policy=Policy(max_open_orders=2))
    resting = [client.place_order(_limit(price=p)) for p in ("60000", "60001")]
    assert all(o.status is OrderStatus.NEW for o in resting)
    before = _requests(sim)
    with pytest.raises(PolicyViolation, match="2 orders are open") as excinfo:
        client.place_order(_limit(price="60002"))
    assert excinfo.value.rule == "max_open_orders"
    assert _requests(sim) == before
    client.cancel_order("BTCUSDT", order_id=resting[0].order_id)  # frees a slot
    assert client.place_order(_limit(price="60003")).status is OrderStatus.NEW


def test_open_orders_listing_resynchronises_the_count(sim: Simulator, make_client: Any) -> None:
    """Orders placed by another client of the account count too, once the venue lists them."""
    key = sim.create_key()
    policy = Policy(max_open_orders=2)
    ours = make_client(key, policy=policy)
    other = make_client(sim.create_key(account=_account_of(sim, key)))
    other.place_order(_limit(price="60000"))
    other.place_order(_limit(price="60001"))
    assert ours.would_pass(_limit())
    ours.open_orders()
    assert policy.open_orders == 2
    decision = ours.would_pass(_limit())
    assert not decision
    assert decision.rule == "max_open_orders"


def _account_of(sim: Simulator, key: Any) -> str:
    return sim.dialect.keys[key.key_id].account


def test_max_orders_per_interval_stops_a_runaway_loop(sim: Simulator, make_client: Any) -> None:
    clock = Clock()
    client = make_client(sim.create_key(), policy=Policy(max_orders=3, interval=10, clock=clock))
    for _ in range(3):
        client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))
    sent = _orders_sent(sim)
    before = _requests(sim)
    with pytest.raises(PolicyViolation, match="3 orders in the last 10 s") as excinfo:
        client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))
    assert excinfo.value.rule == "max_orders"
    assert (_requests(sim), _orders_sent(sim)) == (before, sent)
    clock.now += 10.5
    assert client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))


def test_daily_notional_budget(sim: Simulator, make_client: Any) -> None:
    clock = Clock(1_760_000_000.0)
    policy = Policy(daily_notional="1500", clock=clock)
    client = make_client(sim.create_key(), policy=policy)
    client.place_order(_limit(quantity="0.01", price="64000"))  # 640
    client.place_order(_limit(quantity="0.01", price="64000"))  # 1280
    assert policy.spent_today == Decimal("1280.0000")
    before = _requests(sim)
    with pytest.raises(
        PolicyViolation,
        match=re.escape("640.00 on top of 1280.00 spent today exceeds daily_notional 1500"),
    ) as excinfo:
        client.place_order(_limit(quantity="0.01", price="64000"))
    assert excinfo.value.rule == "daily_notional"
    assert _requests(sim) == before
    clock.now += 86_400  # a new UTC day, a new budget
    assert client.place_order(_limit(quantity="0.01", price="64000"))


def test_rejected_order_gives_its_budget_back(sim: Simulator, make_client: Any) -> None:
    policy = Policy(daily_notional="400000", max_open_orders=1)
    client = make_client(sim.create_key(), policy=policy)
    with pytest.raises(VenueRejected):  # more USDT than the account holds
        client.place_order(_limit(quantity="5", price="64000"))
    assert policy.spent_today == 0
    assert policy.open_orders == 0
    assert client.place_order(_limit()).status is OrderStatus.NEW


def test_ambiguous_outcome_keeps_the_slot() -> None:
    """An order that may be live still counts as open until the venue says otherwise."""
    policy = Policy(max_open_orders=1)
    order = _limit()
    with pytest.raises(AmbiguousOutcome), policy.admit(order, "st-cid-1"):
        raise AmbiguousOutcome("timeout")
    assert policy.open_orders == 1
    assert not policy.evaluate(order)
    policy.observe(
        Order(
            venue="binance",
            symbol="BTCUSDT",
            order_id="1",
            client_order_id="st-cid-1",
            side="BUY",
            type="LIMIT",
            status=OrderStatus.CANCELED,
            quantity="0.01",
            price="64000",
        )
    )
    assert policy.evaluate(order)


def test_price_band_uses_a_fresh_reference_from_the_venue(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key(), policy=Policy(price_band="0.05"))
    near = client.place_order(_limit(price="64000"))
    assert near.status is OrderStatus.NEW
    assert sim.dialect.stats.by_path["GET /api/v3/ticker/price"] == 1
    with pytest.raises(PolicyViolation) as excinfo:
        client.place_order(_limit(price="70000"))  # 7.69 % above 65 000
    assert excinfo.value.rule == "price_band"
    assert "7.69%" in str(excinfo.value)
    assert _orders_sent(sim) == 1


def test_stale_reference_is_refused() -> None:
    clock = Clock()
    policy = Policy(price_band="0.05", reference_max_age=5, clock=clock)
    old = ReferencePrice("BTCUSDT", BTC_NOW, clock.now - 12)
    decision = policy.evaluate(_limit(), reference=old)
    assert not decision
    assert decision.rule == "reference_price"
    assert decision.limit == 5
    assert decision.value == Decimal("12.0")
    assert "12.0 s old" in decision.reason
    missing = policy.evaluate(_limit())
    assert (missing.allowed, missing.rule) == (False, "reference_price")
    assert policy.evaluate(_limit(), reference=ReferencePrice("BTCUSDT", BTC_NOW, clock.now))


def test_dry_run_answers_without_sending_an_order(sim: Simulator, make_client: Any) -> None:
    client = make_client(
        sim.create_key(scopes=[Scope.READ, Scope.TRADE]).restrict(symbols=["BTCUSDT"]),
        policy=Policy(max_notional="1000", price_band="0.05"),
    )
    assert client.would_pass(_limit()) == Decision(True)
    too_big = client.would_pass(_limit(quantity="1"))
    assert (too_big.allowed, too_big.rule) == (False, "max_notional")
    assert too_big.label == "deny:max_notional"
    scope = client.would_pass(LimitOrder(symbol="ETHUSDT", side="BUY", quantity="1", price="1"))
    assert (scope.allowed, scope.rule) == (False, "scope")
    grammar = client.would_pass(_limit(price="64000.001"))
    assert (grammar.allowed, grammar.rule) == (False, "instrument")
    assert _orders_sent(sim) == 0
    with pytest.raises(PolicyViolation):
        too_big.raise_if_denied()


def test_key_policy_within_account_policy(sim: Simulator, make_client: Any) -> None:
    """Per-key rules nest inside per-account rules; the account's usage is shared."""
    account = Policy(max_open_orders=2)
    key_a = sim.create_key()
    key_b = sim.create_key(account=_account_of(sim, key_a))
    a = make_client(key_a, policy=Policy(max_quantity="0.05", within=account))
    b = make_client(key_b, policy=Policy(symbols=["BTCUSDT"], within=account))
    with pytest.raises(PolicyViolation, match="max_quantity"):
        a.place_order(_limit(quantity="0.1"))
    a.place_order(_limit(price="60000"))
    b.place_order(_limit(price="60001"))
    before = _requests(sim)
    for client in (a, b):
        with pytest.raises(PolicyViolation) as excinfo:
            client.place_order(_limit(price="60002"))
        assert excinfo.value.rule == "max_open_orders"
    assert _requests(sim) == before


def test_kill_switch_in_a_parent_policy_stops_the_child(sim: Simulator, make_client: Any) -> None:
    account = Policy(kill_switch=KillSwitch())
    client = make_client(sim.create_key(), policy=Policy(within=account))
    client.instruments()
    account.kill_switch.engage("desk closed")
    before = _requests(sim)
    with pytest.raises(PolicyViolation, match="desk closed"):
        client.place_order(_limit())
    assert _requests(sim) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_notional": "-1"}, "max_notional must be greater than zero"),
        ({"max_notional": "NaN"}, "not finite"),
        ({"max_quantity": True}, "boolean"),
        ({"symbols": "BTCUSDT"}, "not one string"),
        ({"sides": ["LONG"]}, "not a side"),
        ({"price_band": "1.5"}, "fraction"),
        ({"max_open_orders": 0}, "at least 1"),
        ({"max_orders": 2.5}, "whole number"),
        ({"interval": -1}, "positive number of seconds"),
        ({"reference_max_age": float("inf")}, "positive number of seconds"),
    ],
)
def test_bad_policy_settings_are_typed_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Policy(**options)


def test_policies_cannot_nest_in_a_loop() -> None:
    a = Policy()
    b = Policy(within=a)
    a.within = b
    with pytest.raises(InvalidRequest, match="loop"):
        a.evaluate(_limit())


def test_async_client_applies_the_same_policy(sim: Simulator) -> None:
    import asyncio

    from securetrade import AsyncClient

    async def run() -> None:
        policy = Policy(max_notional="1000", price_band="0.05")
        async with AsyncClient(
            sim.create_key(), transport=sim.async_transport(), journal=":memory:", policy=policy
        ) as client:
            assert await client.would_pass(_limit())
            before = _requests(sim)
            with pytest.raises(PolicyViolation) as excinfo:
                await client.place_order(_limit(price="70000"))
            assert excinfo.value.rule == "price_band"
            assert _requests(sim) == before
            assert (await client.place_order(_limit())).status is OrderStatus.NEW
            assert await client.kill("stop", cancel_open=True)
            assert await client.open_orders() == []

    asyncio.run(run())
