"""Alpaca with an OAuth credential, end to end over TLS on 127.0.0.1: the simulated
authorization server issues the tokens, the Alpaca dialect accepts them for the account
that approved the app, and the client renews them ahead of expiry and once after a 401
(reads, lookups and cancels only: a refused create is not placed, and not resent)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient, Client, LimitOrder, OrderNotFound, Settings
from securetrade.core import IntentState
from securetrade.errors import AccessTokenRefused, InvalidRequest, ReauthorizationRequired
from securetrade.keys import ApiKey, KeyStore
from securetrade.models import OrderStatus
from securetrade.oauth import OAuthKey, TokenEndpoint, TokenSource, login
from securetrade.sim import HttpsServer
from securetrade.sim.brokers import BrokerSimulator
from securetrade.sim.oauth import OAuthServerSim
from securetrade.transport.redaction import install_log_redaction
from test_oauth import CHEAP_KDF, CLIENT_SECRET, PASSPHRASE, _browser, _context, _rendered

FAST = Settings(settle_ms=300, resolve_timeout=10.0)
TTL = 600  # seconds an access token lives
UNAUTHORIZED = 40110000


class Clocks:
    """The authorization server's clock and the client's, moved by hand (no sleeping)."""

    def __init__(self) -> None:
        self.base = time.time()
        self.server_skew = 0.0
        self.client_skew = 0.0

    def server(self) -> float:
        return self.base + self.server_skew + (time.time() - self.base)

    def client(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.client_skew)

    def advance(self, seconds: float) -> None:
        self.server_skew += seconds
        self.client_skew += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def broker() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("alpaca") as simulator:
        yield simulator


@pytest.fixture
def auth(broker: BrokerSimulator, clocks: Clocks) -> OAuthServerSim:
    server = OAuthServerSim(access_ttl=TTL, clock=clocks.server)
    server.register_client("alpaca-app", CLIENT_SECRET)
    broker.authorize(server)
    return server


@pytest.fixture
def auth_server(auth: OAuthServerSim) -> Iterator[HttpsServer]:
    running = auth.serve()
    yield running
    running.stop()


@pytest.fixture
def api(broker: BrokerSimulator) -> HttpsServer:
    return broker.serve()


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.create(tmp_path / "keys.json.enc", PASSPHRASE, kdf=CHEAP_KDF)


_ENDPOINTS: list[TokenEndpoint] = []


@pytest.fixture(autouse=True)
def _close_endpoints() -> Iterator[None]:
    yield
    while _ENDPOINTS:
        _ENDPOINTS.pop().close()


def _endpoint(served: HttpsServer) -> TokenEndpoint:
    endpoint = TokenEndpoint(
        served.base_url + "/token", ssl_context=_context(served), venue="alpaca"
    )
    _ENDPOINTS.append(endpoint)
    return endpoint


def _login(store: KeyStore, served: HttpsServer) -> None:
    from securetrade.keys import Secret
    from securetrade.oauth import OAuthCredential

    credential = OAuthCredential(
        venue="alpaca",
        client_id="alpaca-app",
        client_secret=Secret(CLIENT_SECRET),
        token_url=served.base_url + "/token",
        authorize_url=served.base_url + "/authorize",
        scope="trading",
    )
    login(
        store,
        "alpaca",
        credential,
        endpoint=_endpoint(served),
        open_browser=_browser(served),
        timeout=10,
    )


def _source(store: KeyStore, served: HttpsServer, clocks: Clocks) -> TokenSource:
    return TokenSource(
        store,
        "alpaca",
        endpoint=_endpoint(served),
        margin=timedelta(seconds=60),
        clock=clocks.client,
    )


def _key(source: TokenSource) -> OAuthKey:
    return OAuthKey(source, scopes=["read", "trade", "cancel"])


def _client(key: ApiKey, api: HttpsServer, **kwargs: Any) -> Client:
    kwargs.setdefault("journal", ":memory:")
    return Client(
        key,
        venue="alpaca",
        base_url=api.base_url,
        pins=api.pins,
        cadata=api.ca_pem,
        settings=FAST,
        recv_window_ms=300,
        **kwargs,
    )


def _refused(broker: BrokerSimulator) -> int:
    return broker.dialect.stats.rejections.get(UNAUTHORIZED, 0)


def _resting(price: str = "100.00") -> LimitOrder:
    return LimitOrder(symbol="AAPL", side="BUY", quantity="1", price=price)


def test_place_lookup_cancel_with_a_token_that_expires_and_is_revoked_mid_run(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    clocks: Clocks,
) -> None:
    _login(store, auth_server)
    source = _source(store, auth_server, clocks)
    with _client(_key(source), api) as client:
        first = client.place_order(_resting(), idempotency_key="o1")
        assert first.status is OrderStatus.NEW
        assert auth.refresh_calls == 0
        # Both clocks reach the margin before expiry: renewed ahead, no 401 ever seen.
        clocks.advance(TTL - 30)
        found = client.get_order("AAPL", client_order_id=first.client_order_id)
        assert found.order_id == first.order_id
        assert (auth.refresh_calls, _refused(broker)) == (1, 0)
        # The server's clock runs ahead: it calls the token expired, the client does not.
        clocks.server_skew += TTL + 5
        found = client.get_order("AAPL", client_order_id=first.client_order_id)
        assert found.order_id == first.order_id
        assert (auth.refresh_calls, _refused(broker)) == (2, 1)  # one 401, one refresh
        # The owner revokes the token: the cancel is refused once, renewed, sent again.
        live = auth.live_tokens()[-1]  # the newest: the one the client holds
        auth.revoke(live)
        cancelled = client.cancel_order("AAPL", client_order_id=first.client_order_id)
        assert cancelled.status is OrderStatus.CANCELED
        assert (auth.refresh_calls, _refused(broker)) == (3, 2)
        # A create refused at the door is not placed and not resent on its own...
        live = auth.live_tokens()[-1]  # the newest: the one the client holds
        auth.revoke(live)
        posts = broker.dialect.stats.by_path.get("POST /v2/orders", 0)
        with pytest.raises(AccessTokenRefused, match="idempotency key may be used"):
            client.place_order(_resting("99.00"), idempotency_key="o2")
        assert broker.dialect.stats.by_path["POST /v2/orders"] == posts + 1
        assert auth.refresh_calls == 3  # renewed before the next request, not now
        cid = client.core.venue.client_order_id(client.core.account, "o2")
        intent = client.journal.get(cid)
        assert intent is not None
        assert intent.state is IntentState.NOT_PLACED
        assert broker.market.orders_with_client_id(cid) == []
        # ...and placing it again with the same key renews first, then places it once.
        second = client.place_order(_resting("99.00"), idempotency_key="o2")
        assert second.client_order_id == cid
        assert auth.refresh_calls == 4
        assert len(broker.market.orders_with_client_id(cid)) == 1
    # The token is the account's that approved the app: another account's order is unseen.
    other = broker.create_key()
    with _client(other, api) as stranger:
        theirs = stranger.place_order(_resting("98.00"), idempotency_key="x")
    with _client(_key(source), api) as client, pytest.raises(OrderNotFound):
        client.get_order("AAPL", client_order_id=theirs.client_order_id)


def test_a_dead_refresh_token_asks_for_a_login_and_other_venues_refuse_the_key(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    clocks: Clocks,
) -> None:
    _login(store, auth_server)
    source = _source(store, auth_server, clocks)
    key = _key(source)
    assert key.key_id == "oauth-alpaca"
    assert key.restrict(scopes=["read"]).source is source
    # A venue without OAuth refuses such a key before anything is sent.
    store.put_oauth("fx", replace(store.oauth("alpaca"), venue="oanda"))
    fx = OAuthKey(TokenSource(store, "fx", endpoint=_endpoint(auth_server)))
    with pytest.raises(InvalidRequest, match="takes no OAuth"):
        Client(fx, journal=":memory:", unsafe_disable_pinning=True)
    auth.revoke_refresh_tokens()  # the owner removed the app: its refresh token is dead
    live = auth.live_tokens()[-1]  # the newest: the one the client holds
    auth.revoke(live)
    with _client(key, api) as client, pytest.raises(ReauthorizationRequired, match="login"):
        client.balances()
    assert auth.refused == ["invalid_grant"]


def test_reauthorization_is_required_ahead_of_the_hard_expiry_before_any_request(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    clocks: Clocks,
) -> None:
    auth.refresh_ttl = 3600  # the refresh token dies in an hour: a person must log in
    _login(store, auth_server)
    source = TokenSource(
        store, "alpaca", endpoint=_endpoint(auth_server), warning=timedelta(hours=2)
    )
    with (
        _client(_key(source), api) as client,
        pytest.raises(ReauthorizationRequired, match="can be renewed only until"),
    ):
        client.balances()
    assert broker.dialect.stats.requests == 0  # nothing reached the broker
    assert auth.refresh_calls == 0


def test_eight_processes_trading_with_one_credential_make_one_refresh_call(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    tmp_path: Path,
) -> None:
    _login(store, auth_server)
    stale = store.oauth("alpaca")
    store.put_oauth("alpaca", replace(stale, expires_at=datetime.now(timezone.utc)))
    auth.refresh_delay = 0.3  # every process reaches the lock while the refresh is out
    pass_file = tmp_path / "pass"
    pass_file.write_bytes(PASSPHRASE)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(auth_server.ca_pem + api.ca_pem)
    go = tmp_path / "go"
    child = Path(__file__).with_name("alpaca_oauth_child.py")
    argv = [
        sys.executable,
        str(child),
        str(store.path),
        str(pass_file),
        auth_server.base_url,
        ",".join(auth_server.pins[auth_server.host]),
        api.base_url,
        ",".join(api.pins[api.host]),
        str(ca_file),
        str(go),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = [
        subprocess.Popen([*argv, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for n in range(8)
    ]
    go.touch()
    results = [c.communicate(timeout=180) for c in children]
    assert [c.returncode for c in children] == [0] * 8, [r[1][-800:] for r in results]
    assert auth.refresh_calls == 1
    assert auth.refused == []
    assert _refused(broker) == 0
    account = auth.resource_owner
    assert len(broker.market.open_orders(account, None)) == 8  # one order per process


def test_the_async_refresh_leaves_the_event_loop_running(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    clocks: Clocks,
) -> None:
    """While the authorization server holds the refresh, another coroutine on the same
    loop keeps running: it is the one that lets the server answer, after 20 turns of the
    loop. Had the refresh blocked the loop, it could never take those turns."""
    _login(store, auth_server)
    source = _source(store, auth_server, clocks)
    gate = threading.Event()
    turns = [0]

    async def ticker() -> None:
        while not auth.held.is_set():  # until a refresh waits at the server
            await asyncio.sleep(0.005)
        for _ in range(20):
            await asyncio.sleep(0)
            turns[0] += 1
        gate.set()  # the loop took 20 turns during the refresh: let the server answer

    async def run() -> list[Any]:
        client = AsyncClient(
            _key(source),
            venue="alpaca",
            base_url=api.base_url,
            pins=api.pins,
            cadata=api.ca_pem,
            journal=":memory:",
            settings=FAST,
            recv_window_ms=300,
        )
        async with client:
            await client.sync_clock()
            placed = await client.place_order(_resting(), idempotency_key="a1")
            clocks.advance(TTL - 30)  # the token is now due
            auth.refresh_gate = gate
            lookups = [
                client.get_order("AAPL", client_order_id=placed.client_order_id) for _ in range(16)
            ]
            return list(await asyncio.gather(ticker(), *lookups))

    results = asyncio.run(run())
    assert turns[0] >= 20
    assert all(order.status is OrderStatus.NEW for order in results[1:])
    assert auth.refresh_calls == 1  # sixteen tasks, one refresh
    assert _refused(broker) == 0


def test_no_token_in_debug_logs_spans_reprs_or_tracebacks(
    broker: BrokerSimulator,
    auth: OAuthServerSim,
    auth_server: HttpsServer,
    api: HttpsServer,
    store: KeyStore,
    clocks: Clocks,
    caplog: pytest.LogCaptureFixture,
    span_exporter: Any,
) -> None:
    install_log_redaction()
    span_exporter.clear()
    caplog.set_level(logging.DEBUG)
    _login(store, auth_server)
    source = _source(store, auth_server, clocks)
    key = _key(source)
    failures: list[BaseException] = []
    with _client(key, api) as client:
        placed = client.place_order(_resting(), idempotency_key="s1")
        clocks.advance(TTL - 30)
        client.get_order("AAPL", client_order_id=placed.client_order_id)  # renewed ahead
        auth.revoke(auth.live_tokens()[-1])  # the newest: the one the client holds
        client.cancel_order("AAPL", client_order_id=placed.client_order_id)  # 401, renewed
        auth.revoke(auth.live_tokens()[-1])  # the newest: the one the client holds
        try:
            client.place_order(_resting("99.00"), idempotency_key="s2")
        except AccessTokenRefused as exc:
            failures.append(exc)
        auth.revoke_refresh_tokens()
        auth.revoke(auth.live_tokens()[-1])  # the newest: the one the client holds
        try:
            client.balances()
        except ReauthorizationRequired as exc:
            failures.append(exc)
        texts = [repr(client), repr(client.core.keys), str(vars(client.core))]
    assert len(failures) == 2
    spans = span_exporter.get_finished_spans()
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("securetrade") for r in ours)
    texts += [
        "\n".join(caplog.handler.format(r) for r in ours),
        "\n".join(f"{s.name} {dict(s.attributes)} {s.events}" for s in spans),
        *(_rendered(exc) for exc in failures),
        repr(key),
        repr(source),
        repr(store.oauth("alpaca")),
    ]
    issued = [*auth.issued, *auth._codes, CLIENT_SECRET.decode()]
    assert len(issued) >= 8  # 3 access and 3 refresh tokens, the code, the client secret
    for text in texts:
        for value in issued:
            assert value not in text, "a token leaked"
