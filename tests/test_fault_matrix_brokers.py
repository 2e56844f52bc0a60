"""The fault matrix for the brokers: every fault of the simulator's schedule on the create,
against Alpaca's and OANDA's dialects over real TLS on loopback, each ending with the
oracle (tests/oracle.py) read from the venue's own book and the journal file.

What each broker can prove differs, and the matrix says so per fault:

* ``known``: the intent ends in a final state, with exactly one order at the venue (or
  none, for a refusal).
* ``unknown``: OANDA only. A create the venue may never have seen (lost on the way, or
  refused by a gateway with a 503) cannot be proven absent: OANDA requests carry no
  deadline and OANDA refuses a used client id only while its order is pending. The intent
  is kept UNKNOWN, with no order at the venue and no second send: never a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import judge
from securetrade import Client, LimitOrder, MarketOrder, Settings, UnresolvedOrder
from securetrade.core import Journal
from securetrade.sim import Fault
from securetrade.sim.brokers import BrokerSimulator

FAST = Settings(settle_ms=300, resolve_timeout=2.0)
ORDERS = {
    "alpaca": (
        MarketOrder(symbol="AAPL", side="BUY", quantity="1"),
        LimitOrder(symbol="SPY", side="BUY", quantity="1", price="100.00"),
    ),
    "oanda": (
        MarketOrder(symbol="EUR_USD", side="BUY", quantity="1000"),
        LimitOrder(symbol="USD_JPY", side="BUY", quantity="1000", price="100.000"),
    ),
}

# fault kind, its options, and what each broker can prove afterwards.
MATRIX: list[tuple[str, dict[str, Any], str, str]] = [
    ("drop_response", {}, "known", "known"),
    ("reset", {}, "known", "known"),
    ("status_after", {"status": 502}, "known", "known"),
    ("status_after", {"status": 504}, "known", "known"),
    ("garbled_after", {}, "known", "known"),
    ("html_after", {}, "known", "known"),
    ("early_hints", {}, "known", "known"),
    ("delay", {"seconds": 0.3}, "known", "known"),
    ("slow_arrival", {"seconds": 0.3}, "known", "known"),
    ("rate_limit", {"seconds": 0.2}, "known", "known"),
    ("drop_request", {}, "known", "unknown"),
    ("status", {"status": 503}, "known", "unknown"),
]


@pytest.fixture(params=["alpaca", "oanda"])
def broker(request: pytest.FixtureRequest) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(str(request.param)) as simulator:
        yield simulator


def _path(sim: BrokerSimulator, key_id: str) -> str:
    return "/v2/orders" if sim.venue == "alpaca" else f"/v3/accounts/{key_id}/orders"


@pytest.mark.parametrize(
    ("kind", "options", "alpaca", "oanda"),
    MATRIX,
    ids=[f"{kind}-{options.get('status', '')}".rstrip("-") for kind, options, *_ in MATRIX],
)
@pytest.mark.parametrize("which", [0, 1], ids=["market", "limit"])
def test_fault_on_the_create(
    broker: BrokerSimulator,
    tmp_path: Path,
    kind: str,
    options: dict[str, Any],
    alpaca: str,
    oanda: str,
    which: int,
) -> None:
    sim = broker
    expected = alpaca if sim.venue == "alpaca" else oanda
    server = sim.serve()
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    sim.faults.add(Fault(kind, "POST", _path(sim, key.key_id), **options))
    order = ORDERS[sim.venue][which]
    with Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=journal,
        settings=FAST,
        recv_window_ms=300,
    ) as client:
        client.instruments()
        account = client.core.account
        if expected == "known":
            placed = client.place_order(order, idempotency_key="k")
            assert placed.client_order_id
        else:
            with pytest.raises(UnresolvedOrder):
                client.place_order(order, idempotency_key="k")
            assert len(client.unresolved()) == 1
    assert sim.faults.fired, "the fault never fired"
    j = Journal(journal)
    try:
        verdict = judge(sim, j, account, ["k"], venue=sim.venue)  # type: ignore[arg-type]
    finally:
        j.close()
    assert not verdict.duplicates, verdict
    assert not verdict.lost, verdict
    assert not verdict.untracked, verdict
    if expected == "known":
        assert verdict.ok, verdict
        assert verdict.orders == 1
    else:
        assert verdict.unknown == ["k"]
        assert verdict.orders == 0
        posts = sum(n for p, n in sim.dialect.stats.by_path.items() if p.startswith("POST "))
        assert posts == 1  # never sent again by itself


def test_a_client_timeout_while_the_create_is_held(broker: BrokerSimulator, tmp_path: Path) -> None:
    """The venue holds the create past the client's read timeout, then executes it: the
    client asks by client id, and whatever it decides, the venue ends with one order."""
    sim = broker
    server = sim.serve()
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    sim.faults.add(Fault("delay", "POST", _path(sim, key.key_id), seconds=1.0))
    order = ORDERS[sim.venue][1]
    with Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=journal,
        settings=FAST,
        recv_window_ms=300,
        timeout=0.4,
    ) as client:
        client.instruments()
        account = client.core.account
        placed = client.place_order(order, idempotency_key="held")
        assert placed.client_order_id
    j = Journal(journal)
    try:
        verdict = judge(sim, j, account, ["held"], venue=sim.venue)  # type: ignore[arg-type]
    finally:
        j.close()
    assert verdict.ok, verdict
    assert verdict.orders == 1
