"""Kraken keys with two-factor authentication, end to end against the simulator over TLS.

The ``otp`` goes inside the signed body (static password or TOTP code on venue time), the
simulated venue checks it for enrolled keys, and Kraken's ``EAPI:Invalid signature`` on a
2FA key becomes :class:`InvalidOTP` with a hint.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pyotp
import pytest

from securetrade import Client, LimitOrder
from securetrade.errors import AuthenticationRejected, InvalidOTP, InvalidRequest
from securetrade.keys import ApiKey, KdfParams, KeyStore, Secret
from securetrade.keys.otp import StaticOtp, TotpOtp
from securetrade.models import OrderStatus
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues import Op
from securetrade.venues.kraken.tables import API, ORDERS, PUBLIC

ROOMY = [RateLimit(API, 1.0, 1000), RateLimit(ORDERS, 1.0, 1000), RateLimit(PUBLIC, 1.0, 1000)]
BUY = LimitOrder(symbol="XBTUSDT", side="BUY", quantity="0.01", price="60000.00")
CHEAP_KDF = KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)


@pytest.fixture
def served(sim: Simulator) -> Iterator[HttpsServer]:
    server = sim.serve()
    yield server
    server.stop()


def _client(server: HttpsServer, key: ApiKey) -> Client:
    return Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        limiter=RateLimiter(ROOMY),
        journal=":memory:",
    )


def _with_otp(key: ApiKey, otp: Any) -> ApiKey:
    return ApiKey(
        key.venue, key.key_id, key.secret, scopes=key.scopes, environment=key.environment, otp=otp
    )


@pytest.mark.parametrize("kind", ["totp", "static"])
def test_a_2fa_key_trades_end_to_end_with_its_otp_in_the_signed_body(
    sim: Simulator, served: HttpsServer, kind: str
) -> None:
    key = sim.create_key(venue="kraken", otp=kind)
    assert key.otp is not None
    with _client(served, key) as client:
        order = client.place_order(BUY, idempotency_key=f"otp-{kind}")
        assert order.status in (OrderStatus.NEW, OrderStatus.FILLED)
        assert client.balances()
    sent = sim.kraken.stats.last_params["AddOrder"]
    assert sent["otp"]  # it travelled inside the signed body
    if kind == "totp":
        assert isinstance(key.otp, TotpOtp)
        seed = key.otp.seed.expose().decode()
        assert pyotp.TOTP(seed).verify(sent["otp"], valid_window=1)


def test_a_wrong_totp_seed_is_invalid_otp_with_a_hint(sim: Simulator, served: HttpsServer) -> None:
    key = sim.create_key(venue="kraken", otp="totp")
    wrong = _with_otp(key, TotpOtp(Secret(pyotp.random_base32()), seed_name="other"))
    with _client(served, wrong) as client, pytest.raises(InvalidOTP) as refused:
        client.balances()
    assert "one-time password" in str(refused.value)
    assert refused.value.code == "EAPI:Invalid signature"


def test_a_2fa_key_without_its_otp_is_told_to_check_2fa(
    sim: Simulator, served: HttpsServer
) -> None:
    key = sim.create_key(venue="kraken", otp="static")
    bare = _with_otp(key, None)
    with _client(served, bare) as client, pytest.raises(AuthenticationRejected) as refused:
        client.balances()
    assert not isinstance(refused.value, InvalidOTP)
    assert "two-factor" in str(refused.value)


def test_a_key_without_2fa_needs_no_otp(sim: Simulator, served: HttpsServer) -> None:
    key = sim.create_key(venue="kraken")
    with _client(served, key) as client:
        assert client.balances()
    assert "otp" not in sim.kraken.stats.last_params.get("Balance", {})


def test_the_otp_never_shows_in_reprs_or_the_redacted_body(sim: Simulator) -> None:
    from securetrade.transport.base import HttpRequest

    key = sim.create_key(venue="kraken", otp="static")
    assert isinstance(key.otp, StaticOtp)
    password = key.otp.password.expose().decode()
    body = f"nonce=1&otp={password}".encode()
    texts = [
        repr(key),
        repr(key.otp),
        str(key.public_parts()),
        repr(HttpRequest("POST", "/", (), body)),
    ]
    for text in texts:
        assert password not in text


def test_the_keystore_keeps_the_totp_seed_as_its_own_entry(tmp_path: Path, sim: Simulator) -> None:
    key = sim.create_key(venue="kraken", otp="totp")
    assert isinstance(key.otp, TotpOtp)
    store = KeyStore.create(tmp_path / "keys.enc", b"passphrase!", kdf=CHEAP_KDF)
    store.add("kraken-bot", key)
    again = KeyStore.open(tmp_path / "keys.enc", b"passphrase!").get("kraken-bot")
    assert isinstance(again.otp, TotpOtp)
    assert again.otp.seed == key.otp.seed
    assert store.otp_seed(key.otp.seed_name) == key.otp.seed  # an entry of its own
    static = sim.create_key(venue="kraken", otp="static")
    store.add("kraken-static", static)
    assert isinstance(store.get("kraken-static").otp, StaticOtp)


def test_a_seed_that_is_not_base32_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        TotpOtp(Secret("not base32 at all!!"), seed_name="x")
    with pytest.raises(InvalidRequest):
        ApiKey("kraken", "k", "c2VjcmV0", otp="123456")  # type: ignore[arg-type]


def test_the_signed_body_carries_the_code_of_venue_time() -> None:
    from securetrade.venues.kraken import KRAKEN

    seed = pyotp.random_base32()
    key = ApiKey("kraken", "k", "c2VjcmV0c2VjcmV0", otp=TotpOtp(Secret(seed), seed_name="s"))
    signer = KRAKEN.signer(key)
    endpoint = KRAKEN.endpoints[Op.BALANCES]
    venue_ms = 1_700_000_000_000
    request = KRAKEN.prepare(
        endpoint, [], key_id="k", signer=signer, timestamp_ms=venue_ms, nonce=7
    )
    fields = dict(parse_qsl(request.body.decode()))
    assert fields["otp"] == pyotp.TOTP(seed).at(venue_ms // 1000)


def test_an_invalid_otp_rendered_with_its_locals_shows_no_password(
    sim: Simulator, served: HttpsServer
) -> None:
    import traceback

    key = sim.create_key(venue="kraken", otp="static")
    wrong = _with_otp(key, StaticOtp(Secret("wrong-password-" + "x" * 8)))
    with _client(served, wrong) as client, pytest.raises(InvalidOTP) as refused:
        client.balances()
    rendering = traceback.TracebackException.from_exception(refused.value, capture_locals=True)
    text = "".join(rendering.format()) + repr(refused.value)
    assert len(rendering.stack) > 3  # the frames were walked
    for password in ("wrong-password-" + "x" * 8, str(key.otp.code(0)) if key.otp else ""):
        assert password
        assert password not in text
