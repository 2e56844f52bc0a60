"""Secrets never print, pickle or copy; API keys only narrow; scopes are enforced locally.

Every secret here is random (``secrets.token_hex``) and generated per test.
"""

from __future__ import annotations

import copy
import logging
import pickle
import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from securetrade.errors import InvalidRequest, ScopeError
from securetrade.keys import MASK, ApiKey, Environment, KeyKind, Scope, Secret
from securetrade.signing import signer_for

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def fake_secret() -> str:
    return secrets.token_hex(24)


def make_key(secret: str | None = None, **options: Any) -> ApiKey:
    options.setdefault("scopes", [Scope.READ, Scope.TRADE, Scope.CANCEL])
    return ApiKey("binance", secrets.token_hex(32), secret or fake_secret(), **options)


# --- Secret ---------------------------------------------------------------------------------------


def test_mask_value() -> None:
    """The mask is a fixed string, so logs show the same thing for every secret."""
    assert MASK == "********"


@pytest.mark.parametrize(
    "render",
    [
        repr,
        str,
        format,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s!s}",
        lambda s: f"{s:>40}",
        lambda s: "%s" % s,  # noqa: UP031 - the old formatting path must be masked too
        lambda s: "%r" % (s,),  # noqa: UP031
        lambda s: "{}".format(s),  # noqa: UP032
        lambda s: str([s, {"k": s}]),
    ],
)
def test_secret_text_forms_are_masked(render: Any) -> None:
    """Whatever way a secret is turned into text, the result shows the mask, never the value."""
    value = fake_secret()
    text = render(Secret(value))
    assert MASK in text
    assert value not in text
    assert value[:8] not in text


def test_secret_in_log_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    """Logging a secret by accident (lazy %-formatting) must not write it out."""
    value = fake_secret()
    with caplog.at_level(logging.INFO):
        logging.getLogger("securetrade.test").info(
            "secret is %s / %r", Secret(value), Secret(value)
        )
    assert value not in caplog.text
    assert MASK in caplog.text


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_refuses_pickle(protocol: int) -> None:
    """Pickling would write the raw bytes to disk or a queue."""
    with pytest.raises(TypeError):
        pickle.dumps(Secret(fake_secret()), protocol=protocol)


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy])
def test_secret_refuses_copy(duplicate: Any) -> None:
    """Copies multiply the places a secret lives in memory."""
    with pytest.raises(TypeError):
        duplicate(Secret(fake_secret()))


def test_secret_inside_containers_refuses_deepcopy_and_pickle() -> None:
    """The refusal holds when the secret is buried in a structure being copied."""
    payload = {"nested": [Secret(fake_secret())]}
    with pytest.raises(TypeError):
        copy.deepcopy(payload)
    with pytest.raises(TypeError):
        pickle.dumps(payload)


def test_secret_equality_by_value() -> None:
    """Equal bytes are equal secrets (str and bytes alike); nothing else is."""
    value = fake_secret()
    assert Secret(value) == Secret(value)
    assert Secret(value) == Secret(value.encode())
    assert Secret(value) != Secret(fake_secret())
    assert Secret(value) != value
    assert Secret(value) != value.encode()


def test_secret_is_not_hashable() -> None:
    """A hash of a secret is a (weak) leak; secrets cannot be set members or dict keys."""
    with pytest.raises(TypeError):
        hash(Secret(fake_secret()))


def test_secret_expose_returns_bytes() -> None:
    """expose() is the one door out, and hands the signer bytes (text is UTF-8 encoded)."""
    value = fake_secret()
    exposed = Secret(value).expose()
    assert isinstance(exposed, bytes)
    assert exposed == value.encode("utf-8")
    assert Secret("\u00e9" + value).expose() == ("\u00e9" + value).encode("utf-8")
    assert len(Secret(value)) == len(value)


@pytest.mark.parametrize("value", ["", b"", None, 123])
def test_secret_refuses_empty_or_non_text(value: Any) -> None:
    """An empty secret is a configuration error, caught before any request is signed."""
    with pytest.raises(InvalidRequest):
        Secret(value)


# --- ApiKey: repr and immutability ----------------------------------------------------------------


def test_apikey_repr_hides_secret_and_key_id() -> None:
    """repr shows enough to recognise the key, never the secret nor the full key id."""
    secret = fake_secret()
    key = make_key(secret)
    for text in (repr(key), str(key), f"{key}"):
        assert secret not in text
        assert secret[:8] not in text
        assert key.key_id not in text
        assert key.key_id[4:-4] not in text
        assert "binance" in text


def test_apikey_short_key_id_is_hidden_too() -> None:
    """Short key ids are not shown whole either."""
    key = ApiKey("binance", "ab12cd34", fake_secret())
    assert "ab12cd34" not in repr(key)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_apikey_refuses_pickle(protocol: int) -> None:
    """Same rule as for the secret it holds."""
    with pytest.raises(TypeError):
        pickle.dumps(make_key(), protocol=protocol)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("scopes", frozenset(Scope)),
        ("max_notional", None),
        ("symbols", None),
        ("expires_at", None),
        ("secret", Secret("x")),
        ("new_attribute", 1),
    ],
)
def test_apikey_is_immutable(name: str, value: Any) -> None:
    """Widening a key in place (scopes, limits, expiry) must be impossible."""
    key = make_key(symbols=["BTCUSDT"], max_notional="100", expires_at=NOW)
    before = (key.scopes, key.symbols, key.max_notional, key.expires_at)
    with pytest.raises(AttributeError):
        setattr(key, name, value)
    assert (key.scopes, key.symbols, key.max_notional, key.expires_at) == before


@pytest.mark.parametrize("name", ["symbols", "max_notional", "expires_at", "scopes"])
def test_apikey_attributes_cannot_be_deleted(name: str) -> None:
    """Deleting a bound is a mutation too; it must raise and leave the key whole."""
    key = make_key(symbols=["BTCUSDT"], max_notional="100", expires_at=NOW)
    with pytest.raises(AttributeError):
        delattr(key, name)
    assert key.symbols == frozenset({"BTCUSDT"})
    assert key.max_notional == Decimal(100)


def test_apikey_normalises_its_fields() -> None:
    """Text options become enums, frozensets and Decimals."""
    key = make_key(
        scopes=["read", Scope.TRADE],
        kind="ed25519",
        environment="testnet",
        symbols=["BTCUSDT"],
        max_notional=100,
        max_quantity="0.5",
    )
    assert key.scopes == frozenset({Scope.READ, Scope.TRADE})
    assert key.kind is KeyKind.ED25519
    assert key.environment is Environment.TESTNET
    assert key.symbols == frozenset({"BTCUSDT"})
    assert key.max_notional == Decimal(100)
    assert key.max_quantity == Decimal("0.5")


@pytest.mark.parametrize("key_id", ["", "has space", "tab\there", "new\nline"])
def test_apikey_refuses_bad_key_id(key_id: str) -> None:
    """The key id becomes a header value: no whitespace or control characters."""
    with pytest.raises(InvalidRequest):
        ApiKey("binance", key_id, fake_secret())


# --- ApiKey: restrict -----------------------------------------------------------------------------


def wide_key() -> ApiKey:
    return make_key(
        scopes=[Scope.READ, Scope.TRADE, Scope.CANCEL],
        symbols=["BTCUSDT", "ETHUSDT"],
        max_notional="1000",
        max_quantity="10",
        expires_at=NOW + timedelta(days=30),
    )


def test_restrict_narrows_everything() -> None:
    """A narrower copy keeps identity and secret and takes every narrower bound."""
    key = wide_key()
    narrow = key.restrict(
        scopes=[Scope.READ],
        symbols=["BTCUSDT"],
        max_notional="500",
        max_quantity=1,
        expires_at=NOW + timedelta(days=1),
    )
    assert narrow.scopes == frozenset({Scope.READ})
    assert narrow.symbols == frozenset({"BTCUSDT"})
    assert narrow.max_notional == Decimal(500)
    assert narrow.max_quantity == Decimal(1)
    assert narrow.expires_at == NOW + timedelta(days=1)
    assert (narrow.key_id, narrow.venue, narrow.kind) == (key.key_id, key.venue, key.kind)
    assert narrow.secret == key.secret
    # the original is untouched
    assert key.scopes == frozenset({Scope.READ, Scope.TRADE, Scope.CANCEL})
    assert key.max_notional == Decimal(1000)


def test_restrict_without_arguments_keeps_bounds() -> None:
    """Omitted arguments keep the current bounds rather than lifting them."""
    key = wide_key()
    same = key.restrict()
    assert (same.scopes, same.symbols, same.max_notional, same.max_quantity, same.expires_at) == (
        key.scopes,
        key.symbols,
        key.max_notional,
        key.max_quantity,
        key.expires_at,
    )


def test_restrict_can_add_bounds_to_an_unbounded_key() -> None:
    """Setting a first limit, allowlist or expiry is narrowing."""
    key = make_key()
    narrow = key.restrict(symbols=["BTCUSDT"], max_notional="1", max_quantity="1", expires_at=NOW)
    assert narrow.symbols == frozenset({"BTCUSDT"})
    assert narrow.max_notional == Decimal(1)
    assert narrow.expires_at == NOW


@pytest.mark.parametrize(
    "widening",
    [
        {"scopes": [Scope.READ, Scope.WITHDRAW]},
        {"scopes": [Scope.TRANSFER]},
        {"symbols": ["BTCUSDT", "SOLUSDT"]},
        {"symbols": ["DOGEUSDT"]},
        {"max_notional": "1000.01"},
        {"max_quantity": "11"},
        {"expires_at": NOW + timedelta(days=31)},
    ],
)
def test_restrict_refuses_to_widen(widening: dict[str, Any]) -> None:
    """Nothing ever returns a wider key: each widened bound raises ScopeError."""
    with pytest.raises(ScopeError):
        wide_key().restrict(**widening)


def test_restrict_refuses_naive_expiry() -> None:
    """A naive datetime is ambiguous about when a key stops working."""
    with pytest.raises(InvalidRequest):
        wide_key().restrict(expires_at=datetime(2030, 1, 1))


def test_naive_expires_at_is_refused() -> None:
    """Same rule at construction time."""
    with pytest.raises(InvalidRequest):
        make_key(expires_at=datetime(2030, 1, 1))


@pytest.mark.parametrize("value", ["NaN", "inf", True, "-"])
def test_bad_limits_are_refused(value: Any) -> None:
    """Limits go through the same Decimal discipline as orders."""
    with pytest.raises(InvalidRequest):
        make_key(max_notional=value)
    with pytest.raises(InvalidRequest):
        make_key().restrict(max_quantity=value)


# --- ApiKey: require ------------------------------------------------------------------------------


def test_require_allows_what_was_granted() -> None:
    """The refusals below must be for their reason: a conforming call passes."""
    key = wide_key()
    key.require(
        Scope.TRADE,
        symbol="BTCUSDT",
        quantity=Decimal("10"),
        notional=Decimal("1000"),
        now=NOW,
    )
    key.require(Scope.READ, now=NOW)


def test_require_missing_scope() -> None:
    """A read-only key cannot trade, cancel or withdraw."""
    key = make_key(scopes=[Scope.READ])
    for scope in (Scope.TRADE, Scope.CANCEL, Scope.WITHDRAW, Scope.TRANSFER):
        with pytest.raises(ScopeError, match=scope.value):
            key.require(scope, now=NOW)


def test_require_symbol_outside_allowlist() -> None:
    """The symbol allowlist is enforced before anything is sent."""
    with pytest.raises(ScopeError, match="SOLUSDT"):
        wide_key().require(Scope.TRADE, symbol="SOLUSDT", now=NOW)


def test_require_quantity_above_limit() -> None:
    """max_quantity is inclusive: at the limit passes, above it is refused."""
    with pytest.raises(ScopeError, match="quantity"):
        wide_key().require(Scope.TRADE, quantity=Decimal("10.00000001"), now=NOW)


def test_require_notional_above_limit() -> None:
    """max_notional bounds quantity x price."""
    with pytest.raises(ScopeError, match="notional"):
        wide_key().require(Scope.TRADE, notional=Decimal("1000.01"), now=NOW)


@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=1), timedelta(days=400)])
def test_require_expired_key(after: timedelta) -> None:
    """At and after expires_at the key does nothing at all, not even read."""
    key = make_key(expires_at=NOW)
    for scope in (Scope.READ, Scope.TRADE):
        with pytest.raises(ScopeError, match="expired"):
            key.require(scope, now=NOW + after)
    key.require(Scope.READ, now=NOW - timedelta(microseconds=1))


def test_require_expiry_uses_real_clock_by_default() -> None:
    """Without ``now`` the current time is used: a key that expired yesterday is refused."""
    key = make_key(expires_at=datetime.now(timezone.utc) - timedelta(days=1))
    with pytest.raises(ScopeError):
        key.require(Scope.READ)


def test_require_withdraw_address_allowlist() -> None:
    """Withdrawals go only to allowlisted addresses; no address at all is refused too."""
    allowed = "addr-" + secrets.token_hex(16)
    key = make_key(scopes=[Scope.WITHDRAW], withdraw_addresses=[allowed])
    key.require(Scope.WITHDRAW, address=allowed, now=NOW)
    for address in ("addr-" + secrets.token_hex(16), allowed.upper(), allowed[:-1], "", None):
        with pytest.raises(ScopeError):
            key.require(Scope.WITHDRAW, address=address, now=NOW)


def test_withdraw_scope_without_allowlist_refuses_every_address() -> None:
    """An empty allowlist means no destination, not every destination."""
    key = make_key(scopes=[Scope.WITHDRAW])
    with pytest.raises(ScopeError):
        key.require(Scope.WITHDRAW, address="addr-" + secrets.token_hex(16), now=NOW)


def test_single_address_string_is_not_an_allowlist_of_characters() -> None:
    """A bare string must be refused or treated as one address, never split into characters."""
    address = "bc1q" + secrets.token_hex(16)
    try:
        key = make_key(scopes=[Scope.WITHDRAW], withdraw_addresses=address)
    except (InvalidRequest, TypeError):
        return
    with pytest.raises(ScopeError):
        key.require(Scope.WITHDRAW, address=address[0], now=NOW)


# --- secrets stay out of errors -------------------------------------------------------------------


def _error_texts(exc: BaseException) -> str:
    """str and repr of an exception and of everything chained to it."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_invalid_kind_error_holds_no_secret() -> None:
    """A typo in ``kind`` must not echo the secret in the error."""
    secret = fake_secret()
    with pytest.raises(ValueError) as info:
        ApiKey("binance", "key-id-1234", secret, kind="hmac-sha256-typo")
    assert secret not in _error_texts(info.value)


def test_invalid_environment_and_scope_errors_hold_no_secret() -> None:
    """Same for the other enumerated options."""
    secret = fake_secret()
    with pytest.raises(ValueError) as info:
        ApiKey("binance", "key-id-1234", secret, environment="production")
    assert secret not in _error_texts(info.value)
    with pytest.raises(ValueError) as info:
        ApiKey("binance", "key-id-1234", secret, scopes=["everything"])
    assert secret not in _error_texts(info.value)


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda: secrets.token_hex(24),  # not base64 DER of a key
        lambda: secrets.token_urlsafe(40) + "!",  # not base64 at all
        lambda: (
            "-----BEGIN PRIVATE KEY-----\n"
            + secrets.token_hex(24)
            + "\n-----END PRIVATE KEY-----\n"
        ),
    ],
)
def test_bad_ed25519_secret_error_holds_no_secret(make_bad: Any) -> None:
    """The key is parsed when its signer is built; the refusal must not quote the key text.

    ApiKey itself does not parse the secret, so the error comes from signer_for().
    """
    secret = make_bad()
    with pytest.raises(InvalidRequest) as info:
        signer_for(ApiKey("binance", "key-id-1234", secret, kind="ed25519"))
    text = _error_texts(info.value)
    assert secret not in text
    for line in secret.splitlines():
        if not line.startswith("-----"):
            assert line not in text


def test_hmac_signer_from_key_is_masked() -> None:
    """signer_for builds the signer matching ``kind``; its repr stays masked."""
    secret = fake_secret()
    signer = signer_for(make_key(secret))
    assert secret not in repr(signer)
    assert len(signer.sign(b"x")) == 64


def test_one_string_is_not_a_list_of_symbols_or_scopes() -> None:
    """A bare string would otherwise become a set of its characters."""
    secret = secrets.token_hex(16)
    with pytest.raises(InvalidRequest, match="symbols"):
        ApiKey("binance", "k-1234567890", secret, symbols="BTCUSDT")
    with pytest.raises(InvalidRequest, match="scopes"):
        ApiKey("binance", "k-1234567890", secret, scopes="read")


def test_unknown_kind_environment_and_scope_are_invalid_requests() -> None:
    secret = secrets.token_hex(16)
    with pytest.raises(InvalidRequest, match="KeyKind"):
        ApiKey("binance", "k-1234567890", secret, kind="rsa4096")
    with pytest.raises(InvalidRequest, match="Environment"):
        ApiKey("binance", "k-1234567890", secret, environment="prod")
    with pytest.raises(InvalidRequest, match="Scope"):
        ApiKey("binance", "k-1234567890", secret, scopes=["admin"])
