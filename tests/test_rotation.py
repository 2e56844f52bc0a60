"""Key rotation: a ring with current, next and previous keys; switching while requests fly.

Against the simulator: a key is revoked at the venue (it then answers -2015, as Binance
does for a deleted key) and requests signed with it before the switch are resent with the
new key instead of failing.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from securetrade import (
    ApiKey,
    AsyncClient,
    AuthenticationRejected,
    Client,
    InvalidRequest,
    LimitOrder,
    ScopeError,
)
from securetrade.keys import KeyRing, Scope
from securetrade.sim import HttpsServer, Simulator
from securetrade.transport import HttpRequest, HttpResponse, PinSet, pinned_ssl_context
from securetrade.transport.aio import AsyncHttpTransport

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    """A settable clock for the ring."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def key(**options: Any) -> ApiKey:
    options.setdefault("scopes", [Scope.READ, Scope.TRADE, Scope.CANCEL])
    return ApiKey("binance", secrets.token_hex(16), secrets.token_hex(24), **options)


def order(n: int = 0) -> LimitOrder:
    return LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price=f"{60000 + n}.00")


# --- the ring on its own ----------------------------------------------------------------------


def test_rotate_switches_and_keeps_previous_for_the_overlap() -> None:
    clock = Clock()
    old, new = key(), key()
    ring = KeyRing(old, overlap=timedelta(minutes=5), clock=clock)
    assert ring.active() is old
    ring.rotate(new)
    assert ring.active() is new
    assert ring.previous is old
    assert ring.retire_at == T0 + timedelta(minutes=5)
    assert ring.find(old.key_id) is old
    clock.now += timedelta(minutes=5)
    assert ring.previous is None  # overlap over: the ring forgets the old key
    assert ring.find(old.key_id) is None


def test_staged_key_takes_over_at_its_time() -> None:
    clock = Clock()
    old, new = key(), key()
    ring = KeyRing(old, next=new, activate_at=T0 + timedelta(hours=1), clock=clock)
    assert ring.active() is old
    assert ring.superseded(old.key_id) is False
    clock.now += timedelta(hours=1)
    assert ring.active() is new
    assert ring.previous is old
    assert ring.superseded(old.key_id) is True
    # The overlap counts from the scheduled switch, not from when it was noticed.
    assert ring.retire_at == T0 + timedelta(hours=1) + ring.overlap


def test_promote_by_hand_and_retire_early() -> None:
    old, new = key(), key()
    ring = KeyRing(old)
    ring.stage(new)
    assert ring.active() is old  # staged without a time: waits for promote()
    assert ring.promote() is new
    ring.retire(old.key_id)
    assert ring.previous is None
    with pytest.raises(InvalidRequest, match="current key cannot be retired"):
        ring.retire(new.key_id)
    with pytest.raises(InvalidRequest, match="no next key"):
        ring.promote()


def test_rotation_can_never_widen() -> None:
    """A replacement may keep or narrow scopes and limits; anything wider is refused."""
    old = key(symbols=["BTCUSDT"], max_notional="1000")
    ring = KeyRing(old)
    wider = [
        key(scopes=[Scope.READ, Scope.TRADE, Scope.CANCEL, Scope.TRANSFER]),
        key(symbols=["BTCUSDT", "ETHUSDT"], max_notional="1000"),
        key(symbols=None, max_notional="1000"),
        key(symbols=["BTCUSDT"], max_notional="1000.01"),
        key(symbols=["BTCUSDT"]),  # no notional limit at all
    ]
    for candidate in wider:
        with pytest.raises(ScopeError, match="never widen"):
            ring.stage(candidate)
    narrower = key(scopes=[Scope.READ, Scope.TRADE], symbols=["BTCUSDT"], max_notional="500")
    ring.rotate(narrower)
    assert ring.active() is narrower


def test_ring_keys_share_venue_and_environment() -> None:
    ring = KeyRing(key())
    with pytest.raises(InvalidRequest, match="one venue and environment"):
        ring.stage(key(environment="testnet"))
    other = ApiKey("kraken", secrets.token_hex(8), secrets.token_hex(16), scopes=["read"])
    with pytest.raises(InvalidRequest, match="one venue and environment"):
        ring.stage(other)


def test_revoke_current_promotes_next_without_overlap() -> None:
    old, new = key(), key()
    ring = KeyRing(old, next=new)
    ring.revoke(old.key_id)
    assert ring.active() is new
    assert ring.previous is None  # a leaked key gets no overlap
    with pytest.raises(ScopeError, match="revoked"):
        ring.stage(old)  # and cannot come back


def test_revoke_without_replacement_stops_signing() -> None:
    only = key()
    ring = KeyRing(only)
    ring.revoke(only.key_id)
    with pytest.raises(ScopeError, match="revoked and no next key"):
        ring.active()
    assert "…" in repr(ring)
    assert only.key_id not in repr(ring)


def test_ring_refuses_pickling_and_naive_times() -> None:
    import pickle

    ring = KeyRing(key())
    with pytest.raises(TypeError):
        pickle.dumps(ring)
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        ring.stage(key(), activate_at=datetime(2030, 1, 1))


# --- a client rotating while it works ----------------------------------------------------------


def test_client_signs_with_the_rotated_key(sim: Simulator) -> None:
    old = sim.create_key()
    new = sim.create_key(account=sim.account_of(old.key_id))
    with Client(KeyRing(old), transport=sim.transport(), journal=":memory:") as client:
        first = client.place_order(order(1), idempotency_key="before")
        client.keys.rotate(new)
        sim.revoke_key(old.key_id)
        second = client.place_order(order(2), idempotency_key="after")
        assert {o.order_id for o in client.open_orders("BTCUSDT")} == {
            first.order_id,
            second.order_id,
        }
    assert sim.dialect.stats.rejections.get(-2015, 0) == 0  # nothing was signed by the old key


class _RotateOnFirstOrder:
    """Between signing and delivery of the first order: rotate, and revoke the old key."""

    def __init__(self, inner: Any, rotate: Any) -> None:
        self.inner, self.rotate, self.done = inner, rotate, False

    def send(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and not self.done:
            self.done = True
            self.rotate()
        response: HttpResponse = self.inner.send(request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("mode", ["in-process", "tls"])
def test_request_in_flight_during_rotation_is_resent_with_new_key(
    sim: Simulator, mode: str, tls_options: Any
) -> None:
    """The order was signed with the old key, which is revoked before it arrives: the venue
    refuses it (-2015), and the client resends it, same client order id, with the new key."""
    old = sim.create_key()
    new = sim.create_key(account=sim.account_of(old.key_id))
    ring = KeyRing(old)

    def rotate() -> None:
        ring.rotate(new)
        sim.revoke_key(old.key_id)

    if mode == "tls":
        server = sim.serve()
        from securetrade.transport import HttpTransport

        inner: Any = HttpTransport(server.base_url, _context(server))
    else:
        inner = sim.transport()
    with Client(ring, transport=_RotateOnFirstOrder(inner, rotate), journal=":memory:") as client:
        placed = client.place_order(order(), idempotency_key="in-flight")
        assert client.get_order("BTCUSDT", client_order_id=placed.client_order_id) == placed
        assert len(client.open_orders("BTCUSDT")) == 1  # exactly one order at the venue
    assert sim.dialect.stats.rejections.get(-2015) == 1  # the old signature did fail
    assert client.audit.events("order.resend")


def test_old_key_fails_at_the_venue_after_revocation(sim: Simulator) -> None:
    """Revocation is real: a client still holding only the old key is refused."""
    old = sim.create_key()
    with Client(old, transport=sim.transport(), journal=":memory:") as client:
        client.balances()
        sim.revoke_key(old.key_id)
        with pytest.raises(AuthenticationRejected) as info:
            client.balances()
    assert info.value.code == -2015


def test_revoked_ring_refuses_before_any_io(sim: Simulator) -> None:
    only = sim.create_key()
    ring = KeyRing(only)
    with Client(ring, transport=sim.transport(), journal=":memory:") as client:
        ring.revoke(only.key_id)
        before = sim.dialect.stats.requests
        with pytest.raises(ScopeError, match="revoked"):
            client.balances()
        with pytest.raises(ScopeError, match="revoked"):
            client.place_order(order())
        assert sim.dialect.stats.requests == before
        assert "revoked" not in repr(client)  # repr never raises


def test_client_order_ids_survive_rotation(sim: Simulator) -> None:
    """The same idempotency key after a rotation finds the same order, not a second one."""
    old = sim.create_key()
    new = sim.create_key(account=sim.account_of(old.key_id))
    with Client(KeyRing(old), transport=sim.transport(), journal=":memory:") as client:
        first = client.place_order(order(), idempotency_key="same-intent")
        client.keys.rotate(new)
        again = client.place_order(order(), idempotency_key="same-intent")
        assert again.order_id == first.order_id
        assert len(client.open_orders("BTCUSDT")) == 1


def _context(server: HttpsServer) -> Any:
    return pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)


class _AsyncRotateAfter:
    """Rotate (and revoke the old key) once ``after`` orders have been sent."""

    def __init__(self, inner: AsyncHttpTransport, after: int, rotate: Any) -> None:
        self.inner, self.after, self.rotate, self.sent = inner, after, rotate, 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            self.sent += 1
            if self.sent == self.after:
                self.rotate()
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_concurrent_orders_while_rotating_over_tls(sim: Simulator) -> None:
    """50 orders at once over pinned TLS; the key is rotated and the old one revoked at the
    venue while about half are still in flight. Every order is placed exactly once."""
    old = sim.create_key()
    new = sim.create_key(account=sim.account_of(old.key_id))
    ring = KeyRing(old)
    server = sim.serve()

    def rotate() -> None:
        ring.rotate(new)
        sim.revoke_key(old.key_id)

    async def run() -> list[Any]:
        transport = _AsyncRotateAfter(
            AsyncHttpTransport(server.base_url, _context(server)), 25, rotate
        )
        async with AsyncClient(ring, transport=transport, journal=":memory:") as client:
            await client.instruments()
            placed = await asyncio.gather(
                *(client.place_order(order(i), idempotency_key=f"o-{i}") for i in range(50))
            )
            held = await client.open_orders("BTCUSDT")
            return [placed, held]

    placed, held = asyncio.run(run())
    assert len({o.client_order_id for o in placed}) == 50
    assert sorted(o.order_id for o in held) == sorted(o.order_id for o in placed)
    assert ring.active() is new
    assert old.key_id not in sim.dialect.keys
