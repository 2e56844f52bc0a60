"""Anomaly detection: every detector fires on its attack and stays quiet on ordinary trading.

The ordinary stream is a deterministic day of a plausible bot: three symbols, Poisson
arrivals whose rate follows the hour of day, hourly rebalances that place a handful of
orders at once, log-normal sizes, about a third of the limit orders cancelled after a
while (a few within seconds), a rare timestamp rejection from clock drift and an
occasional venue refusal that is not about the key.
"""

from __future__ import annotations

import logging
import math
import random
from decimal import Decimal
from typing import Any

import pytest

from securetrade import LimitOrder
from securetrade.errors import InvalidRequest
from securetrade.policy import (
    Activity,
    Alert,
    AnomalyMonitor,
    CancelReplaceLoop,
    NewSymbol,
    OrderRateSpike,
    Severity,
    SizeOutlier,
)
from securetrade.sim import Simulator

START = 1_760_000_000.0
SYMBOLS = {"BTCUSDT": 0.01, "ETHUSDT": 0.2, "SOLUSDT": 3.0}  # typical order size


def ordinary_day(seed: int = 7, hours: float = 24.0) -> list[Activity]:
    """A day of ordinary trading, sorted by time."""
    rng = random.Random(seed)
    events: list[Activity] = []
    t, n = START, 0
    end = START + hours * 3600

    def order(at: float, symbol: str, size: float | None = None) -> None:
        nonlocal n
        n += 1
        base = SYMBOLS[symbol]
        quantity = size if size is not None else base * math.exp(rng.gauss(0, 0.45))
        cid = f"o{n}"
        events.append(Activity("order", at, symbol, Decimal(f"{quantity:.6f}"), cid))
        if rng.random() < 0.35:  # cancelled later, sometimes quickly (a re-quote)
            life = rng.uniform(0.3, 2.0) if rng.random() < 0.06 else rng.expovariate(1 / 90)
            events.append(Activity("cancel", at + life, symbol, client_order_id=cid))

    while t < end:
        hour = ((t - START) / 3600) % 24
        per_minute = 1.2 + 0.8 * math.sin(hour / 24 * 2 * math.pi)  # busier by day
        t += rng.expovariate(per_minute / 60)
        order(t, rng.choice(list(SYMBOLS)))
        if rng.random() < 1 / 80:  # a rebalance: a few orders at once
            for i in range(rng.randint(3, 6)):
                order(t + 0.2 * i, rng.choice(list(SYMBOLS)))
        if rng.random() < 1 / 250:
            events.append(Activity("rejection", t + 0.1, reason="timestamp"))
        if rng.random() < 1 / 100:
            events.append(Activity("rejection", t + 0.1, reason="insufficient_funds"))
    return sorted(events, key=lambda a: a.at)


def replay(monitor: AnomalyMonitor, events: list[Activity]) -> list[Alert]:
    alerts: list[Alert] = []
    for activity in events:
        alerts += monitor.observe(activity)
    return alerts


def test_ordinary_trading_raises_no_alert() -> None:
    """False positives on a day of ordinary trading, for three different days: zero."""
    total_orders = 0
    false_positives: list[Alert] = []
    for seed in (7, 8, 9):
        day = ordinary_day(seed)
        total_orders += sum(1 for a in day if a.kind == "order")
        false_positives += replay(AnomalyMonitor(), day)
    assert total_orders > 3000  # the stream is not trivially small
    assert false_positives == [], [str(a) for a in false_positives]


def _after_a_normal_morning(attack: list[Activity]) -> tuple[list[Alert], list[Alert]]:
    """Alerts during a normal four hours, and during the attack that follows them."""
    morning = ordinary_day(11, hours=4)
    monitor = AnomalyMonitor()
    before = replay(monitor, morning)
    return before, replay(monitor, attack)


AT = START + 4 * 3600 + 60  # just after the normal morning


def test_runaway_order_loop() -> None:
    burst = [
        Activity("order", AT + i * 0.05, "BTCUSDT", Decimal("0.01"), f"r{i}") for i in range(200)
    ]
    before, alerts = _after_a_normal_morning(burst)
    assert before == []
    rate = [a for a in alerts if a.detector == "order_rate"]
    assert rate, alerts
    assert rate[0].severity is Severity.WARNING
    assert rate[0].numbers["orders"] >= 12
    assert any(a.severity is Severity.CRITICAL for a in rate)
    assert rate[0].at - AT < 1.0  # noticed within a second of the loop starting


@pytest.mark.parametrize(("factor", "severity"), [(30, Severity.WARNING), (500, Severity.CRITICAL)])
def test_order_far_larger_than_usual(factor: int, severity: Severity) -> None:
    size = Decimal(str(SYMBOLS["ETHUSDT"] * factor))
    before, alerts = _after_a_normal_morning([Activity("order", AT, "ETHUSDT", size, "big")])
    assert before == []
    assert [(a.detector, a.severity, a.symbol) for a in alerts] == [
        ("order_size", severity, "ETHUSDT")
    ]
    assert alerts[0].numbers["ratio"] > factor / 2


def test_rapid_cancel_replace_loop() -> None:
    loop: list[Activity] = []
    for i in range(25):
        at = AT + i * 0.3
        loop.append(Activity("order", at, "SOLUSDT", Decimal("3"), f"q{i}"))
        loop.append(Activity("cancel", at + 0.1, "SOLUSDT", client_order_id=f"q{i}"))
    before, alerts = _after_a_normal_morning(loop)
    assert before == []
    assert alerts[0].detector == "cancel_replace"
    assert alerts[0].numbers["quick_cancels"] == 10
    assert {a.detector for a in alerts} <= {"cancel_replace", "order_rate"}  # also a fast loop


def test_first_order_on_a_never_traded_symbol() -> None:
    attack = [Activity("order", AT, "PEPEUSDT", Decimal("1000000"), "p1")]
    before, alerts = _after_a_normal_morning(attack)
    assert before == []
    assert [(a.detector, a.symbol) for a in alerts] == [("new_symbol", "PEPEUSDT")]


def test_burst_of_signature_rejections_is_critical() -> None:
    attack = [Activity("rejection", AT + i * 2, reason="signature") for i in range(6)]
    attack += [Activity("rejection", AT + 20, reason="permission")]
    before, alerts = _after_a_normal_morning(attack)
    assert before == []
    assert [(a.detector, a.severity) for a in alerts] == [("auth_rejections", Severity.CRITICAL)]
    assert alerts[0].numbers["rejections"] == 5


def test_withdrawal_attempts() -> None:
    attack = [
        Activity("withdrawal", AT, "USDT", Decimal("5000")),
        Activity("withdrawal", AT + 1, "USDT", Decimal("5000"), reason="refused"),
    ]
    before, alerts = _after_a_normal_morning(attack)
    assert before == []
    assert [(a.detector, a.severity) for a in alerts] == [
        ("withdrawal", Severity.WARNING),
        ("withdrawal", Severity.CRITICAL),
    ]


def test_cooldown_gives_one_alert_per_incident() -> None:
    monitor = AnomalyMonitor([NewSymbol(learn_for=0)], cooldown=60)
    alerts = replay(
        monitor,
        [Activity("order", START + i, f"S{i % 2}", Decimal(1), f"c{i}") for i in range(10)],
    )
    assert [a.symbol for a in alerts] == ["S0", "S1"]


def test_alerts_reach_callbacks_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Alert] = []
    monitor = AnomalyMonitor([NewSymbol(learn_for=0)])
    monitor.subscribe(seen.append)
    with caplog.at_level(logging.INFO, logger="securetrade.anomaly"):
        monitor.observe(Activity("order", START, "XRPUSDT", Decimal(1), "x"))
    assert [a.detector for a in seen] == ["new_symbol"]
    assert caplog.records[-1].levelno == logging.WARNING
    assert "first order ever on XRPUSDT" in caplog.text


def test_detectors_watch_a_real_client(sim: Simulator, make_client: Any) -> None:
    """The client's own events feed the monitor: a first ETHUSDT order is noticed."""
    client = make_client(sim.create_key())
    monitor = AnomalyMonitor(
        [NewSymbol(known=["BTCUSDT"], learn_for=0), CancelReplaceLoop(threshold=3)]
    )
    monitor.watch(client.audit)
    seen: list[Alert] = []
    monitor.subscribe(seen.append)
    order = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
    for _ in range(3):  # place and pull straight away: a tight re-quote loop
        placed = client.place_order(order)
        client.cancel_order("BTCUSDT", client_order_id=placed.client_order_id)
    client.place_order(LimitOrder(symbol="ETHUSDT", side="BUY", quantity="0.1", price="3000"))
    assert [a.detector for a in seen] == ["cancel_replace", "new_symbol"]
    assert seen[1].symbol == "ETHUSDT"


@pytest.mark.parametrize(
    "build",
    [
        lambda: OrderRateSpike(window=10, baseline=5),
        lambda: OrderRateSpike(floor=0),
        lambda: SizeOutlier(factor=-1),
        lambda: NewSymbol(known="BTCUSDT"),
        lambda: CancelReplaceLoop(window=float("nan")),
    ],
)
def test_bad_detector_settings_are_typed_errors(build: Any) -> None:
    with pytest.raises(InvalidRequest):
        build()
