"""Kraken keys with two-factor authentication through ``ccxt:kraken`` (issue 19 item 5),
end to end against the simulator's Kraken dialect over TLS.

ccxt knows no ``otp`` field: the codec adds the key's one-time password (static, or the
TOTP code of venue time) to every private call before ccxt signs it, so it travels inside
the signed body; the simulator checks it for enrolled keys. ``EAPI:Invalid signature`` on
a 2FA key becomes :class:`InvalidOTP` with a hint, as on the native adapter. The password
and the seed never show in a log, a repr, or a traceback rendered with its locals.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from securetrade import Client, LimitOrder, Settings
from securetrade.errors import AuthenticationRejected, InvalidOTP, InvalidRequest
from securetrade.keys import ApiKey, Secret
from securetrade.keys.otp import StaticOtp, TotpOtp
from securetrade.models import OrderStatus
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues.ccxt import CcxtVenue
from securetrade.venues.ccxt.venue import COST

BUY = LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.01", price="60000.00")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


def _ccxt(key: ApiKey, otp: Any = "same", venue: str = "ccxt:kraken") -> ApiKey:
    return ApiKey(
        venue,
        key.key_id,
        key.secret,
        scopes=key.scopes,
        kind=key.kind,
        environment=key.environment,
        otp=key.otp if otp == "same" else otp,
    )


def _client(server: HttpsServer, key: ApiKey) -> Client:
    return Client(
        key,
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=":memory:",
        settings=Settings(settle_ms=300, resolve_timeout=20.0),
        recv_window_ms=2000,
        limiter=RateLimiter([RateLimit(COST, 1.0, 1_000_000)]),
    )


@pytest.mark.parametrize("kind", ["totp", "static"])
def test_a_2fa_key_trades_through_ccxt_with_its_otp_in_the_signed_body(
    sim: Simulator, server: HttpsServer, kind: str
) -> None:
    made = sim.create_key(venue="kraken", otp=kind)
    with _client(server, _ccxt(made)) as client:
        order = client.place_order(BUY, idempotency_key=f"otp-{kind}")
        assert order.status is OrderStatus.NEW
        assert client.balances()
        assert client.get_order("BTC/USDT", client_order_id=order.client_order_id).is_open
    for call in ("AddOrder", "BalanceEx", "OpenOrders"):
        sent = sim.kraken.stats.last_params[call]["otp"]  # signed with the rest of the body
        if isinstance(made.otp, TotpOtp):
            seed = made.otp.seed.expose().decode()
            assert pyotp.TOTP(seed).verify(sent, valid_window=1)
        else:
            assert isinstance(made.otp, StaticOtp)
            assert sent == made.otp.password.expose().decode()


def test_a_wrong_totp_seed_is_invalid_otp_with_a_hint(sim: Simulator, server: HttpsServer) -> None:
    made = sim.create_key(venue="kraken", otp="totp")
    wrong = _ccxt(made, TotpOtp(Secret(pyotp.random_base32()), seed_name="other"))
    with _client(server, wrong) as client, pytest.raises(InvalidOTP) as refused:
        client.balances()
    assert "one-time password" in str(refused.value)
    assert refused.value.code == "EAPI:Invalid signature"
    assert refused.value.venue == "ccxt:kraken"


def test_a_2fa_key_without_its_otp_is_told_to_check_2fa(
    sim: Simulator, server: HttpsServer
) -> None:
    made = sim.create_key(venue="kraken", otp="static")
    bare = _ccxt(made, None)
    with _client(server, bare) as client, pytest.raises(AuthenticationRejected) as refused:
        client.balances()
    assert not isinstance(refused.value, InvalidOTP)
    assert "two-factor" in str(refused.value)
    assert "otp" not in sim.kraken.stats.last_params.get("BalanceEx", {})


def test_a_key_without_2fa_sends_no_otp(sim: Simulator, server: HttpsServer) -> None:
    with _client(server, _ccxt(sim.create_key(venue="kraken"))) as client:
        assert client.balances()
    assert "otp" not in sim.kraken.stats.last_params["BalanceEx"]


def test_an_exchange_without_otp_refuses_such_a_key() -> None:
    key = ApiKey("ccxt:binance", "k", "c2VjcmV0", otp=StaticOtp(Secret("pass-" + "x" * 10)))
    with pytest.raises(InvalidRequest, match="one-time password"):
        CcxtVenue("binance").signer(key)


def test_the_password_shows_in_no_log_repr_or_traceback(
    sim: Simulator, server: HttpsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No frame of this test holds a password while the traceback is rendered with its
    locals: the texts are gathered first, the passwords spelled out after."""
    made = sim.create_key(venue="kraken", otp="static")
    caplog.set_level(logging.DEBUG)
    with _client(server, _ccxt(made)) as client:
        client.place_order(BUY)
        texts = [repr(client.venue.signer(_ccxt(made))), repr(_ccxt(made))]
    wrong = _ccxt(made, StaticOtp(Secret("wrong-password-" + "y" * 8)))
    with _client(server, wrong) as client, pytest.raises(InvalidOTP) as refused:
        client.balances()
    rendering = traceback.TracebackException.from_exception(refused.value, capture_locals=True)
    assert len(rendering.stack) > 3  # the frames were walked
    texts += ["".join(rendering.format()), repr(refused.value), caplog.text]
    assert "BalanceEx" in caplog.text  # the DEBUG log was written
    assert isinstance(made.otp, StaticOtp)
    for password in ("wrong-password-" + "y" * 8, made.otp.password.expose().decode()):
        for text in texts:
            assert password not in text
