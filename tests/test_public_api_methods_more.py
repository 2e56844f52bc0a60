"""The method walk of ``test_public_api_methods``, carried on to the exported classes it did
not reach: the venue adapters (more classes follow below).

Same rule: one hostile argument at a time; the call accepts it or raises a
:class:`SecureTradeError`, and anything else is an escape.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import (
    AuditKey,
    Decision,
    Instrument,
    RetryPolicy,
    SecureTradeError,
    oauth,
    policy,
    signing,
    sim,
    verify,
)
from securetrade.copy import CopyKeys, EventKeys, EventReport, LeaderSnapshot
from securetrade.core.history import Window
from securetrade.gateway import GatewayMiddleware
from securetrade.keys import ApiKey, KdfParams, Secret
from securetrade.keys.check import KeyCheck
from securetrade.models import LimitOrder, MarketOrder
from securetrade.nonce import FileNonceSource
from securetrade.privacy import OpenedRecord
from securetrade.ratelimit import Caller, CostRule, Limits, RateLimit, RateLimiter
from securetrade.transport import HttpResponse, PinSet, Proxy, Timeout
from securetrade.transport.tls import PinFailure
from securetrade.venues import Op, Outcome, Verdict, get_venue
from test_public_api_methods import (
    BASELINE,
    HOSTILE,
    OVERRIDES,
    TARGET_WITH,
    _cases,
    _dunder_backlog,  # noqa: F401  (autouse: the backlog's walks use BASE_HOSTILE)
    _escape,
    _finish_sync,
    _public_methods,
    _walk,
    shown,
)

VENUES = ["binance", "kraken", "alpaca", "oanda", "ccxt:bybit"]  # ccxt: no ccxt import needed

#: A symbol each venue's grammar accepts.
SYMBOLS = {
    "binance": "BTCUSDT",
    "kraken": "XBTUSDT",
    "alpaca": "AAPL",
    "oanda": "EUR_USD",
    "ccxt:bybit": "BTC/USDT",
}


def _venue_key(name: str) -> ApiKey:
    # Kraken takes a base64 secret; made here, so that no literal looks like a key.
    secret = base64.b64encode(b"walk" * 8).decode() if name == "kraken" else "walk-secret"
    return ApiKey(name, "walk-key-0001", secret, scopes=["read", "trade"])


def _venue_arguments(name: str) -> dict[str, Any]:
    """Working arguments of a venue's methods, by parameter name."""
    venue = get_venue(name)
    symbol = SYMBOLS[name]
    endpoint = venue.endpoints[Op.PLACE_ORDER]
    return {
        "symbol": symbol,
        "endpoint": endpoint,
        "params": lambda tmp: [("symbol", symbol)],
        "key_id": "walk-key-0001",
        "signer": lambda tmp: venue.signer(_venue_key(name)),
        "timestamp_ms": 1_700_000_000_000,
        "payload": lambda tmp: {},
        "order": lambda tmp: LimitOrder(symbol=symbol, side="BUY", quantity="1", price="10"),
        "client_order_id": venue.client_order_id("walk", "walk-1"),
        "account": "walk",
        "idempotency_key": "walk-1",
        "interval": "1m",
        "since_ms": None,
        "limit": None,
        "depth": 5,
        "cursor": None,
        "made": lambda tmp: Window(
            Op.TRADES, symbol, symbol, None, 1_700_000_000_000, 1_700_000_100_000
        ),
        "asset": "BTC",
        "amount": Decimal("0.1"),
        "address": "walk-address",
        "network": None,
        "response": lambda tmp: HttpResponse(200, b"{}"),
        "key": lambda tmp: _venue_key(name),
        "outcome": lambda tmp: Outcome(Verdict.OK, {}, None),
        "environment": "live",  # ccxt's bind() and open_transport()
        "context": None,
        "asynchronous": False,
        "timeout": 5.0,
        "proxy": None,
        "unsafe_allow_plain_http": False,
    }


@pytest.mark.parametrize("name", VENUES)
def test_venue_methods_refuse_hostile_arguments(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each adapter's public methods: a venue is exported, and a platform calls its
    ``prepare``, ``order_params`` and parsers with what its own code built."""
    for argument, value in _venue_arguments(name).items():
        monkeypatch.setitem(BASELINE, argument, value)
    venue = get_venue(name)
    cls = type(venue)
    escapes = [e for method in _public_methods(cls) for e in _walk(venue, cls, method, tmp_path)]
    assert not escapes, "\n".join(escapes)


@pytest.mark.parametrize("name", VENUES)
def test_venue_prepare_refuses_a_params_list_with_a_wrong_pair(name: str) -> None:
    """Inside a list, each pair is checked too: a number, a string standing for a pair
    ("ab" unpacks as two letters), a three-item tuple."""
    venue = get_venue(name)
    endpoint = venue.endpoints[Op.PLACE_ORDER]
    signer = venue.signer(_venue_key(name))
    for params in ([("symbol", 1)], ["ab"], [("a", "b", "c")], [(b"a", "b")], [["a", "b"]]):
        with pytest.raises(SecureTradeError, match="params must be a list of"):
            venue.prepare(
                endpoint, params, key_id="walk", signer=signer, timestamp_ms=1_700_000_000_000
            )


# --- pins, signers, the inbound verifier, the token endpoint, policy, the simulator ----------


def _der() -> bytes:
    """A real certificate (the simulator's leaf), in DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from securetrade.sim.certs import make_certificates

    pem = make_certificates().cert_pem
    return x509.load_pem_x509_certificates(pem)[0].public_bytes(Encoding.DER)


def _pins() -> Any:

    return PinSet({"127.0.0.1": ["sha256/" + "A" * 43 + "=", "sha256/" + "B" * 43 + "="]})


def _jwt_signer() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from securetrade.keys import KeyKind
    from securetrade.signing import JwtSigner

    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return JwtSigner("walk-kid", Secret(base64.b64encode(seed + public)), KeyKind.ED25519)


def _verifier() -> Any:
    from securetrade.verify import InboundKey, Verifier

    key = InboundKey.hmac("walk-key-0001", Secret(b"walk-inbound-secret-00001"), name="walk")
    return Verifier([key])


def _key_check() -> Any:
    from securetrade.keys import KeyPermissions, Scope
    from securetrade.keys.check import assess

    permissions = KeyPermissions({"enableReading": frozenset({Scope.READ})}, True)
    return assess(_venue_key("binance"), permissions)


#: Each class walked here, and how to build one (closed after its walk when it can be).
MORE_TARGETS: dict[type, Callable[[Path], Any]] = {
    PinSet: lambda tmp: _pins(),
    signing.KrakenSigner: lambda tmp: _signers()["KrakenSigner"](),
    signing.OkxSigner: lambda tmp: _signers()["OkxSigner"](),
    signing.KucoinSigner: lambda tmp: _signers()["KucoinSigner"](),
    signing.BybitSigner: lambda tmp: _signers()["BybitSigner"](),
    signing.JwtSigner: lambda tmp: _jwt_signer(),
    signing.Ed25519Signer: lambda tmp: _signers()["Ed25519Signer"](),
    signing.HmacSha256Base64Signer: lambda tmp: _signers()["HmacSha256Base64Signer"](),
    verify.Verifier: lambda tmp: _verifier(),
    verify.MessageSigner: lambda tmp: _message_signer(),
    verify.SqliteReplayStore: lambda tmp: _replay_store(tmp),
    oauth.TokenEndpoint: lambda tmp: _token_endpoint(),
    policy.NewSymbol: lambda tmp: policy.NewSymbol(),
    policy.OrderRateSpike: lambda tmp: policy.OrderRateSpike(),
    policy.RejectionBurst: lambda tmp: policy.RejectionBurst(),
    policy.SizeOutlier: lambda tmp: policy.SizeOutlier(),
    policy.WithdrawalAttempt: lambda tmp: policy.WithdrawalAttempt(),
    policy.CancelReplaceLoop: lambda tmp: policy.CancelReplaceLoop(),
    policy.MemorySwitchStore: lambda tmp: policy.MemorySwitchStore(),
    policy.SqliteSwitchStore: lambda tmp: _switch_store(tmp),
    KeyCheck: lambda tmp: _key_check(),
    sim.Simulator: lambda tmp: sim.Simulator(),
    sim.Faults: lambda tmp: sim.Faults(),
    sim.Fault: lambda tmp: sim.Fault("drop_request"),
    sim.SimTransport: lambda tmp: sim.Simulator().transport(),
    signing.RsaSigner: lambda tmp: signing.RsaSigner(Secret(_rsa_pem())),
    verify.InboundKey: lambda tmp: verify.InboundKey,  # its constructors are classmethods
    oauth.OAuthCredential: lambda tmp: BASELINE["credential"](tmp),
    AuditKey: lambda tmp: AuditKey.generate(),
    Decision: lambda tmp: Decision,
    RetryPolicy: lambda tmp: RetryPolicy(),
    Instrument: lambda tmp: _instrument(),
    FileNonceSource: lambda tmp: FileNonceSource(tmp / "nonces"),
    Timeout: lambda tmp: Timeout,
    Proxy: lambda tmp: Proxy("http://127.0.0.1:3128"),
    KdfParams: lambda tmp: KdfParams(),
    CostRule: lambda tmp: CostRule("symbol", {"weight": 2}),
    Caller: lambda tmp: Caller,
    oauth.TokenSource: lambda tmp: _token_source(tmp),
    oauth.BearerSigner: lambda tmp: oauth.BearerSigner(_token_source(tmp)),
    oauth.OAuthKey: lambda tmp: oauth.OAuthKey(_token_source(tmp), scopes=["read", "trade"]),
    MarketOrder: lambda tmp: MarketOrder(symbol="BTCUSDT", side="BUY", quote_quantity="100"),
    CopyKeys: lambda tmp: CopyKeys(Secret(b"walk-copy-secret-000000000000")),
    EventKeys: lambda tmp: CopyKeys(Secret(b"walk-copy-secret-000000000000")).event("walk-event"),
    Limits: lambda tmp: Limits(RateLimiter.in_memory([RateLimit("weight", 60.0, 1200)])),
    LeaderSnapshot: lambda tmp: BASELINE["snapshot"](tmp),
    EventReport: lambda tmp: EventReport(BASELINE["event"](tmp), (), 0.5),
    GatewayMiddleware: lambda tmp: _middleware(),
    OpenedRecord: lambda tmp: OpenedRecord(
        1, "2026-01-01T00:00:00Z", "walk", {}, None, None, "open"
    ),
}


def _token_source(tmp: Path) -> Any:
    """A source over a keystore holding a fresh token (nothing is refreshed)."""
    from securetrade import KeyStore
    from test_public_api_methods import FAST_KDF

    store = KeyStore.create(tmp / "oauth-keys.json", "walk-passphrase-0001", kdf=FAST_KDF)
    credential = oauth.OAuthCredential(
        "alpaca",
        "walk-client",
        "https://example.test/token",
        "https://example.test/auth",
        access_token=Secret(b"walk-access-token"),
        expires_at=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    store.put_oauth("walk", credential)
    return oauth.TokenSource(store, "walk")


def _middleware() -> Any:
    from securetrade.gateway import Route

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """An app that is never reached (nothing is served here)."""

    read = frozenset({"read"})
    return GatewayMiddleware(app, keys=_registry(), routes=[Route("GET", "/whoami", scopes=read)])


def _registry() -> Any:
    from securetrade.gateway import GatewayKey, KeyRegistry

    secret = Secret(b"walk-gateway-secret-0001")
    return KeyRegistry([GatewayKey.hmac("walk-key-0001", secret, tenant="walk")])


def _rsa_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _instrument() -> Any:
    return get_venue("binance").parse_instruments(
        {
            "symbols": [
                {
                    "symbol": "BTCUSDT",
                    "status": "TRADING",
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "tickSize": "0.01",
                            "minPrice": "0.01",
                            "maxPrice": "1000000",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "stepSize": "0.00001",
                            "minQty": "0.00001",
                            "maxQty": "9000",
                        },
                        {"filterType": "NOTIONAL", "minNotional": "5"},
                    ],
                }
            ]
        }
    )["BTCUSDT"]


def _signers() -> dict[str, Callable[[], Any]]:
    secret = Secret(b"walk-signing-secret-0001")
    return {
        "KrakenSigner": lambda: signing.KrakenSigner(Secret(base64.b64encode(b"k" * 64))),
        "OkxSigner": lambda: signing.OkxSigner(secret, Secret(b"walk-pass")),
        "KucoinSigner": lambda: signing.KucoinSigner(secret, Secret(b"walk-pass")),
        "BybitSigner": lambda: signing.BybitSigner(secret),
        "Ed25519Signer": lambda: signing.Ed25519Signer(Secret(_ed25519_pem())),
        "HmacSha256Base64Signer": lambda: signing.HmacSha256Base64Signer(secret),
    }


def _ed25519_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    private = ed25519.Ed25519PrivateKey.generate()
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _message_signer() -> Any:
    from securetrade.verify import MessageSigner

    return MessageSigner("walk-key-0001", Secret(b"walk-inbound-secret-00001"))


def _replay_store(tmp: Path) -> Any:
    from securetrade.verify import SqliteReplayStore

    return SqliteReplayStore(tmp / "replay.sqlite3")


def _token_endpoint() -> Any:
    from securetrade.oauth import TokenEndpoint

    return TokenEndpoint("https://127.0.0.1:9/token", timeout=0.5)  # nothing listens


def _switch_store(tmp: Path) -> Any:
    from securetrade.policy import SqliteSwitchStore

    return SqliteSwitchStore(tmp / "switch.sqlite3")


def _more_arguments() -> dict[str, Any]:
    """Working arguments of the classes above, by parameter name."""
    from securetrade.policy import KillState
    from securetrade.sim import Fault
    from securetrade.transport import HttpRequest

    return {
        "chain": lambda tmp: [_der()],
        "host": "127.0.0.1",
        "pins": lambda tmp: {"127.0.0.1": ["sha256/" + "A" * 43 + "="]},
        "der": lambda tmp: _der(),
        "uri_path": "/0/private/Balance",
        "postdata": "nonce=1",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "method": "GET",
        "request_path": "/api/v5/account/balance",
        "timestamp_ms": 1_700_000_000_000,
        "api_key": "walk-key-0001",
        "recv_window_ms": 5000,
        "path": "/api/v3/brokerage/accounts",
        "now_s": 1_700_000_000,
        "claims": lambda tmp: {"sub": "walk"},
        "target": "/orders",
        "headers": lambda tmp: {},
        "body": b"{}",
        "code": lambda tmp: Secret(b"walk-code"),
        "verifier": lambda tmp: Secret(b"walk-verifier-" + b"v" * 40),
        "redirect_uri": "http://127.0.0.1:8080/callback",
        "refuse": False,
        "state": lambda tmp: KillState(True, "walk", 1_700_000_000.0),
        "key_id": "walk-key-0001",
        "fault": lambda tmp: Fault("drop_request"),
        "probability": 0.5,
        "faults": lambda tmp: [Fault("drop_request")],
        "client": None,
        "request": lambda tmp: HttpRequest("GET", "/api/v3/time"),
        "public_key": b"\x01" * 32,
        "pem": lambda tmp: AuditKey.generate().private_pem(),
        "digest": b"\x00" * 32,
        "rule": "walk",
        "reason": "walk",
        "order": lambda tmp: LimitOrder(
            symbol="BTCUSDT", side="BUY", quantity="0.001", price="100"
        ),
        "tokens": lambda tmp: {"access_token": "walk-access", "expires_in": 3600},
        "now": lambda tmp: datetime.now(timezone.utc),
        "margin": lambda tmp: timedelta(seconds=60),
        "value": 5.0,
        "port": 443,
        "salt": b"\x00" * 16,
        "event_id": "walk-event",
        "follower_id": "walk-f",
        "leg": 0,
        "minutes": 5.0,
        "price": Decimal("100"),
        "keys": lambda tmp: _registry(),
        "quantile": 0.5,
        "include_restricted": False,
        "params": lambda tmp: [("symbol", "BTCUSDT")],
    }


#: Where one method needs another baseline than the name's.
MORE_OVERRIDES: dict[tuple[str, str], Any] = {
    ("KrakenSigner.sign_request", "nonce"): 1,
    ("JwtSigner.coinbase_token", "method"): "GET",
    ("Faults.inject", "kind"): "drop_request",
    ("Faults.take", "path"): "/api/v3/time",
    ("Fault.matches", "path"): "/api/v3/time",
    ("Simulator.handle", "target"): "/api/v3/time",
    ("SqliteSwitchStore.read", "name"): "walk",
    ("SqliteReplayStore.remember", "now_ms"): 1_700_000_000_000,
    ("TokenSource.refused", "token"): lambda tmp: Secret(b"walk-access-token"),
}

#: Answers a class documents besides a SecureTradeError: PinSet.check raises the
#: handshake's PinFailure (an ssl.SSLError, turned into PinMismatch by the transports)
#: for a chain carrying none of the host's pins, as it must inside a handshake.
DOCUMENTED: dict[type, tuple[type[BaseException], ...]] = {PinSet: (PinFailure,)}

#: Methods not walked here, and why.
MORE_NOT_WALKED = {
    "Simulator.serve",  # each starts servers (their port is walked by the constructor walk)
    "Simulator.serve_fast",
    "Simulator.serve_ws",
    "Simulator.serve_kraken_ws",
    "Limits.plot",  # draws with matplotlib (an extra); history() is the same reading
}


def _more_cases() -> list[tuple[type, str]]:
    return [
        (cls, method)
        for cls in MORE_TARGETS
        for method in _public_methods(cls)
        if f"{cls.__name__}.{method}" not in MORE_NOT_WALKED
        and not method.startswith("model_")  # pydantic's own, documented ValidationError
    ]


@pytest.mark.parametrize(
    ("cls", "method"), _more_cases(), ids=[f"{c.__name__}.{m}" for c, m in _more_cases()]
)
def test_more_methods_refuse_hostile_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type, method: str
) -> None:
    """Pins, signers, the inbound verifier, the token endpoint, the policy detectors and
    switch stores, the key check and the simulator's public classes."""
    monkeypatch.chdir(tmp_path)
    for argument, value in _more_arguments().items():
        monkeypatch.setitem(BASELINE, argument, value)
    for where, value in MORE_OVERRIDES.items():
        monkeypatch.setitem(OVERRIDES, where, value)
    obj = MORE_TARGETS[cls](tmp_path)
    answers = (SecureTradeError, *DOCUMENTED.get(cls, ()))
    escapes = []
    try:
        for case in _cases(cls, method, tmp_path):
            try:
                _finish_sync(getattr(obj, method)(*case.args, **case.kwargs))
            except answers:
                pass
            except Exception as exc:
                escapes.append(_escape(case, exc))
    finally:
        close = getattr(obj, "close", None)
        if callable(close):
            close()
    assert not escapes, "\n".join(escapes)


def test_faults_refuse_what_is_no_fault_when_given() -> None:
    """Accepted, a non-Fault failed later inside take(), in the simulator's request handler
    (an AttributeError on the server thread); now it is refused by add() and at_random()."""
    faults = sim.Faults()
    for value in HOSTILE:
        with pytest.raises(SecureTradeError):
            faults.add(value)
        with pytest.raises(SecureTradeError):
            faults.at_random(0.5, [value])
    assert faults.take("GET", "/api/v3/time") is None


#: The Redis-backed stores, built on the real redis-server the fixture starts.
REDIS_TARGETS: dict[str, Callable[[str], Any]] = {
    "RedisSwitchStore": lambda url: policy.RedisSwitchStore(url),
    "RedisReplayStore": lambda url: verify.RedisReplayStore(url),
    "RedisNonceSource": lambda url: _redis_nonces(url),
    "RedisJournal": lambda url: _redis_journal(url),
}


def _redis_journal(url: str) -> Any:
    from securetrade.core.redis_journal import RedisJournal

    return RedisJournal.create(url, prefix="walk-journal:")


def _redis_nonces(url: str) -> Any:
    from securetrade.nonce import RedisNonceSource

    return RedisNonceSource(url)


@pytest.mark.parametrize("name", list(REDIS_TARGETS))
def test_redis_store_methods_refuse_hostile_arguments(
    name: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the SQLite and in-memory stores, over a real redis-server: a name, token or key
    id that is no text is refused before a command is sent."""
    for argument, value in _more_arguments().items():
        monkeypatch.setitem(BASELINE, argument, value)
    for where, value in MORE_OVERRIDES.items():
        monkeypatch.setitem(OVERRIDES, where, value)
    obj = REDIS_TARGETS[name](redis_url)
    cls = type(obj)
    try:
        escapes = [
            e
            for method in _public_methods(cls)
            for e in _walk(obj, cls, method, tmp_path, TARGET_WITH.get(f"Journal.{method}"))
        ]
    finally:
        close = getattr(obj, "close", None)
        if callable(close):
            close()
    assert not escapes, "\n".join(escapes)


def test_async_sim_transport_and_server_refuse_hostile_arguments(tmp_path: Path) -> None:
    """AsyncSimTransport.send takes an HttpRequest only (the same check as SimTransport's);
    HttpsServer.impersonate takes Certificates only."""
    from securetrade.sim.certs import make_certificates

    simulator = sim.Simulator()
    transport = simulator.async_transport()
    escapes: list[str] = []

    async def walk() -> None:
        for value in HOSTILE:
            try:
                await transport.send(value)
            except SecureTradeError:
                pass
            except Exception as exc:
                escapes.append(f"send({shown(value)}): {type(exc).__name__}: {exc}")

    asyncio.run(walk())
    server = simulator.serve()
    try:
        for value in HOSTILE:
            try:
                server.impersonate(value)
            except SecureTradeError:
                pass
            except Exception as exc:
                escapes.append(f"impersonate({shown(value)}): {type(exc).__name__}: {exc}")
        server.impersonate(make_certificates())  # the real thing is still taken
    finally:
        simulator.close()
    assert not escapes, "\n".join(escapes)


@pytest.mark.parametrize("field", ["kind", "at", "symbol", "quantity", "client_order_id", "reason"])
def test_an_activity_with_a_hostile_field_is_refused_before_a_detector_sees_it(field: str) -> None:
    """Activity is exported (a platform feeds its own): a field of the wrong type was a
    TypeError inside a detector (``now - baseline`` on a text ``at``, ``math.log`` of a
    list), on the order's path; now the record refuses it when built."""
    escapes = []
    for value in HOSTILE:
        parts: dict[str, Any] = {
            "kind": "order",
            "at": 1_700_000_000.0,
            "symbol": "BTCUSDT",
            "quantity": Decimal("1"),
            "client_order_id": "walk-1",
            "reason": None,
        }
        parts[field] = value
        try:
            policy.AnomalyMonitor().observe(policy.Activity(**parts))
            policy.SizeOutlier().observe(policy.Activity(**parts))
        except SecureTradeError:
            pass
        except Exception as exc:
            escapes.append(f"Activity({field}={shown(value)}): {type(exc).__name__}: {exc}")
    assert not escapes, "\n".join(escapes)


def test_a_copy_key_is_never_made_from_an_id_nobody_named() -> None:
    """None, a number or a list was formatted into the hash ("None") and gave a stable
    key; each is refused now, as derive_client_order_id refuses it."""
    keys = CopyKeys(Secret(b"walk-copy-secret-000000000000"))
    for value in HOSTILE:
        if isinstance(value, str) and value and value.isprintable():
            continue  # text: a name someone gave
        with pytest.raises(SecureTradeError):
            keys.event(value)
        with pytest.raises(SecureTradeError):
            keys.event("walk-event").key(value, 0)
    for leg in (None, -1, 1.5, True, "0", 10**100):
        with pytest.raises(SecureTradeError):
            keys.event("walk-event").key("walk-f", leg)


#: Exported classes whose methods are walked in another test, or not walked, and why.
ELSEWHERE: dict[str, str] = {
    "Client": "test_public_api_methods (over the simulator)",
    "AsyncClient": "test_public_api_methods (over the simulator)",
    "CopyEngine": "test_public_api_methods (over the simulator)",
    "StreamHub": "test_public_api_methods (HUB_CALLS)",
    "UserStream": "test_public_api_methods (USER_CALLS)",
    "BlockingStream": "test_public_api_methods (a hostile timeout)",
    "AlpacaStreams": "test_public_api_methods (the dialects)",
    "BinanceStreams": "test_public_api_methods (the dialects)",
    "KrakenStreams": "test_public_api_methods (the dialects)",
    "OandaStreams": "test_public_api_methods (the dialects)",
    "Venue": "a Protocol: its adapters are walked above",
    "StreamDialect": "a Protocol: the dialects are walked",
    "JournalStore": "a Protocol: Journal is walked",
    "Backend": "a Protocol: RateLimiter is walked over it",
    "ReplayStore": "a Protocol: its three stores are walked",
    "NonceSource": "a Protocol: its sources are walked",
    "Signer": "a Protocol: the signers are walked",
    "Transport": "a Protocol: SimTransport is walked",
    "AsyncTransport": "a Protocol: AsyncSimTransport is walked",
    "AsyncSimTransport": "test_async_sim_transport_and_server_refuse_hostile_arguments",
    "HttpsServer": "test_async_sim_transport_and_server_refuse_hostile_arguments",
    "Core": "test_public_api_methods_s12 (driven by a client's runner)",
    "MemoryBackend": "test_public_api_methods_s12",
    "EventStream": "test_public_api_methods_s12 (over a real redis-server)",
    "Admission": "test_admission_placed_and_loopback_wait_refuse_hostile_arguments",
    "LoopbackListener": "test_admission_placed_and_loopback_wait_refuse_hostile_arguments",
    "HttpTransport": "test_http_transport_send_refuses_hostile_arguments",
}


def _takes_arguments(cls: type, method: str) -> bool:
    bound = isinstance(inspect.getattr_static(cls, method), (staticmethod, classmethod))
    return len(inspect.signature(getattr(cls, method)).parameters) > (0 if bound else 1)


def _walked_on(walked: set[type], cls: type, method: str) -> bool:
    """The same function is walked on another class (an order type's inherited method)."""
    function = getattr(cls, method)
    return any(getattr(other, method, None) is function for other in walked)


def test_the_walks_cover_the_exported_classes() -> None:
    """Every exported class with a public method taking an argument is walked by one of
    the method walks or named in ELSEWHERE with the reason; pydantic's model_* methods,
    the models' to_pandas (no argument a caller must give) and from_fields (the
    constructor's own refusal, tested in test_order_request_reads) aside."""
    import enum
    import importlib

    from test_public_api_errors import SUBPACKAGES
    from test_public_api_methods import TARGETS

    walked = {*TARGETS, *MORE_TARGETS}
    missing = []
    for name in ["securetrade", *(f"securetrade.{p}" for p in SUBPACKAGES)]:
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", ()):
            cls = getattr(module, exported)
            if not inspect.isclass(cls) or issubclass(cls, (BaseException, enum.Enum)):
                continue
            if cls in walked or cls.__name__ in ELSEWHERE or cls.__name__ in REDIS_TARGETS:
                continue
            takes = [
                method
                for method in _public_methods(cls)
                if not method.startswith("model_")
                and method not in ("to_pandas", "from_fields")
                and _takes_arguments(cls, method)
                and not _walked_on(walked, cls, method)
            ]
            if takes:
                missing.append(f"{name}.{exported}: {takes}")
    assert not missing, "\n".join(missing)
    assert len(walked) >= 60  # 62 classes when written


def test_http_transport_send_refuses_hostile_arguments(tmp_path: Path) -> None:
    """HttpTransport.send over real TLS to the simulator: a request that is no HttpRequest
    and a timeout that is no Timeout or number are refused before anything is written."""
    from securetrade.transport import HttpRequest, HttpTransport
    from securetrade.transport.tls import pinned_ssl_context

    with sim.Simulator() as simulator:
        server = simulator.serve()
        context = pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)
        transport = HttpTransport(server.base_url, context, timeout=5.0)
        escapes = []
        try:
            assert transport.send(HttpRequest("GET", "/api/v3/time")).status == 200
            for value in HOSTILE:
                for call in (
                    lambda v: transport.send(v),
                    lambda v: transport.send(HttpRequest("GET", "/api/v3/time"), timeout=v),
                ):
                    try:
                        call(value)
                    except SecureTradeError:
                        pass
                    except Exception as exc:
                        escapes.append(f"send({shown(value)}): {type(exc).__name__}: {exc}")
        finally:
            transport.close()
    assert not escapes, "\n".join(escapes)


def test_admission_placed_and_loopback_wait_refuse_hostile_arguments() -> None:
    """Admission.placed took the admission as done before reading the order, then failed
    with an AttributeError (the notional stayed counted as pending); LoopbackListener.wait
    passed any timeout to the queue (None waited for ever, -1 was a ValueError)."""
    venue = get_venue("binance")
    order = venue.parse_order(
        {
            "symbol": "BTCUSDT", "orderId": 1, "clientOrderId": "walk-1", "price": "100",
            "origQty": "1", "executedQty": "0", "cummulativeQuoteQty": "0",
            "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
            "time": 1_700_000_000_000, "updateTime": 1_700_000_000_000,
        }
    )  # fmt: skip
    escapes = []
    for value in HOSTILE:
        admission = policy.Admission([policy.Policy()], "walk-1", "BTCUSDT", Decimal("100"))
        try:
            admission.placed(value)
        except SecureTradeError:
            admission.placed(order)  # still open to the real answer
        except Exception as exc:
            escapes.append(f"placed({shown(value)}): {type(exc).__name__}: {exc}")
    assert not escapes, "\n".join(escapes)
    listener = oauth.LoopbackListener()
    try:
        for value in HOSTILE:
            if type(value) is float and 0 < value < 2:
                continue  # a real wait: it would time out with OAuthError after it
            outcome: list[BaseException] = []
            waiter = threading.Thread(target=_wait, args=(listener, value, outcome), daemon=True)
            waiter.start()
            waiter.join(5)  # a wait that does not return (None: for ever) is an escape too
            if waiter.is_alive() or not isinstance(outcome[0], SecureTradeError):
                escapes.append(f"wait({shown(value)}): {outcome[:1] or 'still waiting'}")
    finally:
        listener.close()
    assert not escapes, "\n".join(escapes)


def _wait(listener: Any, timeout: Any, outcome: list[BaseException]) -> None:
    try:
        listener.wait(timeout)
    except BaseException as exc:  # reported by the test
        outcome.append(exc)
