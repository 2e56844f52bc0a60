"""Fixtures of the behavioural suite: the transport under test, its clients, the example
third-party adapter installed for the run."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from third_party import install_example
from transports import TRANSPORTS, Transport

from securetrade import Client
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator


@pytest.fixture(scope="session", autouse=True)
def example_adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/third_party_venue, installed as a distribution (code plus dist-info)."""
    site = install_example(tmp_path_factory.mktemp("site"))
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield site
    sys.path.remove(str(site))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The strict simulator with Kraken's call counters off (``kraken_limits=None``): the
    suite lifts the client's Kraken limiter to run fast (transports.py), and tests
    behaviour, not counters; tests/test_kraken.py and tests/test_sim_conformance.py test
    the counters."""
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture(params=TRANSPORTS, ids=[t.name for t in TRANSPORTS])
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make(transport: Transport, sim: Simulator, server: HttpsServer) -> Iterator[Any]:
    """``make(key=None, **client_options)``: a client over TLS; closed at the end."""
    made: list[Client] = []

    def build(key: ApiKey | None = None, **kwargs: Any) -> Client:
        client = transport.client(sim, server, key or transport.key(sim), **kwargs)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()
