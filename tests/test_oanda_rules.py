"""OANDA's account rules applied locally, against the simulator over TLS on loopback: on a
FIFO, no-hedging account (``hedgingEnabled`` false, as the simulator serves it), an order
that would close the open position and open the opposite one is refused before anything
is sent; reducing, closing and adding go through; a hedging account takes anything."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from securetrade import Client, MarketOrder, Settings
from securetrade.errors import HedgingNotAllowed, PolicyViolation
from securetrade.models import OrderStatus
from securetrade.sim import HttpsServer
from securetrade.sim.brokers import BrokerSimulator

FAST = Settings(settle_ms=300, resolve_timeout=1.5)


@pytest.fixture
def sim() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("oanda") as simulator:
        yield simulator


@pytest.fixture
def server(sim: BrokerSimulator) -> HttpsServer:
    return sim.serve()


def _client(sim: BrokerSimulator, server: HttpsServer, **kwargs: Any) -> Client:
    key = kwargs.pop("key", None) or sim.create_key()
    return Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=":memory:",
        settings=FAST,
        **kwargs,
    )


def _posts(sim: BrokerSimulator) -> int:
    return sum(n for p, n in sim.dialect.stats.by_path.items() if p.startswith("POST "))


def _market(side: str, units: str) -> MarketOrder:
    return MarketOrder(symbol="EUR_USD", side=side, quantity=units)


def test_a_netting_account_refuses_an_order_that_would_flip_the_position(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    with _client(sim, server) as client:
        bought = client.place_order(_market("BUY", "1000"), idempotency_key="b1")
        assert bought.status is OrderStatus.FILLED
        client.place_order(_market("BUY", "500"), idempotency_key="b2")  # adds: fine
        posts = _posts(sim)
        with pytest.raises(HedgingNotAllowed, match="Close the position first") as refused:
            client.place_order(_market("SELL", "2000"), idempotency_key="s1")
        assert isinstance(refused.value, PolicyViolation)
        assert refused.value.rule == "no_hedging"
        assert "1500" in str(refused.value)  # the position it would close
        assert _posts(sim) == posts  # refused before anything was sent
        decision = client.would_pass(_market("SELL", "2000"))
        assert not decision.allowed
        assert decision.rule == "no_hedging"
        # Reducing, then closing the position exactly, go through.
        client.place_order(_market("SELL", "1000"), idempotency_key="s2")
        client.place_order(_market("SELL", "500"), idempotency_key="s3")
        # Flat again: a short may be opened, and then a buy may not flip it either.
        client.place_order(_market("SELL", "300"), idempotency_key="s4")
        with pytest.raises(HedgingNotAllowed, match="open short position of 300"):
            client.place_order(_market("BUY", "301"), idempotency_key="b3")
        client.place_order(_market("BUY", "300"), idempotency_key="b4")
    assert sum(1 for p in sim.dialect.stats.by_path if p.startswith("POST ")) == 1
    assert _posts(sim) == posts + 4


def test_a_hedging_account_takes_an_opposite_order_of_any_size(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    key = sim.create_key()
    sim.dialect.hedging[sim.account_of(key.key_id)] = True
    with _client(sim, server, key=key) as client:
        client.place_order(_market("BUY", "1000"), idempotency_key="b1")
        sold = client.place_order(_market("SELL", "2500"), idempotency_key="s1")
        assert sold.status is OrderStatus.FILLED
