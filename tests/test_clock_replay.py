"""A captured signed request is useless later: the simulator refuses it as the venue would.

Requests are captured from a real Client on their way to the simulator, then sent again,
byte for byte, over real TLS on 127.0.0.1: Binance refuses them once their recvWindow has
passed (-1021), Kraken refuses a nonce it has already seen (EAPI:Invalid nonce).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from securetrade import Client
from securetrade.sim import HttpsServer, Simulator
from securetrade.transport.base import HttpRequest, HttpResponse


class Recording:
    """Hands each request to the simulator's own transport and keeps a copy of it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return self.inner.send(request)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()

    def last(self, path: str) -> HttpRequest:
        return [r for r in self.sent if r.target.split("?")[0] == path][-1]


@pytest.fixture
def wire(server: HttpsServer) -> Iterator[httpx.Client]:
    """A plain HTTPS client to the simulator: the attacker's replay tool."""
    context = ssl.create_default_context(cadata=server.ca_pem)
    with httpx.Client(base_url=server.base_url, verify=context) as client:
        yield client


def _replay(wire: httpx.Client, request: HttpRequest) -> httpx.Response:
    return wire.request(
        request.method, request.target, headers=list(request.headers), content=request.body
    )


@pytest.mark.parametrize("window", [5000, 1500])
def test_binance_request_replayed_after_its_window_is_rejected(
    sim: Simulator, wire: httpx.Client, window: int
) -> None:
    transport = Recording(sim.transport())
    with Client(
        sim.create_key(), transport=transport, journal=":memory:", recv_window_ms=window
    ) as client:
        client.balances()
    captured = transport.last("/api/v3/account")
    assert _replay(wire, captured).status_code == 200  # inside the window: the venue takes it
    sim.dialect.clock_offset_ms += window - 500
    assert _replay(wire, captured).status_code == 200  # still inside
    sim.dialect.clock_offset_ms += 1000  # now past timestamp + recvWindow
    answer = _replay(wire, captured)
    assert answer.status_code == 400
    assert answer.json()["code"] == -1021


def test_binance_order_replayed_inside_its_window_is_a_duplicate(
    sim: Simulator, wire: httpx.Client
) -> None:
    """Inside the window a replayed order carries the same client order id: refused."""
    from securetrade import LimitOrder

    transport = Recording(sim.transport())
    with Client(sim.create_key(), transport=transport, journal=":memory:") as client:
        client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="20000"),
            idempotency_key="replay-me",
        )
    answer = _replay(wire, transport.last("/api/v3/order"))
    assert answer.status_code == 400
    assert answer.json()["code"] == -2010
    sim.dialect.clock_offset_ms += 6000
    assert _replay(wire, transport.last("/api/v3/order")).json()["code"] == -1021


def test_kraken_request_replayed_is_rejected_for_its_nonce(
    sim: Simulator, wire: httpx.Client
) -> None:
    transport = Recording(sim.transport())
    with Client(sim.create_key(venue="kraken"), transport=transport, journal=":memory:") as client:
        client.balances()
        client.balances()
    first, second = [r for r in transport.sent if r.target == "/0/private/BalanceEx"][-2:]
    for captured in (second, first):  # the latest nonce, and an older one
        answer = _replay(wire, captured)
        assert answer.status_code == 200
        assert json.loads(answer.content)["error"] == ["EAPI:Invalid nonce"]
