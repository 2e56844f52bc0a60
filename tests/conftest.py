"""Shared fixtures: the simulator in-process and over real TLS on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redis_server import redis_url  # noqa: F401  (fixture: a real redis-server)
from securetrade import Client
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator


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
