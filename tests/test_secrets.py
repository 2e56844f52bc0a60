"""Guarantee 5: no secret, in any encoding, in reprs, logs, exceptions, traces or pickles."""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from securetrade import (
    ApiKey,
    Client,
    LimitOrder,
    MarketOrder,
    SecureTradeError,
)
from securetrade.sim import Simulator

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracing() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return


def _forms(secret: bytes) -> list[str]:
    """The secret as it could leak: raw, hex, base64 (both alphabets), URL-encoded."""
    text = secret.decode("utf-8", "replace")
    forms = {
        text,
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        quote(text, safe=""),
    }
    # PEM keys: each base64 line of the body is itself a leak.
    forms |= {line for line in text.splitlines() if len(line) > 16 and "-----" not in line}
    return sorted(f for f in forms if len(f) >= 8)


def _exercise(sim: Simulator, key: ApiKey, errors: list[BaseException]) -> list[Any]:
    """Run every operation, including failing ones, over TLS; collect what a user could see."""
    server = sim.serve()
    seen: list[Any] = []
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        seen.append(client)
        order = client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")
        )
        seen += [order, client.get_order("BTCUSDT", order_id=order.order_id)]
        seen += [client.open_orders(), client.balances(), client.key_permissions()]
        sim.faults.inject("drop_response", method="POST", path="/api/v3/order")
        seen.append(client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1e-3")))
        for action in (
            lambda: client.withdraw("USDT", "1", "addr"),
            lambda: client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="99", price="60000")
            ),
            lambda: client.cancel_order("BTCUSDT", order_id="424242"),
        ):
            with pytest.raises(SecureTradeError) as excinfo:
                action()
            errors.append(excinfo.value)
        seen += client.audit.events()
    forged = ApiKey("binance", key.key_id, "not-the-secret-" + "0" * 20, kind="hmac")
    with Client(forged, transport=sim.transport(), journal=":memory:") as bad:
        with pytest.raises(SecureTradeError) as excinfo:
            bad.balances()
        errors.append(excinfo.value)
    return seen


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_no_secret_anywhere(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _EXPORTER.clear()
    with Simulator() as sim:
        key = sim.create_key(kind=kind)
        secret = key.secret.expose()
        errors: list[BaseException] = []
        seen = _exercise(sim, key, errors)
    texts = [caplog.text]
    texts += [repr(x) for x in seen] + [str(x) for x in seen]
    texts += [repr(e) for e in errors] + [str(e) for e in errors]
    texts += [repr(e.__cause__) for e in errors] + [repr(e.__context__) for e in errors]
    texts += [repr(key), str(key), f"{key.secret}", repr(key.secret)]
    for span in _EXPORTER.get_finished_spans():
        texts.append(span.to_json())
    assert _EXPORTER.get_finished_spans(), "tracing produced no spans to check"
    assert "HTTP Request" in caplog.text, "expected httpx's request log to be captured"
    blob = "\n".join(texts)
    for form in _forms(secret):
        assert form not in blob
    assert key.key_id not in blob  # the API key id is masked too
    assert "signature=" not in blob or "signature=********" in blob


def test_keys_and_signers_refuse_pickling() -> None:
    with Simulator() as sim:
        key = sim.create_key()
        client = Client(key, transport=sim.transport(), journal=":memory:")
        for obj in (key, key.secret, client.core._signer):
            with pytest.raises(TypeError):
                pickle.dumps(obj)


def test_errors_pickle_without_losing_context() -> None:
    from securetrade import RateLimited

    error = RateLimited("slow down", venue="binance", code=-1003, retry_after=2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.venue, copy.code, copy.retry_after) == ("binance", -1003, 2.5)
    assert str(copy) == str(error)
