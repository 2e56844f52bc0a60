"""The httpx transports behind the clients, end to end against the simulator over TLS.

The conformance corpus (test_http_conformance.py) and the man-in-the-middle cases
(test_tls.py) run against them byte by byte; these check the clients on top: a filled
order journaled FILLED through a 103, a lost answer resolved and not sent twice, and the
options that would undo pinning refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade import AsyncClient, Client
from securetrade.core import IntentState, Journal
from securetrade.errors import InvalidRequest
from securetrade.models import MarketOrder, OrderStatus
from securetrade.sim import HttpsServer, Simulator
from securetrade.transport.tls import PinSet, pinned_ssl_context
from securetrade.transport.via_httpx import AsyncHttpxTransport, HttpxTransport

MARKET = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
POST = {"method": "POST", "path": "/api/v3/order"}


def _context(server: HttpsServer) -> Any:
    return pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)


def _state(journal_path: Path, client_order_id: str) -> IntentState:
    journal = Journal(journal_path)
    try:
        intent = journal.get(client_order_id)
        assert intent is not None
        return intent.state
    finally:
        journal.close()


@pytest.mark.parametrize("fault", ["early_hints", "drop_response"])
def test_the_sync_client_over_httpx_keeps_one_order_per_key(
    sim: Simulator, server: HttpsServer, tmp_path: Path, fault: str
) -> None:
    key = sim.create_key()
    sim.faults.inject(fault, **POST)
    journal_path = tmp_path / "journal.sqlite3"
    transport = HttpxTransport(server.base_url, _context(server), timeout=5.0)
    with Client(key, journal=journal_path, transport=transport) as client:
        placed = client.place_order(MARKET, idempotency_key=f"httpx-{fault}")
    transport.close()
    assert placed.status is OrderStatus.FILLED
    assert _state(journal_path, placed.client_order_id) is IntentState.FILLED
    journal = Journal(journal_path)
    try:
        assert_oracle(sim, journal, key.key_id, [f"httpx-{fault}"])
    finally:
        journal.close()


def test_the_async_client_over_httpx_places_many_orders_once_each(
    sim: Simulator, server: HttpsServer, tmp_path: Path
) -> None:
    key = sim.create_key()
    sim.faults.inject("early_hints", **POST)
    journal_path = tmp_path / "journal.sqlite3"
    keys = [f"httpx-async-{i}" for i in range(20)]

    async def main() -> list[Any]:
        transport = AsyncHttpxTransport(server.base_url, _context(server), timeout=5.0)
        async with AsyncClient(key, journal=journal_path, transport=transport) as client:
            placed = await asyncio.gather(
                *(client.place_order(MARKET, idempotency_key=k) for k in keys)
            )
        await transport.aclose()
        return placed

    placed = asyncio.run(main())
    assert [order.status for order in placed] == [OrderStatus.FILLED] * len(keys)
    journal = Journal(journal_path)
    try:
        assert_oracle(sim, journal, key.key_id, keys)
    finally:
        journal.close()


@pytest.mark.parametrize("option", ["verify", "trust_env", "cert", "transport", "mounts"])
def test_options_that_would_undo_pinning_are_refused(server: HttpsServer, option: str) -> None:
    with pytest.raises(InvalidRequest, match=option):
        HttpxTransport(server.base_url, _context(server), **{option: False})


def test_http2_without_its_codec_says_what_to_install(
    server: HttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "h2" else real(name, *a)
    )
    with pytest.raises(InvalidRequest, match=r"httpx\[http2\]"):
        HttpxTransport(server.base_url, _context(server), http2=True)
