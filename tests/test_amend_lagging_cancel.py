"""amend against a venue whose cancel says "no such order" while the order is still open
(a lagging venue, or a replica that has not caught up): the amend placed the replacement
anyway, and two orders of ours were live at once. Now nothing is placed, the caller gets
OrderStillOpen, and the same amend run again later replaces the order once.

Each test serves the simulator over TLS on 127.0.0.1, answers the cancel with the
venue's own "not found" (the ``cancel_not_found`` fault: the order stays in the book)
and reads the verdict in the simulator's own order book.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from decimal import Decimal
from typing import Any

import pytest

from securetrade import AsyncClient, Client, LimitOrder, OrderStillOpen, RetryableError
from securetrade.models import OrderRequest
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.brokers import BrokerSimulator
from securetrade.venues.binance import BINANCE
from securetrade.venues.kraken.tables import API, ORDERS, PUBLIC

FUNDS = {"USDT": Decimal(100_000), "BTC": Decimal(1)}
VENUES = ["binance", "kraken", "alpaca", "oanda"]


class _Venue:
    """One venue's simulator over TLS, a key, a resting order, its new price, and how
    the venue is asked to cancel it."""

    def __init__(self, venue: str, stack: contextlib.ExitStack) -> None:
        self.venue = venue
        self.sim: Any
        self.options: dict[str, Any] = {}
        if venue in ("alpaca", "oanda"):
            self.sim = stack.enter_context(BrokerSimulator(venue))
            self.key = self.sim.create_key()
            if venue == "alpaca":
                self.order: OrderRequest = LimitOrder(
                    symbol="AAPL", side="BUY", quantity="1", price="150.00"
                )
                self.new_price = "140.00"
            else:
                self.order = LimitOrder(
                    symbol="EUR_USD", side="BUY", quantity="1000", price="1.00000"
                )
                self.new_price = "0.99000"
        else:
            self.sim = stack.enter_context(Simulator(kraken_limits=None))
            symbol = "BTCUSDT"
            if venue == "kraken":
                self.key = self.sim.create_key(venue="kraken", balances=FUNDS)
                symbol = "XBTUSDT"
                roomy = [RateLimit(n, 1.0, 1000) for n in (API, ORDERS, PUBLIC)]
                self.options["limiter"] = RateLimiter(roomy)
            else:  # Binance without its order/cancelReplace: a cancel, then a place
                self.key = self.sim.create_key()
                plain = copy.copy(BINANCE)
                plain.atomic_replace = False
                self.options["venue"] = plain
            self.order = LimitOrder(symbol=symbol, side="BUY", quantity="0.01", price="60000.00")
            self.new_price = "59000.00"
        self.server: HttpsServer = self.sim.serve()
        self.options.update(
            base_url=self.server.base_url, pins=self.server.pins, cadata=self.server.ca_pem
        )

    def cancel(self, order_id: str) -> tuple[str, str | None]:
        """The request that cancels ``order_id`` (its method, and its path where fixed)."""
        if self.venue == "binance":
            return "DELETE", "/api/v3/order"
        if self.venue == "kraken":
            return "POST", "/0/private/CancelOrder"
        if self.venue == "alpaca":
            return "DELETE", None  # /v2/orders/{id}: only cancels are DELETEs
        return "PUT", None  # .../orders/{spec}/cancel: only cancels are PUTs

    def ours(self) -> list[Any]:
        """Every order of our account in the simulator's book."""
        dialect = self.sim.kraken if self.venue == "kraken" else self.sim.dialect
        account = dialect.keys[self.key.key_id].account
        return [o for o in self.sim.market.orders.values() if o.account == account]

    def live(self) -> list[Any]:
        return [o for o in self.ours() if o.is_open]


def _lagging_cancel_refused(at: _Venue, old: Any, exc: BaseException) -> None:
    """The amend was refused with OrderStillOpen, and at the venue only the old order is
    there, still open: nothing was placed."""
    assert isinstance(exc, OrderStillOpen)
    assert isinstance(exc, RetryableError)
    assert "again" in str(exc)
    assert [kind for kind, _, _ in at.sim.faults.fired] == ["cancel_not_found"]
    (only,) = at.ours()
    assert (only.client_order_id, only.is_open) == (old.client_order_id, True)


def _amended_once(at: _Venue, old: Any, new: Any) -> None:
    """Once the venue has caught up, the same amend replaces the order: one live order
    of ours, the replacement at the new price; the old one cancelled."""
    (live,) = at.live()
    assert live.client_order_id == new.client_order_id != old.client_order_id
    assert new.price == Decimal(at.new_price)
    assert len(at.ours()) == 2


@pytest.mark.parametrize("venue", VENUES)
def test_amend_places_nothing_while_the_old_order_is_still_open(venue: str) -> None:
    with contextlib.ExitStack() as stack:
        at = _Venue(venue, stack)
        with Client(at.key, journal=":memory:", **at.options) as client:
            old = client.place_order(at.order)
            method, path = at.cancel(old.order_id)
            at.sim.faults.inject("cancel_not_found", method=method, path=path)
            with pytest.raises(OrderStillOpen) as raised:
                client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
            _lagging_cancel_refused(at, old, raised.value)
            new = client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
            _amended_once(at, old, new)


@pytest.mark.parametrize("venue", ["binance", "oanda"])
def test_amend_places_nothing_while_the_old_order_is_still_open_async(venue: str) -> None:
    with contextlib.ExitStack() as stack:
        at = _Venue(venue, stack)

        async def run() -> tuple[Any, BaseException, Any]:
            async with AsyncClient(at.key, journal=":memory:", **at.options) as client:
                old = await client.place_order(at.order)
                method, path = at.cancel(old.order_id)
                at.sim.faults.inject("cancel_not_found", method=method, path=path)
                try:
                    await client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
                except OrderStillOpen as exc:
                    refused: BaseException = exc
                else:
                    pytest.fail("the amend placed a replacement while the old order was open")
                _lagging_cancel_refused(at, old, refused)
                new = await client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
                return old, refused, new

        old, _, new = asyncio.run(run())
        _amended_once(at, old, new)


def test_a_partly_filled_order_whose_cancel_lags_is_not_replaced_either() -> None:
    """PARTIALLY_FILLED is open too: a lagging "no such order" to its cancel places
    nothing, and the order keeps its fill."""
    with contextlib.ExitStack() as stack:
        at = _Venue("binance", stack)
        with Client(at.key, journal=":memory:", **at.options) as client:
            old = client.place_order(at.order)
            at.sim.market.trade(int(old.order_id), Decimal("0.004"))
            at.sim.faults.inject("cancel_not_found", method="DELETE", path="/api/v3/order")
            with pytest.raises(OrderStillOpen, match="PARTIALLY_FILLED"):
                client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
    (only,) = at.ours()
    assert (only.client_order_id, only.status, only.filled) == (
        old.client_order_id,
        "PARTIALLY_FILLED",
        Decimal("0.004"),
    )


def test_a_partly_filled_then_cancelled_order_is_replaced_at_the_quantity_asked() -> None:
    """An order that partly filled and was then cancelled is no longer live, so replacing
    it never makes two: it is replaced at the quantity asked for, or its original one
    without a new quantity (not at what was left unfilled), as amend's docstring says."""
    with contextlib.ExitStack() as stack:
        at = _Venue("binance", stack)
        with Client(at.key, journal=":memory:", **at.options) as client:
            old = client.place_order(at.order)
            at.sim.market.trade(int(old.order_id), Decimal("0.004"))
            client.cancel_order(old.symbol, order_id=old.order_id)
            new = client.amend(old.symbol, order_id=old.order_id, price=at.new_price)
    assert (new.quantity, new.price) == (Decimal("0.01"), Decimal(at.new_price))
    (live,) = at.live()
    assert live.client_order_id == new.client_order_id
    assert len(at.ours()) == 2
