"""The pinned context of securetrade.transport.tls, handed to ccxt's own HTTP stacks.

Sync ccxt goes through requests/urllib3 (an HTTPAdapter whose pool manager gets the
context), async ccxt through aiohttp (``exchange.ssl_context``). Both must refuse a server
without a pinned key before writing a byte.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ccxt = pytest.importorskip("ccxt")
ccxt_async = pytest.importorskip("ccxt.async_support")
requests_adapters = pytest.importorskip("requests.adapters")

from securetrade.sim.binance import SimResponse  # noqa: E402
from securetrade.sim.certs import make_certificates  # noqa: E402
from securetrade.sim.server import HttpsServer  # noqa: E402
from securetrade.transport.tls import PinFailure, PinSet, pinned_ssl_context  # noqa: E402

SERVER_TIME = 1_700_000_000_123


class Recorder:
    """The test venue: answers GET /api/v3/time and remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(
        self, method: str, target: str, headers: dict[str, str], body: bytes, client: str
    ) -> SimResponse:
        with self._lock:
            self.calls.append((method, target))
        if method == "GET" and urlsplit(target).path == "/api/v3/time":
            payload = {"serverTime": SERVER_TIME}
            return SimResponse(
                200, {"content-type": "application/json"}, json.dumps(payload).encode()
            )
        return SimResponse(404, {"content-type": "application/json"}, b'{"code":-1,"msg":"?"}')


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[HttpsServer]:
    with HttpsServer(recorder, certificates=make_certificates()) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def right_context(server: HttpsServer) -> Any:
    return pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)


def wrong_context(server: HttpsServer) -> Any:
    """Trusts the server's CA (so only the pins are wrong), pins an unrelated CA and leaf."""
    other = make_certificates()
    pins = PinSet({server.host: [other.leaf_pin, other.ca_pin]})
    return pinned_ssl_context(pins, cadata=server.ca_pem)


def point_at(exchange: Any, base_url: str) -> None:
    """Rewrite every ccxt API root to the test server, keeping the paths."""
    target = urlsplit(base_url)
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            parts = urlsplit(url)
            api[name] = urlunsplit((target.scheme, target.netloc, parts.path, "", ""))


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: ``__cause__``, ``__context__``, urllib3's ``reason``
    and exceptions passed as arguments (urllib3 wraps the ssl error that way)."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(found) < 100:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        todo += [item for item in linked if isinstance(item, BaseException)]
    return found


def assert_nothing_sent(server: HttpsServer, recorder: Recorder) -> None:
    deadline = time.monotonic() + 5.0
    while sum(server.handshakes) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # a client that did write a request would have it counted by now
    assert sum(server.handshakes) >= 1, "ccxt never reached the server"
    assert server.bytes_received == 0
    assert recorder.calls == []


# --- sync: requests / urllib3 ----------------------------------------------------------------


class PinnedAdapter(requests_adapters.HTTPAdapter):  # type: ignore[misc, name-defined]
    def __init__(self, ssl_context: Any, **kwargs: Any) -> None:
        self._ssl_context = ssl_context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **pool_kwargs)


def sync_fetch_time(server: HttpsServer, ctx: Any) -> int:
    exchange = ccxt.binance({"timeout": 5000})
    try:
        exchange.session.mount("https://", PinnedAdapter(ctx))
        point_at(exchange, server.base_url)
        return exchange.fetch_time()
    finally:
        exchange.session.close()


def test_sync_ccxt_right_pin(server: HttpsServer, recorder: Recorder) -> None:
    assert sync_fetch_time(server, right_context(server)) == SERVER_TIME
    assert recorder.calls == [("GET", "/api/v3/time")]
    assert server.bytes_received > 0


def test_sync_ccxt_wrong_pin(server: HttpsServer, recorder: Recorder) -> None:
    with pytest.raises(ccxt.NetworkError) as caught:
        sync_fetch_time(server, wrong_context(server))

    pin_failures = [e for e in causes(caught.value) if isinstance(e, PinFailure)]
    assert pin_failures, f"no PinFailure behind {caught.value!r}"
    assert pin_failures[0].host == server.host
    assert server.certificates.leaf_pin in pin_failures[0].seen
    assert_nothing_sent(server, recorder)


# --- async: aiohttp --------------------------------------------------------------------------


def async_fetch_time(server: HttpsServer, ctx: Any) -> int:
    async def main() -> int:
        exchange = ccxt_async.binance({"timeout": 5000})
        try:
            exchange.ssl_context = ctx  # before the first request opens the session
            point_at(exchange, server.base_url)
            return await exchange.fetch_time()
        finally:
            await exchange.close()

    return asyncio.run(main())


def test_async_ccxt_right_pin(server: HttpsServer, recorder: Recorder) -> None:
    assert async_fetch_time(server, right_context(server)) == SERVER_TIME
    assert recorder.calls == [("GET", "/api/v3/time")]
    assert server.bytes_received > 0


def test_async_ccxt_wrong_pin(server: HttpsServer, recorder: Recorder) -> None:
    with pytest.raises(ccxt.NetworkError) as caught:
        async_fetch_time(server, wrong_context(server))

    assert isinstance(caught.value, ccxt.ExchangeNotAvailable)
    pin_failures = [e for e in causes(caught.value) if isinstance(e, PinFailure)]
    assert pin_failures, f"no PinFailure behind {caught.value!r}"
    assert pin_failures[0].host == server.host
    assert_nothing_sent(server, recorder)
