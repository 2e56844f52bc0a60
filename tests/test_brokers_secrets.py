"""Guarantee 5 for the brokers: Alpaca's secret key (sent in a header on every request)
and OANDA's bearer token never show in reprs, logs, exceptions, traces, the audit trail
(with the wire recorded) or pickles, in any encoding; Alpaca's key id neither."""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securetrade import (
    ApiKey,
    Client,
    LimitOrder,
    MarketOrder,
    SecureTradeError,
)
from securetrade.record import AuditLog
from securetrade.record.trail import AuditKey, AuditTrail
from securetrade.sim import Fault
from securetrade.sim.brokers import BrokerSimulator
from test_secrets import Collector, _forms

ORDERS = {
    "alpaca": (
        LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="100.00"),
        MarketOrder(symbol="SPY", side="BUY", quantity="0.5"),
    ),
    "oanda": (
        LimitOrder(symbol="EUR_USD", side="BUY", quantity="100", price="1.00000"),
        MarketOrder(symbol="EUR_USD", side="SELL", quantity="100"),
    ),
}


@pytest.fixture
def collector() -> Iterator[Collector]:
    root = logging.getLogger()
    handler = Collector()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("securetrade", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("venue", ["alpaca", "oanda"])
def test_no_broker_secret_anywhere(
    venue: str, tmp_path: Path, collector: Collector, span_exporter: Any
) -> None:
    span_exporter.clear()
    texts: list[str] = []
    errors: list[BaseException] = []
    trail = AuditTrail(tmp_path / "audit.sqlite3", AuditKey.generate())
    with BrokerSimulator(venue) as sim:
        server = sim.serve()
        key = sim.create_key()
        tls = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
        path = "/v2/orders" if venue == "alpaca" else f"/v3/accounts/{key.key_id}/orders"
        sim.faults.add(Fault("drop_response", "POST", path))  # a resolution, logged
        with Client(key, journal=":memory:", audit=AuditLog(trail=trail), **tls) as client:
            texts += [repr(client), str(client), repr(key), str(key), f"{key.secret:>40}"]
            texts.append(repr(client.core.venue.signer(key)))
            logging.getLogger("bot").debug("key %s secret %s/%r", key, key.secret, key.secret)
            for n, order in enumerate(ORDERS[venue]):
                placed = client.place_order(order, idempotency_key=f"o{n}")
                texts += [repr(placed), placed.model_dump_json()]
            texts += [repr(client.balances()), repr(client.open_orders())]
            for signer_or_key in (client.core.venue.signer(key), key, key.secret):
                try:
                    texts.append(pickle.dumps(signer_or_key).decode("latin-1"))
                except Exception as exc:  # refusing is the expected answer
                    errors.append(exc)
        forged = ApiKey(venue, key.key_id, "forged-" + "z" * 20, scopes=key.scopes,
                        environment="simulated")  # fmt: skip
        with Client(forged, journal=":memory:", **tls) as wrong:
            with pytest.raises(SecureTradeError) as refused:
                wrong.balances()
            errors.append(refused.value)
    trail.close()
    texts.append((tmp_path / "audit.sqlite3").read_bytes().decode("latin-1"))
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    spans = span_exporter.get_finished_spans()
    assert spans
    texts += [s.to_json() for s in spans]
    texts += collector.lines
    blob = "\n".join(texts)
    assert any("HTTP Request" in line or "order." in line for line in collector.lines)
    assert "order.resolving" in blob  # the fault's path was taken and recorded
    assert len(errors) >= 3  # the pickles refused, the forged key rejected
    for form in _forms(key.secret.expose()):
        assert form not in blob, f"a {venue} secret leaked ({len(form)} characters)"
    if venue == "alpaca":  # OANDA's key id is the account id, which every path holds:
        assert key.key_id not in blob  # an identifier, not a credential (the token is)
