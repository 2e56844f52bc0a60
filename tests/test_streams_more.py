"""Streams: pins before the first frame, redacted frame logs, the blocking driver, queue
overflow as a gap, order confirmation gated on stream health, market data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient, Client
from securetrade.errors import (
    AuthenticationRejected,
    InsufficientFunds,
    InvalidRequest,
    PinMismatch,
    UntrustedServer,
)
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.ws import SimWebSockets
from securetrade.streams import (
    BookUpdate,
    FillEvent,
    Resynced,
    StreamGap,
    StreamOptions,
    TickerUpdate,
    place_confirmed,
    place_confirmed_blocking,
)
from stream_helpers import FAST, fill_ids, fill_twice, oracle, resting, tls, until, until_sync


@pytest.fixture
def venue(sim: Simulator) -> tuple[HttpsServer, SimWebSockets]:
    server = sim.serve()
    return server, sim.serve_ws(server)


async def _first(stream: Any) -> Any:
    async for event in stream:
        return event
    return None


# --- pinned TLS: a man in the middle gets no byte -----------------------------------------


def _connected(client: Client) -> bool:
    """The client's user stream exists and is connected (a loaded host connects late)."""
    hub = client._stream_hub
    return hub is not None and hub.user is not None and hub.user.healthy


def test_trusted_but_unpinned_stream_server_raises_pin_mismatch_and_gets_nothing(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, _ = venue
    rogue = sim.serve_ws()  # its own CA and key: trusted below, but not pinned
    key = sim.create_key()
    options = {**tls(server), "cadata": server.ca_pem + rogue.ca_pem}

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **options) as client:
            await _first(client.watch_fills(stream_url=rogue.user_url, options=FAST))

    with pytest.raises(PinMismatch) as caught:
        asyncio.run(main())
    assert "127.0.0.1" in str(caught.value)
    assert rogue.requests == 0  # not even the HTTP upgrade: the pins failed in the handshake
    assert rogue.connections == 0


def test_untrusted_stream_server_is_refused_before_any_frame(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, _ = venue
    rogue = sim.serve_ws()
    key = sim.create_key()

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            await _first(client.watch_orders(stream_url=rogue.user_url, options=FAST))

    with pytest.raises(UntrustedServer):
        asyncio.run(main())
    assert rogue.requests == 0


def test_market_stream_pins_too(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, _ = venue
    rogue = sim.serve_ws()
    key = sim.create_key()
    options = {**tls(server), "cadata": server.ca_pem + rogue.ca_pem}

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **options) as client:
            await _first(client.watch_ticker("BTCUSDT", stream_url=rogue.url, options=FAST))

    with pytest.raises(PinMismatch):
        asyncio.run(main())
    assert rogue.requests == 0


# --- redaction ------------------------------------------------------------------------------


def test_auth_frames_are_logged_redacted(
    sim: Simulator,
    venue: tuple[HttpsServer, SimWebSockets],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, ws = venue
    key = sim.create_key()
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(_first(stream))
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            await client.place_order(resting())
            await task

    asyncio.run(main())
    text = caplog.text
    assert "userDataStream.subscribe.signature" in text  # the auth frame was logged ...
    assert key.key_id not in text  # ... without the key id
    assert not re.search(r"[0-9a-f]{64}", text)  # nor the signature (or the secret)


# --- the blocking driver ----------------------------------------------------------------------


def test_blocking_client_sees_every_fill_once_with_dropped_frames(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    account = sim.account_of(key.key_id)
    with Client(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
        stream = client.watch_fills(stream_url=ws.user_url, options=FAST)
        events: list[Any] = []
        with pytest.raises(TimeoutError):
            stream.next(timeout=0.2)  # starts connecting; nothing has happened yet
        until_sync(lambda: _connected(client))  # a loaded host connects late
        ids = [client.place_order(resting()).order_id for _ in range(3)]
        ws.faults.drop.update({1, 4})
        fill_twice(sim, ids)
        expected = oracle(sim, account)

        def have_all() -> bool:
            with contextlib.suppress(TimeoutError):
                events.append(stream.next(timeout=0.5))
            return expected <= set(fill_ids(events))

        until_sync(have_all)
        stream.close()
    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert any(isinstance(e, FillEvent) and e.recovered for e in events)


# --- overflow ---------------------------------------------------------------------------------


def test_queue_overflow_is_a_gap_and_nothing_is_lost_or_doubled(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    account = sim.account_of(key.key_id)
    small = StreamOptions(
        stale_after=0.5, probe_timeout=0.5, sweep_every=0.5, min_reconnect=0.05,
        queue_size=2, subscriber_queue=1,
    )  # fmt: skip

    async def main() -> list[Any]:
        events: list[Any] = []
        gate = asyncio.Event()
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_fills(stream_url=ws.user_url, options=small)

            async def consume() -> None:
                async for event in stream:
                    await gate.wait()  # a slow consumer
                    events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            ids = [(await client.place_order(resting())).order_id for _ in range(4)]
            fill_twice(sim, ids)
            await until(lambda: ws.frames_sent >= 12)  # 4 NEW, 8 TRADE
            await asyncio.sleep(0.3)  # let the frames land on the full queue
            gate.set()
            expected = oracle(sim, account)
            await until(lambda: expected <= set(fill_ids(events)))
            task.cancel()
        return events

    events = asyncio.run(main())
    assert any(isinstance(e, StreamGap) and e.reason == "overflow" for e in events)
    counts = Counter(fill_ids(events))
    assert set(counts) == oracle(sim, sim.account_of(key.key_id))
    assert set(counts.values()) == {1}


# --- confirmation gated on stream health --------------------------------------------------------


def test_order_confirmed_on_the_stream_when_healthy_and_over_rest_when_down(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()

    async def main() -> tuple[str, str, str]:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(_drain(stream))
            hub = client._stream_hub
            await until(lambda: hub.user is not None and hub.user.healthy)
            _, healthy_path = await place_confirmed(client, resting())
            ws.faults.refuse_for(60)
            ws.expire_all()
            await until(lambda: not hub.user.healthy)
            order, down_path = await place_confirmed(client, resting(price="30001"))
            task.cancel()
            return healthy_path, down_path, order.status.value

    healthy_path, down_path, status = asyncio.run(main())
    assert healthy_path == "stream"
    assert down_path == "rest"
    assert status == "NEW"


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


# --- market data -------------------------------------------------------------------------------


def test_ticker_and_book_streams_and_a_reconnect_marker(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()

    async def main() -> tuple[list[Any], list[Any]]:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            ticks: list[Any] = []
            async for event in client.watch_ticker("BTCUSDT", stream_url=ws.url, options=FAST):
                ticks.append(event)
                if len(ticks) == 2:
                    ws.expire_all()
                if any(isinstance(e, Resynced) for e in ticks) and isinstance(event, TickerUpdate):
                    break
            books: list[Any] = []
            async for event in client.watch_book("BTCUSDT", stream_url=ws.url, options=FAST):
                books.append(event)
                if len(books) == 3:
                    break
        return ticks, books

    ticks, books = asyncio.run(main())
    quotes = [t for t in ticks if isinstance(t, TickerUpdate)]
    assert all(t.bid < t.ask and t.symbol == "BTCUSDT" for t in quotes)
    assert all(isinstance(t.bid, Decimal) for t in quotes)
    assert any(isinstance(t, StreamGap) for t in ticks)
    assert all(isinstance(b, BookUpdate) and len(b.bids) == 5 for b in books)
    assert [b.sequence for b in books] == sorted(b.sequence for b in books)


def test_stream_capabilities_are_redacted_in_frames_and_urls() -> None:
    from securetrade.transport.redaction import redact_text

    frame = '{"method": "userDataStream.subscribe.signature", "params": {"apiKey": "k1k1k1", '
    frame += '"signature": "s2s2s2", "timestamp": "1"}, "listenKey": "l3l3l3", "token": "t4t4t4"}'
    text = redact_text(frame) + redact_text("wss://stream.example/ws?listenKey=l3l3l3")
    for value in ("k1k1k1", "s2s2s2", "l3l3l3", "t4t4t4"):
        assert value not in text
    assert "userDataStream.subscribe.signature" in text


# --- bad input is refused before anything connects -----------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.watch_orders(stream_url="ws://127.0.0.1:1/ws-api/v3"), "wss://"),
        (lambda c: c.watch_fills(stream_url=5), "wss://"),
        (lambda c: c.watch_orders(colour="red"), "unknown stream options"),
        (lambda c: c.watch_orders(monitor="yes"), "monitor"),
        (lambda c: c.watch_fills(options={"stale_after": 1}), "options"),
        (lambda c: c.watch_ticker("BTC&USDT"), "symbol"),
        (lambda c: c.watch_book("BTCUSDT", stream_url="https://x"), "wss://"),
    ],
)
def test_bad_stream_arguments_are_refused_with_our_error(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], call: Any, message: str
) -> None:
    server, ws = venue
    with (
        Client(sim.create_key(), journal=":memory:", **tls(server)) as client,
        pytest.raises(InvalidRequest, match=message),
    ):
        call(client)
    assert ws.requests == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"stale_after": 0},
        {"stale_after": float("nan")},
        {"queue_size": 0},
        {"sweep_every": -1},
        {"min_reconnect": -0.1},
        {"subscriber_queue": True},
    ],
)
def test_bad_stream_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        StreamOptions(**bad)


def test_a_venue_without_streams_says_which_have_them(sim: Simulator) -> None:
    from securetrade.keys import ApiKey

    server = sim.serve()
    made = sim.create_key()
    key = ApiKey("ccxt:binance", made.key_id, made.secret, scopes=made.scopes)
    with (
        Client(key, journal=":memory:", **tls(server)) as client,
        pytest.raises(InvalidRequest, match="streams exist for: alpaca, binance, kraken, oanda"),
    ):
        client.watch_orders()


def test_refused_subscription_raises_authentication_rejected_without_secrets(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    secret = key.secret.expose().decode()

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            sim.revoke_key(key.key_id)  # the venue deleted the key
            await _first(client.watch_fills(stream_url=ws.user_url, options=FAST))

    with pytest.raises(AuthenticationRejected) as caught:
        asyncio.run(main())
    text = str(caught.value) + repr(caught.value)
    assert "-2015" in text
    assert "check the key" in text  # says what to do
    assert key.key_id not in text
    assert secret not in text


def test_ed25519_key_subscribes_with_the_same_signed_method(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    """Binance's signed subscription takes an Ed25519 signature too: no session.logon."""
    server, ws = venue
    key = sim.create_key(kind="ed25519")
    account = sim.account_of(key.key_id)

    async def main() -> list[Any]:
        events: list[Any] = []
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_fills(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(_collect(stream, events))
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            order = await client.place_order(resting())
            fill_twice(sim, [order.order_id])
            await until(lambda: oracle(sim, account) <= set(fill_ids(events)))
            task.cancel()
        return events

    events = asyncio.run(main())
    assert sorted(fill_ids(events)) == sorted(oracle(sim, account))
    assert not any(isinstance(e, FillEvent) and e.recovered for e in events)  # all live


async def _collect(stream: Any, events: list[Any]) -> None:
    async for event in stream:
        events.append(event)


def test_an_order_the_venue_refused_does_not_stall_reconciliation(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    """Its intent was noted as ours, but no order exists to ask about: the reconciliation
    lets it go instead of failing on it for ever (and the stream staying unhealthy)."""
    server, ws = venue
    key = sim.create_key(balances={"USDT": Decimal("10"), "BTC": Decimal("0")})

    async def main() -> tuple[bool, int]:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(_drain(stream))
            hub = client._stream_hub
            await until(lambda: hub.user is not None and hub.user.healthy)
            with pytest.raises(InsufficientFunds):
                await client.place_order(resting())  # 30 USDT of 10
            gaps = hub.user.gaps
            ws.expire_all()
            await until(lambda: hub.user.gaps >= gaps + 2 and hub.user.healthy)
            task.cancel()
            return hub.user.healthy, len(hub.user._placed)

    healthy, placed = asyncio.run(main())
    assert healthy
    assert placed == 0


def test_closing_the_client_while_a_reconciliation_is_under_way_returns(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()

    async def main() -> bool:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(_drain(stream))
            hub = client._stream_hub
            await until(lambda: hub.user is not None and hub.user.healthy)
            for _ in range(3):
                await client.place_order(resting())
            hub.user.resync("closing")  # REST calls in flight when the client closes
            await asyncio.sleep(0)
        await asyncio.wait_for(task, 10)  # the iterator ended with the client
        return task.done()

    assert asyncio.run(asyncio.wait_for(main(), 30))  # and nothing hung


def test_blocking_place_confirmed_uses_the_stream_when_healthy(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    with Client(sim.create_key(), journal=str(tmp_path / "j.db"), **tls(server)) as client:
        stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
        with pytest.raises(TimeoutError):
            stream.next(timeout=0.2)  # connects
        until_sync(lambda: _connected(client))
        order, path = place_confirmed_blocking(client, resting())
        assert path == "stream"
        assert order.status.value == "NEW"
        update = stream.next(timeout=30)
        assert update.order_id == order.order_id
