"""Account history on every transport (issue 21): own trades and closed orders over a time
range, deposits and withdrawals, each a generator that pages by the venue's own rules.

Observations are made on the simulator (what it holds, what it was asked), never on the
client's own account of itself. A transport that offers no history (the example adapter)
must refuse it before any I/O.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from transports import Transport

from securetrade import InvalidRequest, LimitOrder, MarketOrder
from securetrade.models import AccountTrade, Transfer, TransferKind
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.ledger import backfill, deposit, record_withdrawal

_START = 1_780_000_000_000  # venue time, ms
_MINUTE = 60_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_own_trades_over_a_range(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    """120 trades of one pair (three pages at Kraken) and a few of another: the range
    yields the first pair's alone, each once, within ``since``..``until``, in order; asked
    as ``BTC/USDT`` they come back under that name."""
    client = make(transport.key(sim, account="hist"))
    if not client.capabilities.supports("trade_history"):
        with pytest.raises(InvalidRequest, match="does not offer"):
            client.my_trades(transport.btc)
        assert server.bytes_received == 0
        return
    backfill(sim.market, "hist", "BTCUSDT", 120, start_ms=_START, spacing_ms=_MINUTE)
    backfill(sim.market, "hist", "ETHUSDT", 3, start_ms=_START, spacing_ms=_MINUTE)
    pages = client.my_trades(transport.btc, since=_START)
    trades = list(pages)
    assert all(isinstance(t, AccountTrade) for t in trades)
    stamps = [_ms(t.at) for t in trades]
    assert sorted(stamps) == [_START + k * _MINUTE for k in range(120)]
    assert stamps == sorted(stamps)  # oldest first on every transport, ccxt:kraken included
    assert len({t.trade_id for t in trades}) == 120
    assert {t.symbol for t in trades} == {transport.btc}
    assert all(t.price > 0 and t.quantity > 0 for t in trades)
    window = list(
        client.my_trades("BTC/USDT", since=_START + 10 * _MINUTE, until=_START + 19 * _MINUTE)
    )
    assert [_ms(t.at) for t in window] == [_START + k * _MINUTE for k in range(10, 20)]
    assert {t.symbol for t in window} == {"BTC/USDT"}


def test_closed_orders_leave_open_ones_out(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    client = make()
    if not client.capabilities.supports("order_history"):
        with pytest.raises(InvalidRequest, match="does not offer"):
            client.closed_orders(transport.btc)
        assert server.bytes_received == 0
        return
    filled = client.place_order(MarketOrder(symbol=transport.btc, side="BUY", quantity="0.01"))
    resting = client.place_order(
        LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price="1000.00")
    )
    gone = client.place_order(
        LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price="1001.00")
    )
    client.cancel_order(transport.btc, order_id=gone.order_id)
    closed = {o.order_id: o for o in client.closed_orders(transport.btc)}
    assert set(closed) == {filled.order_id, gone.order_id}
    assert resting.order_id not in closed
    assert not any(o.is_open for o in closed.values())


def test_deposits_and_withdrawals(
    transport: Transport, sim: Simulator, server: HttpsServer, make: Any
) -> None:
    client = make(transport.key(sim, account="funds"))
    if not client.capabilities.supports("deposit_history"):
        with pytest.raises(InvalidRequest, match="does not offer"):
            client.deposits()
        assert server.bytes_received == 0
        return
    for n in range(3):
        deposit(sim.market, "funds", "USDT", Decimal(10 + n), at_ms=_START - n * _MINUTE)
    deposit(sim.market, "funds", "BTC", Decimal("0.5"), at_ms=_START - 5 * _MINUTE)
    since = datetime.fromtimestamp((_START - 3600_000) / 1000, tz=timezone.utc)
    found = list(client.deposits(since=since, until=_START))
    assert all(isinstance(d, Transfer) and d.kind is TransferKind.DEPOSIT for d in found)
    assert sorted((d.asset, d.amount) for d in found) == [
        ("BTC", Decimal("0.5")),
        ("USDT", Decimal(10)),
        ("USDT", Decimal(11)),
        ("USDT", Decimal(12)),
    ]
    only = list(client.deposits("BTC", since=since, until=_START))
    assert [(d.asset, d.amount) for d in only] == [("BTC", Decimal("0.5"))]
    assert list(client.withdrawals(since=since, until=_START)) == []
    record_withdrawal(sim.market, "funds", "USDT", Decimal(7), "addr-1", at_ms=_START - 1000)
    (out,) = client.withdrawals("USDT", since=since, until=_START)
    assert (out.kind, out.asset, out.amount) == (TransferKind.WITHDRAWAL, "USDT", Decimal(7))


def test_history_arguments_refused_before_io(
    transport: Transport, server: HttpsServer, make: Any
) -> None:
    client = make()
    with pytest.raises(InvalidRequest):
        client.my_trades(transport.btc, since=datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidRequest):
        client.closed_orders(transport.btc, since=5000, until=10)
    with pytest.raises(InvalidRequest):
        client.deposits("not an asset")
    assert server.bytes_received == 0


# --- cancel_all, without the kill switch -------------------------------------------------


def test_cancel_all_of_one_symbol_then_of_every_symbol(
    transport: Transport, sim: Simulator, make: Any
) -> None:
    """``cancel_all(symbol)`` cancels that symbol's open orders only; ``cancel_all()`` the
    rest; the kill switch stays off, so the next order is placed."""
    client = make()
    btc = [
        client.place_order(
            LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price=price)
        )
        for price in ("1000.00", "1001.00")
    ]
    eth = client.place_order(
        LimitOrder(symbol=transport.eth, side="BUY", quantity="0.1", price="100.00")
    )
    done = client.cancel_all("BTC/USDT")
    assert sorted(o.order_id for o in done) == sorted(o.order_id for o in btc)
    # each as the order it was, its own client order id (not a cancel's: ccxt's Binance)
    assert sorted(o.client_order_id for o in done) == sorted(o.client_order_id for o in btc)
    assert {o.symbol for o in done} == {"BTC/USDT"}
    held = [o for b in btc for o in sim.market.orders_with_client_id(b.client_order_id)]
    assert [o.status for o in held] == ["CANCELED", "CANCELED"]  # as the exchange holds them
    assert [o.order_id for o in client.open_orders()] == [eth.order_id]
    rest = client.cancel_all()
    assert [o.order_id for o in rest] == [eth.order_id]
    assert client.open_orders() == []
    assert not client.policy.kill_switch.state().engaged
    again = client.place_order(
        LimitOrder(symbol=transport.btc, side="BUY", quantity="0.01", price="1002.00")
    )
    assert again.is_open
