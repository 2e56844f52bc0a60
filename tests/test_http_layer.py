"""Regression tests for the shared HTTP layer, named for the failures it fixed, end to end
through the simulator where a venue's answer decides an order's fate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from oracle import assert_oracle
from securetrade import AsyncClient, Client
from securetrade.core import IntentState, Journal
from securetrade.models import MarketOrder, OrderStatus
from securetrade.sim import HttpsServer, Simulator

MARKET = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
POST = {"method": "POST", "path": "/api/v3/order"}


def _journaled(journal_path: Path, client_order_id: str) -> IntentState:
    journal = Journal(journal_path)
    try:
        intent = journal.get(client_order_id)
        assert intent is not None
        return intent.state
    finally:
        journal.close()


def test_a_103_early_hints_before_a_fill_is_journaled_filled_not_rejected(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    """A 103 used to be taken as the final answer: the FILLED order was journaled
    REJECTED and the caller got ``VenueRejected HTTP 103``."""
    journal_path = tmp_path / "journal.sqlite3"
    key = sim.create_key()
    sim.faults.inject("early_hints", **POST)
    with Client(key, journal=journal_path, **tls_options(server)) as client:
        placed = client.place_order(MARKET, idempotency_key="hints-sync")
    assert placed.status is OrderStatus.FILLED
    assert sim.faults.fired == [("early_hints", "POST", "/api/v3/order")]
    assert _journaled(journal_path, placed.client_order_id) is IntentState.FILLED
    journal = Journal(journal_path)
    try:
        assert_oracle(sim, journal, key.key_id, ["hints-sync"])
    finally:
        journal.close()


def test_a_103_early_hints_before_a_fill_is_journaled_filled_on_the_async_client(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    journal_path = tmp_path / "journal.sqlite3"
    key = sim.create_key()
    sim.faults.inject("early_hints", **POST)

    async def run() -> Any:
        async with AsyncClient(key, journal=journal_path, **tls_options(server)) as client:
            return await client.place_order(MARKET, idempotency_key="hints-async")

    placed = asyncio.run(run())
    assert placed.status is OrderStatus.FILLED
    assert sim.faults.fired == [("early_hints", "POST", "/api/v3/order")]
    assert _journaled(journal_path, placed.client_order_id) is IntentState.FILLED
