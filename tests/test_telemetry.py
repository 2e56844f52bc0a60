"""Traces and metrics: one CLIENT span per venue request, HTTP semantic conventions, and
``securetrade.*`` attributes; counters for resends and unknown outcomes; never a secret."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from securetrade import (
    Client,
    InsufficientFunds,
    LimitOrder,
    MarketOrder,
    Policy,
    PolicyViolation,
)
from securetrade.sim import Simulator


@pytest.fixture
def spans(span_exporter: Any) -> Any:
    span_exporter.clear()
    return span_exporter


@pytest.fixture
def tls_client(sim: Simulator, tls_options: Any) -> Any:
    server = sim.serve()
    made: list[Client] = []

    def build(**kwargs: Any) -> Client:
        key = kwargs.pop("key", None) or sim.create_key()
        client = Client(key, journal=":memory:", **tls_options(server), **kwargs)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def _finished(spans: Any, name: str) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def _counter(reader: Any, name: str, **match: str) -> int:
    total = 0
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in match.items()):
                        total += int(point.value)
    return total


def test_order_request_span_follows_http_conventions(spans: Any, tls_client: Any) -> None:
    client = tls_client()
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
    )
    (operation,) = _finished(spans, "securetrade.place_order")
    (post,) = _finished(spans, "POST /api/v3/order")
    assert post.kind is SpanKind.CLIENT
    assert post.parent is not None
    assert post.parent.span_id == operation.context.span_id
    host, port = client._transport.base_url.removeprefix("https://").split(":")
    attributes = dict(post.attributes)
    assert attributes == {
        "http.request.method": "POST",
        "url.full": f"https://{host}:{port}/api/v3/order",
        "url.template": "/api/v3/order",
        "server.address": host,
        "server.port": int(port),
        "http.response.status_code": 200,
        "securetrade.venue": "binance",
        "securetrade.operation": "place_order",
        "securetrade.client_order_id": order.client_order_id,
        "securetrade.verdict": "ok",
    }
    assert operation.attributes["securetrade.policy.decision"] == "allow"
    assert post.status.status_code is StatusCode.UNSET
    # The clock sync and the instrument rules were venue calls too, in the same trace.
    names = {s.name for s in spans.get_finished_spans()}
    assert {"GET /api/v3/time", "GET /api/v3/exchangeInfo"} <= names


def test_signed_get_url_is_redacted(spans: Any, tls_client: Any) -> None:
    client = tls_client()
    client.balances()
    (get,) = _finished(spans, "GET /api/v3/account")
    url = get.attributes["url.full"]
    assert "timestamp=" in url
    assert "signature=********" in url


def test_rejection_sets_error_type(spans: Any, tls_client: Any) -> None:
    client = tls_client()
    with pytest.raises(InsufficientFunds):
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="9", price="60000"))
    (post,) = _finished(spans, "POST /api/v3/order")
    assert post.attributes["http.response.status_code"] == 400
    assert post.attributes["error.type"] == "400"
    assert post.attributes["securetrade.verdict"] == "rejected"
    assert post.status.status_code is StatusCode.ERROR
    (operation,) = _finished(spans, "securetrade.place_order")
    assert operation.status.status_code is StatusCode.ERROR


def test_policy_denial_is_on_the_operation_span_and_nothing_is_sent(
    spans: Any, tls_client: Any
) -> None:
    client = tls_client(policy=Policy(max_notional="100"))
    client.instruments()
    spans.clear()
    with pytest.raises(PolicyViolation):
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="1", price="60000"))
    (operation,) = _finished(spans, "securetrade.place_order")
    assert operation.attributes["securetrade.policy.decision"] == "deny:max_notional"
    assert operation.status.status_code is StatusCode.ERROR
    assert [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT] == []


def test_resend_count_and_retry_metric(
    spans: Any, metric_reader: Any, sim: Simulator, tls_client: Any
) -> None:
    client = tls_client()
    client.balances()  # clock synced, connection warm
    spans.clear()
    retries = _counter(
        metric_reader, "securetrade.client.retries", **{"securetrade.operation": "balances"}
    )
    unknown = _counter(
        metric_reader,
        "securetrade.client.unknown_outcomes",
        **{"securetrade.operation": "balances"},
    )
    sim.faults.inject("status", method="GET", path="/api/v3/account", status=503)
    client.balances()
    first, second = _finished(spans, "GET /api/v3/account")
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.attributes["securetrade.verdict"] == "ambiguous"
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200
    after = {"securetrade.operation": "balances"}
    assert _counter(metric_reader, "securetrade.client.retries", **after) == retries + 1
    assert _counter(metric_reader, "securetrade.client.unknown_outcomes", **after) == unknown + 1


def test_lost_response_is_an_unknown_outcome(
    spans: Any, metric_reader: Any, sim: Simulator, tls_client: Any
) -> None:
    client = tls_client()
    client.instruments()
    labels = {"securetrade.operation": "place_order"}
    unknown = _counter(metric_reader, "securetrade.client.unknown_outcomes", **labels)
    sim.faults.inject("drop_response", method="POST", path="/api/v3/order")
    order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    (post,) = _finished(spans, "POST /api/v3/order")
    assert post.attributes["error.type"] == "TransportFailure"
    assert "http.response.status_code" not in post.attributes
    assert post.attributes["securetrade.client_order_id"] == order.client_order_id
    assert _counter(metric_reader, "securetrade.client.unknown_outcomes", **labels) == unknown + 1
    lookups = _finished(spans, "GET /api/v3/order")  # resolved by asking the venue
    assert lookups
    assert lookups[-1].attributes["securetrade.client_order_id"] == order.client_order_id


def test_request_duration_is_recorded(metric_reader: Any, tls_client: Any) -> None:
    client = tls_client()
    client.server_time()
    data = metric_reader.get_metrics_data()
    points = [
        p
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "http.client.request.duration"
        for p in m.data.data_points
        if p.attributes.get("securetrade.operation") == "server_time"
    ]
    assert points
    assert points[0].count >= 1
    assert points[0].attributes["http.response.status_code"] == 200


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_no_secret_in_any_span(spans: Any, sim: Simulator, tls_client: Any, kind: str) -> None:
    key = sim.create_key(kind=kind)
    secret = key.secret.expose()
    client = tls_client(key=key)
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
    )
    client.get_order("BTCUSDT", order_id=order.order_id)
    client.open_orders()
    client.cancel_order("BTCUSDT", order_id=order.order_id)
    with pytest.raises(InsufficientFunds):
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="9", price="60000"))
    blob = "\n".join(s.to_json() for s in spans.get_finished_spans())
    assert blob.count('"kind": "SpanKind.CLIENT"') >= 6
    text = secret.decode()
    forms = {text, secret.hex(), base64.b64encode(secret).decode(), quote(text, safe="")}
    forms |= {line for line in text.splitlines() if len(line) > 16 and "-----" not in line}
    for form in forms:
        assert form not in blob
    assert key.key_id not in blob


_SDK_LATER = r"""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from securetrade import Client
from securetrade.sim import Simulator
from securetrade.transport import telemetry

with Simulator() as sim:
    client = Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
    assert telemetry._silent()
    client.server_time()  # no SDK: nothing is built
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert not telemetry._silent()
    client.server_time()  # the SDK installed since is used at once
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["GET /api/v3/time", "securetrade.server_time"], names
print("ok")
"""


def test_an_sdk_installed_after_the_client_is_used_at_once() -> None:
    """Without an SDK no span is built (they would go nowhere); one installed later, while
    clients run, is picked up at the next call. A fresh interpreter: the global provider
    can be set once per process, and the test session's own is already set."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _SDK_LATER], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
