"""Every public constructor and function refuses a wrong argument with a typed error
(issue 16: "every Settings and constructor argument is validated; no ValueError,
TypeError, AttributeError or sqlite3 error reaches a caller of the public API").

Each case builds a public object from arguments that work, then replaces one argument at
a time with a wrong value (None, a wrong type, a negative, zero, NaN, an infinity, an
integer too large for a float, an empty string, a boolean for a number, a list for a
text). The call either accepts the value or raises a :class:`SecureTradeError`; any other
exception is an escape. A second set of cases names values that must be refused, and
checks that the message says what to pass instead.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import securetrade
from securetrade import InvalidRequest, SecureTradeError

HUGE = 10**400
PIN_A = "sha256/" + "A" * 43 + "="
PIN_B = "sha256/" + "B" * 43 + "="

WRONG: list[Any] = [
    None,
    "",
    "x",
    -1,
    0,
    float("nan"),
    float("inf"),
    float("-inf"),
    HUGE,
    -HUGE,
    True,
    [],
    ["x"],
    {},
    object(),
    b"x",
    Decimal("NaN"),
    Decimal("-1"),
    timedelta(days=-1),
    timedelta.max,
]


NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: constructors must not need it


def _handler(request: Any) -> Any:
    """A handler for the simulator's HTTPS server (never called: nothing connects)."""
    return None


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app for the gateway middleware to wrap."""


def _key() -> Any:
    from securetrade.keys import ApiKey

    return ApiKey("binance", "key-id", "secret-value")


def _cases(tmp: Path) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """Public callables with arguments that build them; one argument at a time is spoiled."""
    from securetrade import (
        copy,
        core,
        gateway,
        keys,
        policy,
        ratelimit,
        record,
        sim,
        streams,
        transport,
    )
    from securetrade.clock import VenueClock
    from securetrade.keys import Secret
    from securetrade.mfa import Confirmation
    from securetrade.nonce import FileNonceSource, MemoryNonceSource, RedisNonceSource
    from securetrade.oauth import (
        LoopbackListener,
        OAuthCredential,
        TokenEndpoint,
        authorization_request,
    )
    from securetrade.privacy import (
        DataKeys,
        PersonalData,
        PrivacyKeys,
        RetentionPolicy,
        parse_period,
        pseudonym,
        truncate_ip,
    )
    from securetrade.signing import (
        HmacSha256Signer,
        KucoinSigner,
        encode_json,
        encode_query,
        is_plain,
        iso_timestamp,
        signer_for,
        with_query,
    )
    from securetrade.streams import dialect_for
    from securetrade.transport.aio import AsyncHttpTransport
    from securetrade.venues import get_venue
    from securetrade.verify import (
        InboundKey,
        MemoryReplayStore,
        MessageSigner,
        RedisReplayStore,
        SqliteReplayStore,
        Verifier,
        canonical_message,
    )

    key = _key()
    secret = Secret("secret-value")
    inbound = InboundKey.hmac("gk", secret, name="svc")
    gateway_key = gateway.GatewayKey(inbound, keys.KeyKind.HMAC, "t", [])
    credential = OAuthCredential(
        "alpaca", "c", "https://127.0.0.1:1/token", "https://127.0.0.1:1/authorize"
    )
    privacy_keys = PrivacyKeys(Secret(b"m" * 32))
    audit_key = record.AuditKey.generate()
    trail_path = tmp / "trail.db"
    if tmp.is_dir() and not trail_path.exists():
        trail = record.AuditTrail(str(trail_path), audit_key)
        trail.close()
    sizing = copy.Sizing(mode=next(iter(copy.SizingMode)), value=Decimal("1"))
    client = {"journal": ":memory:", "unsafe_disable_pinning": True}
    environ = {
        "SECURETRADE_BINANCE_LIVE_KEY_ID": "key-id",
        "SECURETRADE_BINANCE_LIVE_SECRET": "secret-value",
    }
    return {
        "Settings": (securetrade.Settings, {}),
        "RetryPolicy": (securetrade.RetryPolicy, {}),
        "Journal": (securetrade.Journal, {"path": str(tmp / "j.db")}),
        "Client": (securetrade.Client, {"key": key, **client}),
        "AsyncClient": (securetrade.AsyncClient, {"key": key, **client}),
        "ApiKey": (keys.ApiKey, {"venue": "binance", "key_id": "k", "secret": "s"}),
        "Secret": (keys.Secret, {"value": "s"}),
        "KeyRing": (
            keys.KeyRing,
            {
                "current": key,
                "next": keys.ApiKey("binance", "next-key-id", "next-secret"),
                "activate_at": datetime.now(UTC) + timedelta(hours=1),
            },
        ),
        "KdfParams": (keys.KdfParams, {}),
        "env_names": (keys.env_names, {"venue": "binance"}),
        "key_from_env": (keys.key_from_env, {"venue": "binance", "environ": environ}),
        "PinSet": (securetrade.PinSet, {"pins": {"example.com": [PIN_A, PIN_B]}}),
        "Policy": (securetrade.Policy, {}),
        "KillSwitch": (securetrade.KillSwitch, {}),
        "SqliteSwitchStore": (policy.SqliteSwitchStore, {"path": str(tmp / "k.db")}),
        "AnomalyMonitor": (policy.AnomalyMonitor, {}),
        "CancelReplaceLoop": (policy.CancelReplaceLoop, {}),
        "NewSymbol": (policy.NewSymbol, {}),
        "OrderRateSpike": (policy.OrderRateSpike, {}),
        "RejectionBurst": (policy.RejectionBurst, {}),
        "SizeOutlier": (policy.SizeOutlier, {}),
        "RateLimit": (ratelimit.RateLimit, {"kind": "weight", "seconds": 60.0, "limit": 10}),
        "RateLimiter": (ratelimit.RateLimiter, {}),
        "CostRule": (ratelimit.CostRule, {"param": "p", "cost": {"weight": 1}}),
        "AuditLog": (record.AuditLog, {}),
        "Lockout": (gateway.Lockout, {}),
        "Limit": (gateway.Limit, {"requests": 10, "seconds": 1.0}),
        "Route": (gateway.Route, {"method": "POST", "path": "/orders"}),
        "TrustedProxies": (gateway.TrustedProxies, {}),
        "GatewayMonitor": (gateway.GatewayMonitor, {}),
        "Timeout": (transport.Timeout, {}),
        "Limits": (transport.Limits, {}),
        "Proxy": (transport.Proxy, {"url": "http://127.0.0.1:3128"}),
        "HttpTransport": (
            transport.HttpTransport,
            {"base_url": "https://127.0.0.1:1", "ssl_context": None},
        ),
        "StreamOptions": (streams.StreamOptions, {}),
        "BreakerSettings": (copy.BreakerSettings, {}),
        "Outbox": (copy.Outbox, {"path": str(tmp / "o.db")}),
        "Sizing": (copy.Sizing, {"mode": copy.SizingMode("fixed"), "value": Decimal("1")})
        if "fixed" in {m.value for m in copy.SizingMode}
        else (copy.Sizing, {"mode": next(iter(copy.SizingMode)), "value": Decimal("1")}),
        "Fault": (sim.Fault, {"kind": "status"}),
        "SimLimits": (sim.SimLimits, {}),
        "KrakenLimits": (sim.KrakenLimits, {}),
        "Simulator": (sim.Simulator, {}),
        "LoopbackListener": (LoopbackListener, {}),
        "TokenEndpoint": (TokenEndpoint, {"token_url": "https://127.0.0.1:1/token"}),
        "MemoryReplayStore": (MemoryReplayStore, {}),
        "SqliteReplayStore": (SqliteReplayStore, {"path": str(tmp / "r.db")}),
        "Verifier": (Verifier, {"keys": []}),
        "VenueClock": (VenueClock, {}),
        "MemoryNonceSource": (MemoryNonceSource, {}),
        "FileNonceSource": (FileNonceSource, {"directory": str(tmp / "n")}),
        "AsyncHttpTransport": (
            AsyncHttpTransport,
            {"base_url": "https://127.0.0.1:1", "ssl_context": None},
        ),
        "Follower": (copy.Follower, {"id": "f1", "key": key, "sizing": sizing}),
        "LeaderEvent": (
            copy.LeaderEvent,
            {
                "id": "e1",
                "symbol": "BTCUSDT",
                "side": securetrade.Side.BUY,
                "quantity": Decimal("1"),
                "price": Decimal("100"),
                "at_ms": 1,
            },
        ),
        "LeaderSnapshot": (
            copy.LeaderSnapshot,
            {
                "id": "s1",
                "positions": {"BTCUSDT": Decimal("1")},
                "prices": {"BTCUSDT": Decimal("1")},
                "at_ms": 1,
            },
        ),
        "copy_key": (
            copy.copy_key,
            {"secret": secret, "event_id": "e", "follower_id": "f", "leg": 0},
        ),
        "GatewayAuth": (gateway.GatewayAuth, {"key_id": "k", "secret": secret}),
        "MessageSigner": (MessageSigner, {"key_id": "k", "secret": secret}),
        "Confirmation": (Confirmation, {"operator": "op", "code": "123456"}),
        "HmacSha256Signer": (HmacSha256Signer, {"secret": secret}),
        "KucoinSigner": (KucoinSigner, {"secret": secret, "passphrase": secret}),
        "iso_timestamp": (iso_timestamp, {"ms": 1}),
        "encode_query": (encode_query, {"pairs": [("a", "b")]}),
        "with_query": (with_query, {"path": "/p", "pairs": [("a", "b")]}),
        "PrivacyKeys": (PrivacyKeys, {"master": Secret(b"m" * 32)}),
        "parse_period": (parse_period, {"text": "30d"}),
        "pseudonym": (pseudonym, {"pepper": b"p" * 32, "value": "v"}),
        "truncate_ip": (truncate_ip, {"value": "192.0.2.1"}),
        "ReferencePrice": (
            policy.ReferencePrice,
            {"symbol": "BTCUSDT", "price": Decimal("1"), "at": 1.0},
        ),
        "OAuthCredential": (
            OAuthCredential,
            {
                "venue": "alpaca",
                "client_id": "c",
                "token_url": "https://127.0.0.1:1/token",
                "authorize_url": "https://127.0.0.1:1/authorize",
            },
        ),
        "AuditKey": (record.AuditKey, {"private_key": audit_key._private}),
        "AuditTrail": (record.AuditTrail, {"path": str(tmp / "audit.db"), "key": audit_key}),
        "verify_path": (record.verify_path, {"path": str(trail_path)}),
        "DataKeys": (DataKeys, {"path": str(tmp / "vault.db"), "keys": privacy_keys}),
        "RetentionPolicy": (RetentionPolicy, {}),
        "InboundKey.hmac": (InboundKey.hmac, {"key_id": "k", "secret": secret, "name": "svc"}),
        "Verifier+key": (Verifier, {"keys": [InboundKey.hmac("k", secret, name="svc")]}),
        "TrustedProxies+networks": (gateway.TrustedProxies, {"networks": ["10.0.0.0/8"]}),
        "MemoryBackend": (ratelimit.MemoryBackend, {}),
        "key_label": (ratelimit.key_label, {"key_id": "k"}),
        "cost_of": (ratelimit.cost_of, {"base": {"weight": 1}, "rules": [], "params": []}),
        "MemorySwitchStore": (policy.MemorySwitchStore, {}),
        "Admission": (
            policy.Admission,
            {
                "chain": [securetrade.Policy()],
                "client_order_id": "c",
                "symbol": "S",
                "notional": Decimal(1),
            },
        ),
        "GatewayKey": (
            gateway.GatewayKey,
            {"inbound": inbound, "kind": keys.KeyKind.HMAC, "tenant": "t", "networks": []},
        ),
        "KeyRegistry": (gateway.KeyRegistry, {"keys": [gateway_key]}),
        "GatewayMiddleware": (
            gateway.GatewayMiddleware,
            {
                "app": _app,
                "keys": gateway.KeyRegistry([gateway_key]),
                "routes": [gateway.Route("POST", "/o")],
            },
        ),
        "CopyEngine": (
            copy.CopyEngine,
            {
                "secret": Secret("s" * 32),
                "connect": {"binance": {"unsafe_disable_pinning": True}},
                "journal": ":memory:",
            },
        ),
        "EventStream": (copy.EventStream, {"url": "redis://127.0.0.1:1/0"}),
        "authorization_request": (
            authorization_request,
            {"credential": credential, "redirect_uri": "http://127.0.0.1:8/callback"},
        ),
        "RedisNonceSource": (RedisNonceSource, {"client": NO_REDIS}),
        "RedisReplayStore": (RedisReplayStore, {"client": NO_REDIS}),
        "RedisSwitchStore": (policy.RedisSwitchStore, {"url_or_client": NO_REDIS}),
        "PersonalData": (PersonalData, {"vault": DataKeys(str(tmp / "pd.db"), privacy_keys)})
        if tmp.is_dir()
        else (PersonalData, {"vault": None}),
        "get_venue": (get_venue, {"name": "binance"}),
        "signer_for": (signer_for, {"key": key}),
        "is_plain": (is_plain, {"text": "abc"}),
        "encode_json": (encode_json, {"fields": {"a": "1"}}),
        "canonical_message": (
            canonical_message,
            {
                "method": "POST",
                "target": "/o",
                "timestamp_ms": 1,
                "nonce": "n" * 16,
                "key_id": "k",
                "body": b"",
            },
        ),
        "dialect_for": (dialect_for, {"venue": "binance"}),
        "to_pandas": (securetrade.to_pandas, {"items": []}),
        "derive_client_order_id": (
            core.derive_client_order_id,
            {"venue": "binance", "account": "a", "idempotency_key": "k"},
        ),
    }


def _parameters(function: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _close(made: Any) -> None:
    """Release what a call built (a listener's socket, a database, a pool)."""
    for name in ("close", "stop"):
        close = getattr(made, name, None)
        if callable(close):
            result = close()
            if inspect.iscoroutine(result):
                result.close()
            return


def _all_cases() -> list[tuple[str, str]]:
    cases = _cases(Path("/nonexistent"))
    return [
        (name, argument)
        for name, (function, _) in cases.items()
        for argument in _parameters(function)
    ]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: a wrong value taken as a file name lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("case", "argument"), _all_cases())
def test_a_wrong_argument_is_accepted_or_a_securetrade_error(
    case: str, argument: str, workdir: Path
) -> None:
    function, good = _cases(workdir)[case]
    _close(function(**good))  # the good arguments work: what follows tests one argument
    for value in WRONG:
        try:
            made = function(**{**good, argument: value})
        except SecureTradeError:
            continue
        except Exception as exc:  # pragma: no cover - the failure this test reports
            pytest.fail(f"{case}({argument}={value!r}) raised {type(exc).__name__}: {exc}")
        _close(made)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "case",
    [
        name
        for name, (function, _) in _cases(Path("/nonexistent")).items()
        if inspect.isclass(function)
    ],
)
def test_an_object_refused_half_way_still_has_a_repr(case: str, workdir: Path) -> None:
    """A traceback renderer or a logger shows ``self`` of a failed ``__init__``: its repr
    must work on the half-built object, not raise ``AttributeError``."""
    cls, good = _cases(workdir)[case]
    for argument in _parameters(cls):
        for value in WRONG:
            obj = cls.__new__(cls)
            try:
                obj.__init__(**{**good, argument: value})
            except SecureTradeError:
                text = repr(obj)
                assert isinstance(text, str)
                assert "secret-value" not in text
            else:
                _close(obj)


# --- values that must be refused, with a message that says what to pass -------------------

REFUSED = [
    ("Settings", "max_rate_wait", HUGE, "finite number"),
    ("Settings", "resolve_timeout", HUGE, "finite number"),
    ("Settings", "max_rate_wait", 1e300, "at most 1e+09"),
    ("StreamOptions", "stale_after", 1e300, "at most 1e+09"),
    ("RateLimiter", "default_pause", 1e300, "at most 1e+09"),
    ("RetryPolicy", "max_delay", 1e300, "at most 1e+09"),
    ("AnomalyMonitor", "cooldown", 1e300, "at most 1e+09"),
    ("RateLimit", "seconds", 1e300, "at most 1e+09"),
    ("Limit", "seconds", 1e300, "at most 1e+09"),
    ("Lockout", "duration", 1e300, "at most 1e+09"),
    ("RetryPolicy", "stop", "x", "stop strategy"),
    ("RetryPolicy", "wait", 3, "wait strategy"),
    ("RetryPolicy", "max_delay", HUGE, "finite number"),
    ("RateLimit", "kind", 7, "printable text"),
    ("RateLimit", "seconds", HUGE, "finite number"),
    ("RateLimit", "seconds", None, "finite number"),
    ("RateLimit", "limit", True, "whole number"),
    ("RateLimiter", "margin", HUGE, "finite number"),
    ("AuditLog", "keep", HUGE, "whole number from 1 to"),
    ("AnomalyMonitor", "keep", HUGE, "whole number from 1 to"),
    ("SizeOutlier", "history", float("inf"), "whole number"),
    ("RejectionBurst", "threshold", 2.5, "whole number"),
    ("NewSymbol", "known", None, "list of strings"),
    ("NewSymbol", "learn_for", "", "finite number"),
    ("Lockout", "threshold", None, "whole number"),
    ("Lockout", "hold", Decimal("NaN"), "finite number"),
    ("Limit", "seconds", HUGE, "finite number"),
    ("Route", "method", None, "upper-case method"),
    ("Route", "scopes", None, "list of strings"),
    ("Timeout", "connect", HUGE, "at most 3600"),
    ("Proxy", "url", 1, "http://host:port"),
    ("HttpTransport", "base_url", [], "visible ASCII"),
    ("TokenEndpoint", "token_url", -1, "printable text"),
    ("ApiKey", "venue", [], "printable text"),
    ("ApiKey", "key_id", -1, "printable text"),
    ("ApiKey", "scopes", None, "list of scopes"),
    ("ApiKey", "expires_at", "2030-01-01", "datetime"),
    ("ApiKey", "withdraw_addresses", None, "list of strings"),
    ("KeyRing", "overlap", None, "timedelta"),
    ("KeyRing", "activate_at", "", "timezone-aware"),
    ("KeyRing", "clock", None, "function"),
    ("env_names", "venue", None, "printable text"),
    ("key_from_env", "environ", "", "mapping"),
    ("SqliteSwitchStore", "path", None, "file path"),
    ("SqliteReplayStore", "path", None, "file path"),
    ("FileNonceSource", "directory", None, "file path"),
    ("MemoryReplayStore", "max_entries", -1, "whole number"),
    ("Verifier", "keys", None, "list of InboundKey"),
    ("Verifier", "keys", ["x"], "InboundKey"),
    ("Verifier", "window_ms", None, "whole number"),
    ("VenueClock", "window", HUGE, "whole number"),
    ("VenueClock", "max_offset_ms", -1, "finite number"),
    ("VenueClock", "wall", None, "function"),
    ("Fault", "kind", None, "is not one of"),
    ("Fault", "times", 0, "whole number"),
    ("Simulator", "instruments", None, "list of SimInstrument"),
    ("Simulator", "instruments", "x", "list of SimInstrument"),
    ("Simulator", "dedupe", None, "open_only"),
    ("Simulator", "history_ttl_ms", -1, "whole number"),
    ("LoopbackListener", "port", -1, "whole number from 0 to 65535"),
    ("LoopbackListener", "port", None, "whole number from 0 to 65535"),
    ("Client", "cafile", "", "file path"),
    ("Client", "cadata", "x", "CA certificate"),
    ("AsyncClient", "cafile", -1, "file path"),
    ("Client", "transport", "x", "send() and close()"),
    ("AsyncClient", "transport", "x", "send() and aclose()"),
    ("Client", "nonces", "x", "NonceSource"),
    ("Client", "proxy", 3128, "http://host:port"),
    ("Client", "base_url", 1, "printable text"),
    ("Journal", "retention", HUGE, "at most"),
    ("Journal", "tombstone_ttl", float("inf"), "at most"),
    ("AsyncHttpTransport", "max_connections", None, "whole number"),
    ("KillSwitch", "store", "x", "SwitchStore"),
    ("KillSwitch", "confirmer", "x", "Confirmer"),
    ("copy_key", "secret", None, "Secret"),
    ("HmacSha256Signer", "secret", "raw text", "Secret"),
    ("KucoinSigner", "passphrase", "raw text", "Secret"),
    ("MessageSigner", "key_id", None, "key id"),
    ("MessageSigner", "kind", None, "HMAC or Ed25519"),
    ("iso_timestamp", "ms", float("nan"), "whole number"),
    ("iso_timestamp", "ms", HUGE, "whole number"),
    ("encode_query", "pairs", "x", "pairs of strings"),
    ("pseudonym", "pepper", None, "non-empty bytes"),
    ("pseudonym", "value", None, "printable text"),
    ("OAuthCredential", "venue", -1, "venue name"),
    ("OAuthCredential", "client_id", -1, "client id"),
    ("AuditTrail", "path", None, "file path"),
    ("AuditTrail", "key", None, "AuditKey"),
    ("verify_path", "path", None, "file path"),
    ("verify_path", "public_keys", -1, "list of PEM public keys"),
    ("verify_path", "min_records", "", "whole number"),
    ("RetentionPolicy", "classes", None, "mapping"),
    ("RetentionPolicy", "default_class", [], "printable text"),
    ("InboundKey.hmac", "key_id", None, "key id"),
    ("InboundKey.hmac", "secret", None, "Secret"),
    ("InboundKey.hmac", "scopes", None, "list of strings"),
    ("key_label", "key_id", None, "printable text"),
    ("cost_of", "rules", "x", "list of CostRule"),
    ("GatewayKey", "inbound", None, "InboundKey"),
    ("GatewayKey", "tenant", None, "tenant"),
    ("KeyRegistry", "keys", None, "list of GatewayKey"),
    ("GatewayMiddleware", "routes", "x", "list of Route"),
    ("GatewayMiddleware", "key_limit", "", "Limit"),
    ("GatewayMiddleware", "max_body_bytes", None, "whole number"),
    ("GatewayMiddleware", "body_timeout", HUGE, "positive finite number"),
    ("GatewayMiddleware", "open_paths", None, "list of strings"),
    ("authorization_request", "credential", None, "OAuthCredential"),
    ("CopyEngine", "limiters", "x", "map each venue"),
    ("RedisNonceSource", "client", None, "Redis URL"),
    ("RedisNonceSource", "client", "", "unusable Redis URL"),
    ("RedisReplayStore", "client", "http://x", "unusable Redis URL"),
    ("RedisSwitchStore", "url_or_client", 7, "Redis URL"),
    ("PersonalData", "vault", None, "DataKeys"),
    ("get_venue", "name", None, "venue name"),
    ("get_venue", "name", [], "venue name"),
    ("signer_for", "key", None, "ApiKey"),
    ("is_plain", "text", None, "text"),
    ("encode_json", "fields", "x", "(name, value) pairs"),
    ("encode_json", "fields", None, "(name, value) pairs"),
    ("canonical_message", "method", None, "must be text"),
    ("canonical_message", "timestamp_ms", float("nan"), "whole number"),
    ("canonical_message", "body", "x", "exact bytes"),
    ("dialect_for", "venue", [], "printable text"),
    ("to_pandas", "items", None, "list of securetrade results"),
    ("authorization_request", "redirect_uri", ["x"], "printable text"),
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("case", "argument", "value", "says"), REFUSED)
def test_a_wrong_value_is_refused_saying_what_to_pass(
    case: str, argument: str, value: Any, says: str, workdir: Path
) -> None:
    function, good = _cases(workdir)[case]
    with pytest.raises(InvalidRequest) as raised:
        _close(function(**{**good, argument: value}))
    assert says in str(raised.value)


@pytest.mark.parametrize(("argument", "value"), [("path", None), ("path", 5), ("kdf", "x")])
def test_keystore_create_refuses_a_wrong_argument(argument: str, value: Any, workdir: Path) -> None:
    from securetrade.keys import KeyStore

    good: dict[str, Any] = {"path": workdir / "keys.enc", "passphrase": "pass phrase 1"}
    with pytest.raises(InvalidRequest):
        KeyStore.create(**{**good, argument: value})


@pytest.mark.parametrize("path", [None, 5, ""])
def test_keystore_open_refuses_what_is_no_path(path: Any) -> None:
    from securetrade.keys import KeyStore

    with pytest.raises(InvalidRequest, match="file path"):
        KeyStore.open(path, "pass phrase 1")
    with pytest.raises(InvalidRequest, match="file path"):
        KeyStore.open_with_keyring(path)


def test_streams_and_copy_helpers_refuse_what_is_not_theirs() -> None:
    """hub_of and follower_symbol take a client and copy-trading objects only."""
    from securetrade.copy import follower_symbol
    from securetrade.streams import hub_of

    with pytest.raises(InvalidRequest, match="Client or AsyncClient"):
        hub_of(None, asynchronous=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="LeaderEvent"):
        follower_symbol(None, None)  # type: ignore[arg-type]


def test_a_redis_journal_refuses_a_huge_period_before_connecting() -> None:
    """Checked before the server is reached: no Redis is listening on port 1."""
    from securetrade.core import RedisJournal

    for argument in ("retention", "tombstone_ttl", "loss_horizon"):
        with pytest.raises(InvalidRequest, match="at most"):
            RedisJournal("redis://127.0.0.1:1/0", **{argument: HUGE})


def test_a_wrong_value_reads_as_none_for_an_ip_to_truncate() -> None:
    """truncate_ip stores nothing it cannot read as an address, whatever its type."""
    from securetrade.privacy import truncate_ip

    assert truncate_ip(None) == "?"  # type: ignore[arg-type]
    assert truncate_ip("192.0.2.77") == "192.0.2.0/24"


def test_a_cafile_that_holds_no_certificate_is_refused(workdir: Path) -> None:
    """A file that exists but holds no CA is an InvalidRequest, not an ``ssl.SSLError``."""
    (workdir / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(InvalidRequest, match="pass a PEM bundle"):
        securetrade.Client(
            _key(),
            journal=":memory:",
            cafile=str(workdir / "empty.pem"),
            unsafe_disable_pinning=True,
        )


def test_a_taken_port_is_refused_with_the_way_out(workdir: Path) -> None:
    from securetrade.oauth import LoopbackListener

    first = LoopbackListener()
    try:
        port = int(first.redirect_uri.split(":")[2].split("/")[0])
        with pytest.raises(InvalidRequest, match="port=0"):
            LoopbackListener(port=port)
    finally:
        first.close()


def test_a_path_that_cannot_hold_a_database_is_refused(workdir: Path) -> None:
    """A directory given as a store's file: an InvalidRequest, never a ``sqlite3`` error."""
    from securetrade.policy import SqliteSwitchStore
    from securetrade.verify import SqliteReplayStore

    (workdir / "a-directory").mkdir()
    for store in (SqliteSwitchStore, SqliteReplayStore):
        with pytest.raises(InvalidRequest, match="writable file path"):
            store(str(workdir / "a-directory"))


def test_a_wrong_value_is_not_taken_for_a_file_name(workdir: Path) -> None:
    """``None`` or a number given as a store's path once became a file named ``None``."""
    from securetrade.policy import SqliteSwitchStore

    for value in (None, 0, True, [], b"x"):
        with pytest.raises(InvalidRequest):
            SqliteSwitchStore(value)  # type: ignore[arg-type]
    assert list(workdir.iterdir()) == []


def test_a_refused_key_pickles_and_reprs_no_secret() -> None:
    """An ApiKey refused for another argument leaves no secret in its half-built repr."""
    from securetrade.keys import ApiKey

    obj = ApiKey.__new__(ApiKey)
    with pytest.raises(InvalidRequest):
        obj.__init__("binance", "key id with spaces", "secret-value")  # type: ignore[misc]
    assert "secret-value" not in repr(obj)
    with pytest.raises(Exception) as raised:
        pickle.dumps(obj)
    assert "secret-value" not in str(raised.value)
