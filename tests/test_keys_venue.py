"""Least privilege against a venue: local refusals that send nothing, and the key check.

Every "0 requests" assertion reads the simulator's own request log, so a refusal that
leaked even a clock sync or an exchangeInfo call would show.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from securetrade import (
    AsyncClient,
    Client,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    ScopeError,
)
from securetrade.errors import KeyNotFound, OverPermissionedKey
from securetrade.keys import (
    ApiKey,
    Environment,
    KeyPermissions,
    Scope,
    assess,
    env_names,
    key_from_env,
)
from securetrade.sim import Simulator
from securetrade.venues.binance import BINANCE

# --- out-of-scope calls never reach the venue ------------------------------------------------

OPERATIONS: dict[str, tuple[Scope, Callable[[Client], Any]]] = {
    "place_order": (
        Scope.TRADE,
        lambda c: c.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
        ),
    ),
    "check_order": (
        Scope.TRADE,
        lambda c: c.check_order(MarketOrder(symbol="BTCUSDT", side="SELL", quantity="0.01")),
    ),
    "cancel_order": (Scope.CANCEL, lambda c: c.cancel_order("BTCUSDT", order_id="1")),
    "get_order": (Scope.READ, lambda c: c.get_order("BTCUSDT", order_id="1")),
    "open_orders": (Scope.READ, lambda c: c.open_orders()),
    "balances": (Scope.READ, lambda c: c.balances()),
    "key_permissions": (Scope.READ, lambda c: c.key_permissions()),
    "check_key": (Scope.READ, lambda c: c.check_key()),
    "withdraw": (Scope.WITHDRAW, lambda c: c.withdraw("USDT", "1", "addr-" + "0" * 20)),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_out_of_scope_call_reaches_the_venue_zero_times(
    name: str, sim: Simulator, make_client: Any
) -> None:
    needed, call = OPERATIONS[name]
    everything = {Scope.READ, Scope.TRADE, Scope.CANCEL, Scope.TRANSFER}
    key = sim.create_key(scopes=sorted(everything - {needed}, key=lambda s: s.value))
    client = make_client(key)
    before = sim.dialect.stats.requests
    with pytest.raises(ScopeError, match=f"'{needed.value}'"):
        call(client)
    assert sim.dialect.stats.requests == before == 0


def test_limits_refuse_before_any_io(sim: Simulator, make_client: Any) -> None:
    """Symbol allowlist, max quantity and max notional are scope checks too: nothing sent."""
    base = sim.create_key()
    client = make_client(base.restrict(symbols=["ETHUSDT"], max_quantity="0.5"))
    for bad in (
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000"),
        LimitOrder(symbol="ETHUSDT", side="BUY", quantity="0.6", price="3000"),
    ):
        with pytest.raises(ScopeError):
            client.place_order(bad)
    notional = make_client(base.restrict(max_notional="100"))
    with pytest.raises(ScopeError, match="notional"):
        notional.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="1", price="200"))
    assert sim.dialect.stats.requests == 0


def test_withdrawal_needs_scope_and_allowlisted_address(sim: Simulator) -> None:
    allowed = "bc1q" + secrets.token_hex(16)
    key = sim.create_key(
        scopes=[Scope.READ, Scope.WITHDRAW], can_withdraw=True, withdraw_addresses=[allowed]
    )
    with Client(
        key, transport=sim.transport(), journal=":memory:", unsafe_allow_withdraw_scope=True
    ) as client:
        with pytest.raises(ScopeError, match="allowlist"):
            client.withdraw("BTC", "0.1", "bc1q" + secrets.token_hex(16))
        assert sim.dialect.stats.requests == 0
        assert client.withdraw("BTC", "0.1", allowed)
        assert sim.dialect.stats.by_path["POST /sapi/v1/capital/withdraw/apply"] == 1


def test_trading_client_refuses_a_withdrawing_key_and_says_why(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    key = sim.create_key(scopes=[Scope.READ, Scope.TRADE, Scope.WITHDRAW], can_withdraw=True)
    with pytest.raises(InvalidRequest) as info:
        Client(key, transport=sim.transport(), journal=":memory:")
    message = str(info.value)
    assert "drain the account" in message
    assert "restrict(scopes=" in message
    assert "unsafe_allow_withdraw_scope=True" in message
    with caplog.at_level(logging.WARNING, logger="securetrade"):
        Client(
            key, transport=sim.transport(), journal=":memory:", unsafe_allow_withdraw_scope=True
        ).close()
    assert "unsafe_allow_withdraw_scope" in caplog.text
    # Narrowing the key is the safe way out.
    Client(
        key.restrict(scopes=[Scope.READ, Scope.TRADE]),
        transport=sim.transport(),
        journal=":memory:",
    ).close()
    assert sim.dialect.stats.requests == 0


# --- asking the venue what the key may really do ---------------------------------------------


def test_check_passes_a_least_privilege_key(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key(scopes=[Scope.READ, Scope.TRADE]))
    report = client.check_key(refuse=True)
    assert report.ok
    assert report.problems == ()
    assert report.granted == {Scope.READ, Scope.TRADE, Scope.CANCEL}
    assert report.ip_restricted is True
    assert not report.can_withdraw
    assert sim.dialect.stats.by_path["GET /sapi/v1/account/apiRestrictions"] == 1


def test_check_flags_an_over_permissioned_key(
    sim: Simulator, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Withdrawals enabled and no IP allowlist at the venue, neither declared: warned."""
    key = sim.create_key(scopes=[Scope.READ, Scope.TRADE], can_withdraw=True, ip_restricted=False)
    client = make_client(key)
    with caplog.at_level(logging.WARNING, logger="securetrade.keys"):
        report = client.check_key()
    assert not report.ok
    assert report.can_withdraw
    assert dict(report.excess) == {"enableWithdrawals": frozenset({Scope.WITHDRAW})}
    assert report.ip_restricted is False
    assert any("withdrawals are enabled" in p for p in report.problems)
    assert any("no IP allowlist" in p for p in report.problems)
    assert "withdrawals are enabled" in caplog.text
    assert "no IP allowlist" in caplog.text
    assert "over-permissioned" in "\n".join(report.lines())
    with pytest.raises(OverPermissionedKey) as info:
        client.check_key(refuse=True)
    assert info.value.report is not None
    assert not info.value.report.ok
    assert key.key_id not in str(info.value)


def test_check_flags_missing_ip_restriction_alone(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key(ip_restricted=False))
    report = client.check_key()
    assert [p for p in report.problems if "IP allowlist" in p]
    assert not report.can_withdraw


def test_async_check_key(sim: Simulator) -> None:
    key = sim.create_key(scopes=[Scope.READ], can_withdraw=True)

    async def run() -> Any:
        async with AsyncClient(key, transport=sim.async_transport(), journal=":memory:") as c:
            report = await c.check_key()
            with pytest.raises(OverPermissionedKey):
                await c.check_key(refuse=True)
            return report

    report = asyncio.run(run())
    assert report.can_withdraw
    assert set(report.excess) == {"enableSpotAndMarginTrading", "enableWithdrawals"}


def test_binance_permission_parsing() -> None:
    """Each apiRestrictions switch maps to the scopes it grants; unknown ones are noted."""
    payload = {
        "ipRestrict": True,
        "createTime": 1_700_000_000_000,
        "enableReading": True,
        "enableSpotAndMarginTrading": True,
        "enableWithdrawals": False,
        "enableInternalTransfer": False,
        "permitsUniversalTransfer": True,
        "enableMargin": False,
        "enableFutures": True,
        "enableVanillaOptions": False,
        "enableSomethingNew": True,
    }
    permissions = BINANCE.parse_key_permissions(payload)
    assert permissions.ip_restricted is True
    assert permissions.scopes == {
        Scope.READ,
        Scope.TRADE,
        Scope.CANCEL,
        Scope.TRANSFER,
        Scope.FUTURES,
    }
    assert permissions.unknown == ("enableSomethingNew",)
    key = ApiKey("binance", "k-" + secrets.token_hex(8), secrets.token_hex(16), scopes=["read"])
    report = assess(key, permissions)
    assert set(report.excess) == {
        "enableFutures",
        "enableSpotAndMarginTrading",
        "permitsUniversalTransfer",
    }
    assert any("enableSomethingNew" in n for n in report.notes)


def test_bundled_switch_is_not_excess_when_part_is_declared() -> None:
    """Binance grants trade and cancel with one switch: declaring trade alone is fine."""
    permissions = KeyPermissions(
        {"trading": frozenset({Scope.TRADE, Scope.CANCEL}), "read": frozenset({Scope.READ})},
        ip_restricted=None,
    )
    key = ApiKey("x", "k-" + secrets.token_hex(8), secrets.token_hex(16), scopes=["read", "trade"])
    report = assess(key, permissions)
    assert report.ok
    assert report.missing == frozenset()
    narrow = ApiKey("x", "k-" + secrets.token_hex(8), secrets.token_hex(16), scopes=["margin"])
    report = assess(narrow, permissions)
    assert set(report.excess) == {"read", "trading"}
    assert report.missing == {Scope.MARGIN}
    assert "IP allowlist not reported" in "\n".join(report.lines())


# --- keys from the environment ---------------------------------------------------------------


def test_env_names_are_per_venue_and_environment() -> None:
    live = env_names("binance", Environment.LIVE)
    test = env_names("binance", "testnet")
    assert live["key_id"] == "SECURETRADE_BINANCE_LIVE_KEY_ID"
    assert live["secret"] == "SECURETRADE_BINANCE_LIVE_SECRET"
    assert test["secret"] == "SECURETRADE_BINANCE_TESTNET_SECRET"
    assert env_names("coinbase-advanced")["passphrase"] == (
        "SECURETRADE_COINBASE_ADVANCED_LIVE_PASSPHRASE"
    )


def test_key_from_env_reads_only_its_environment() -> None:
    secret = secrets.token_hex(24)
    key_id = secrets.token_hex(16)
    environ = {
        "SECURETRADE_BINANCE_TESTNET_KEY_ID": key_id,
        "SECURETRADE_BINANCE_TESTNET_SECRET": secret,
        "SECURETRADE_BINANCE_TESTNET_SCOPES": "read, trade",
        "SECURETRADE_BINANCE_TESTNET_SYMBOLS": "BTCUSDT,ETHUSDT",
    }
    key = key_from_env("binance", "testnet", environ=environ)
    assert key.key_id == key_id
    assert key.secret.expose() == secret.encode()
    assert key.environment is Environment.TESTNET
    assert key.scopes == {Scope.READ, Scope.TRADE}
    assert key.symbols == {"BTCUSDT", "ETHUSDT"}
    with pytest.raises(KeyNotFound, match="SECURETRADE_BINANCE_LIVE_KEY_ID") as info:
        key_from_env("binance", "live", environ=environ)  # a test key never serves live
    assert secret not in str(info.value)


def test_key_from_env_defaults_to_read_and_reads_secret_files(tmp_path: Any) -> None:
    pem = tmp_path / "key.pem"
    secret = secrets.token_hex(24)
    pem.write_text(secret + "\n")
    names = env_names("binance")
    key = key_from_env(
        "binance",
        environ={names["key_id"]: "k-" + secrets.token_hex(8), names["secret_file"]: str(pem)},
    )
    assert key.scopes == {Scope.READ}
    assert key.secret.expose() == secret.encode()
    with pytest.raises(KeyNotFound, match="SECRET_FILE"):
        key_from_env("binance", environ={names["key_id"]: "k-1", names["secret"]: ""})


def test_key_from_env_bad_values_are_typed_errors_without_the_secret() -> None:
    secret = secrets.token_hex(24)
    names = env_names("binance")
    environ = {names["key_id"]: "k-1234567", names["secret"]: secret, names["scopes"]: "admin"}
    with pytest.raises(InvalidRequest, match="Scope") as info:
        key_from_env("binance", environ=environ)
    assert secret not in str(info.value)


# --- public parts ----------------------------------------------------------------------------


def test_public_parts_hold_no_secret_and_show_the_public_key(sim: Simulator) -> None:
    key = sim.create_key(kind="ed25519")
    parts = key.public_parts()
    text = "\n".join(parts.values())
    assert "BEGIN PUBLIC KEY" in parts["public key"]
    for line in key.secret.expose().decode().splitlines():
        if "-----" not in line:
            assert line not in text
    assert key.key_id not in text
    hmac_key = sim.create_key()
    assert "public key" not in hmac_key.public_parts()
    assert hmac_key.secret.expose().decode() not in "\n".join(hmac_key.public_parts().values())
