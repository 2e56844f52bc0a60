"""Shared fixtures: the simulator in-process and over real TLS on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from redis_server import redis_url  # noqa: F401  (fixture: a real redis-server)
from securetrade import Client
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator

# ``--hypothesis-profile=fuzz`` (nox -s security): many more examples for every property test.
settings.register_profile(
    "fuzz",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that takes the Redis server, so ``-m redis`` / ``-k redis`` selects it."""
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


@pytest.fixture
def key(sim: Simulator) -> ApiKey:
    return sim.create_key()


def _tls_options(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


@pytest.fixture
def tls_options() -> Any:
    """A function giving the client keyword arguments for a pinned connection to a server."""
    return _tls_options


@pytest.fixture(params=["in-process", "tls"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(sim: Simulator, mode: str) -> Iterator[Any]:
    """Build sync clients over the chosen path; closes them at the end."""
    made: list[Client] = []
    server = sim.serve() if mode == "tls" else None

    def build(key: ApiKey, **kwargs: Any) -> Client:
        kwargs.setdefault("journal", ":memory:")
        if server is None:
            client = Client(key, transport=sim.transport(), **kwargs)
        else:
            client = Client(key, **_tls_options(server), **kwargs)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def span_exporter() -> Any:
    """An in-memory exporter receiving every span finished from now on.

    OpenTelemetry accepts one global provider per process: this adds a processor to the
    SDK provider already installed (another test module may have set one), or installs one.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def metric_reader() -> Any:
    """An in-memory reader of every securetrade metric (one global meter provider)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader
