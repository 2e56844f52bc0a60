"""Kraken streams, the parts around the fills: the book kept and checked against its
checksum, the ticker in unified symbols, the token (never logged, refused cleanly, pinned
before it could go out), an order's trades over REST, and the dialect's reading of
sequence numbers and withdrawals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kraken_stream_helpers import ACCOUNT, kraken_client, kraken_oracle, kraken_resting
from securetrade import Client
from securetrade.errors import AuthenticationRejected, InvalidRequest, PinMismatch
from securetrade.keys import ApiKey, Secret
from securetrade.models import LimitOrder
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.kraken import _order_number
from securetrade.sim.kraken_ws import KrakenWebSockets
from securetrade.sim.kraken_ws import book_checksum as venue_checksum
from securetrade.streams import BookUpdate, Resynced, StreamGap, TickerUpdate
from securetrade.streams.kraken import KrakenStreams, book_checksum
from stream_helpers import FAST, tls, until


@pytest.fixture
def ksim() -> Iterator[Simulator]:
    """A simulator whose Kraken dialect counts no calls (reconciling is not rate-limited)."""
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture
def venue(ksim: Simulator) -> tuple[HttpsServer, KrakenWebSockets]:
    """Its HTTPS server and, with the same certificates, its Kraken WebSocket API v2."""
    server = ksim.serve()
    return server, ksim.serve_kraken_ws(server)


def test_a_skipped_sequence_number_is_a_gap_reported_before_the_frame_events() -> None:
    dialect = KrakenStreams()
    row = {"order_id": "O1", "symbol": "BTC/USD", "side": "buy", "order_qty": Decimal("1"),
           "cum_qty": Decimal("0"), "order_status": "new", "exec_type": "new"}  # fmt: skip
    assert dialect.parse({"channel": "executions", "type": "snapshot", "data": [],
                          "sequence": 1}) == []  # fmt: skip
    first = dialect.parse({"channel": "executions", "type": "update", "data": [row],
                           "sequence": 2})  # fmt: skip
    assert [type(i).__name__ for i in first] == ["ExecutionReport"]
    # a later update names only what changed: the rest is remembered
    late = {"order_id": "O1", "exec_type": "canceled", "order_status": "canceled"}
    skipped = dialect.parse({"channel": "executions", "type": "update", "data": [late],
                             "sequence": 4})  # fmt: skip
    assert [type(i).__name__ for i in skipped] == ["Marker", "ExecutionReport"]
    assert skipped[0].reason == "sequence"
    report = skipped[1]
    assert (report.symbol, report.side, report.status) == ("BTC/USD", "BUY", "CANCELED")
    assert report.quantity == Decimal("1")


def test_the_book_checksum_follows_krakens_algorithm_on_the_wire_texts() -> None:
    """The client's checksum (over Decimals read from the wire) and the simulator's (over
    the texts it wrote) agree, trailing zeros and leading zeros handled as Kraken says."""
    asks = [("45285.2", "0.00100000"), ("45286.4", "1.54582015"), ("45286.6", "1.00000000")]
    bids = [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.00100000")]
    wire = venue_checksum(asks, bids)
    parsed = book_checksum(
        [(Decimal(p), Decimal(q)) for p, q in asks], [(Decimal(p), Decimal(q)) for p, q in bids]
    )
    assert parsed == wire
    assert book_checksum([(Decimal("45285.2"), Decimal("0.001"))], []) != venue_checksum(
        [("45285.2", "0.00100000")], []
    )  # the digits as written count: 0.001 is not 0.00100000


def test_book_is_kept_checked_and_a_bad_checksum_resubscribes(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    async def main() -> list[Any]:
        events: list[Any] = []
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_book("BTC/USDT", stream_url=ws.market_url, options=FAST)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: any(isinstance(e, BookUpdate) for e in events))
            ws.corrupt_checksums(1)
            ksim.market.set_price("BTCUSDT", ksim.market.price("BTCUSDT") + Decimal(50))
            await until(lambda: any(isinstance(e, Resynced) for e in events))
            ksim.market.set_price("BTCUSDT", ksim.market.price("BTCUSDT") + Decimal(50))
            bids, asks = ksim.market.book("BTCUSDT", 10)
            await until(lambda: isinstance(events[-1], BookUpdate)
                        and events[-1].bids[0][0] == bids[0][0])  # fmt: skip
            task.cancel()
            events.append((bids, asks))
        return events

    events = asyncio.run(main())
    bids, asks = events.pop()
    gaps = [e for e in events if isinstance(e, StreamGap)]
    assert [g.reason for g in gaps] == ["checksum"]
    at = events.index(gaps[0])
    assert isinstance(events[at + 1], Resynced)  # then the fresh snapshot
    assert isinstance(events[at + 2], BookUpdate)
    last = events[-1]
    assert last.symbol == "BTC/USDT"
    assert [p for p, _ in last.bids] == [p for p, _ in bids]  # the book kept from updates
    assert [p for p, _ in last.asks] == [p for p, _ in asks]
    assert ws.connections == 1  # resynced on the same connection


def test_ticker_in_unified_symbols(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    async def main() -> TickerUpdate:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            await client.instruments()  # then the venue's own name maps too
            stream = client.watch_ticker("XBTUSDT", stream_url=ws.market_url, options=FAST)
            async for event in stream:
                if isinstance(event, TickerUpdate):
                    return event
        raise AssertionError("no ticker")

    ticker = asyncio.run(main())
    assert ticker.symbol == "BTC/USDT"
    assert ticker.venue == "kraken"
    assert isinstance(ticker.bid, Decimal)
    assert ticker.bid < ticker.ask


def test_the_token_is_never_logged(
    ksim: Simulator,
    venue: tuple[HttpsServer, KrakenWebSockets],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(stream.__anext__())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            await client.place_order(kraken_resting())
            await task
            repr(client._stream_hub.user.dialect)

    asyncio.run(main())
    tokens = list(ksim.kraken.ws_tokens)
    assert tokens  # one was issued and used
    text = caplog.text
    assert '"channel": "executions"' in text  # the subscription frame was logged ...
    assert all(token not in text for token in tokens)  # ... without its token
    assert all(token[:12] not in text for token in tokens)


def test_pins_are_checked_before_the_token_could_go_out(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, _ = venue
    rogue = ksim.serve_kraken_ws()  # its own CA and key: trusted below, but not pinned
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    async def main() -> None:
        async with kraken_client(server, key, str(tmp_path / "j.db"),
                           cadata=server.ca_pem + rogue.ca_pem) as client:  # fmt: skip
            async for _ in client.watch_fills(stream_url=rogue.user_url, options=FAST):
                break

    with pytest.raises(PinMismatch):
        asyncio.run(main())
    assert rogue.requests == 0  # not even the HTTP upgrade
    assert rogue.connections == 0


def test_withdrawal_assets_are_named_as_the_stream_names_them() -> None:
    """A withdrawal of ``XBT`` this client asked for matches the stream's ``BTC``."""
    dialect = KrakenStreams()
    entry = {"type": "withdrawal", "asset": "BTC", "amount": Decimal("-0.25"),
             "timestamp": "2026-01-02T03:04:05.000000Z"}  # fmt: skip
    (withdrawal,) = dialect.parse({"channel": "balances", "type": "update", "data": [entry]})
    assert withdrawal.asset == dialect.asset("XBT") == dialect.asset("XXBT") == "BTC"
    assert withdrawal.amount == Decimal("0.25")
    trade = {**entry, "type": "trade"}
    assert dialect.parse({"channel": "balances", "type": "update", "data": [trade]}) == []


def test_an_orders_trades_over_rest_past_twenty_and_the_token_as_a_secret(
    ksim: Simulator, tmp_path: Path
) -> None:
    """What reconciliation reads: QueryOrders names the trades, QueryTrades (20 a request)
    gives them, each once; the WebSocket token comes back as a Secret."""
    server = ksim.serve()
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    async def main() -> tuple[list[Any], Secret]:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            order = await client.place_order(
                LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.025", price="30000")
            )
            number = _order_number(order.order_id)
            assert number is not None
            for _ in range(25):
                ksim.market.trade(number, Decimal("0.001"))
            fills = await client.fills("BTC/USDT", client_order_id=order.client_order_id)
            return list(fills), await client.ws_token()

    fills, token = asyncio.run(main())
    assert len(fills) == 25
    assert {f.trade_id for f in fills} == kraken_oracle(ksim)
    assert sum((f.quantity for f in fills), Decimal(0)) == Decimal("0.025")
    assert len(ksim.kraken.stats.last_params["QueryTrades"]["txid"].split(",")) == 5  # 20 + 5
    issued = list(ksim.kraken.ws_tokens)
    assert isinstance(token, Secret)
    assert token.expose().decode() in issued
    assert issued[0] not in repr(token)
    assert issued[0] not in str(token)


def test_a_refused_token_ends_the_stream_with_our_error_and_no_token_in_it(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    ksim.kraken.ws_token_ttl = 0  # every token has expired by the time it is used

    async def main() -> None:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            async for _ in client.watch_orders(stream_url=ws.user_url, options=FAST):
                break

    with pytest.raises(AuthenticationRejected) as caught:
        asyncio.run(main())
    message = str(caught.value)
    assert "executions" in message
    assert "WebSockets" in message  # what to check at Kraken
    assert all(token not in message for token in ksim.kraken.ws_tokens)


def test_a_pair_kraken_does_not_list_is_refused_with_invalid_request(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    async def main() -> None:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            async for _ in client.watch_ticker("DOGE/EUR", stream_url=ws.market_url):
                break

    with pytest.raises(InvalidRequest, match="unified pair name"):
        asyncio.run(main())
    with pytest.raises(InvalidRequest, match="unified symbols"):
        asyncio.run(_native_unknown(server, key, ws, tmp_path))


async def _native_unknown(
    server: HttpsServer, key: ApiKey, ws: KrakenWebSockets, tmp_path: Path
) -> None:
    async with kraken_client(server, key, str(tmp_path / "k.db")) as client:
        client.watch_book("NOTAPAIR", stream_url=ws.market_url)  # refused before connecting


def test_ws_token_where_the_venue_has_none_is_refused_before_any_io(
    sim: Simulator, tmp_path: Path
) -> None:
    server = sim.serve()
    with (
        Client(sim.create_key(), journal=str(tmp_path / "j.db"), **tls(server)) as client,
        pytest.raises(InvalidRequest, match="no WebSocket token"),
    ):
        client.ws_token()
    assert server.bytes_received == 0


@pytest.mark.parametrize("log_size", [75, 120, 150, 300])
def test_no_piece_of_the_token_in_the_websockets_frame_log(
    ksim: Simulator,
    venue: tuple[HttpsServer, KrakenWebSockets],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    log_size: int,
) -> None:
    """websockets elides the middle of a long frame in its log (``WEBSOCKETS_MAX_LOG_SIZE``):
    wherever the cut falls, no piece of the token is left for a reader of the logs."""
    from websockets.frames import Frame

    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    monkeypatch.setattr(Frame, "MAX_LOG_SIZE", log_size)
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)
            task = asyncio.create_task(stream.__anext__())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            task.cancel()

    asyncio.run(main())
    # ours, not the simulator's server (websockets.server logs what it received, unmasked)
    ours = [r for r in caplog.records if r.name.startswith("securetrade")]
    text = "\n".join(r.getMessage() for r in ours)
    assert "> GET /v2" in text  # websockets' own wire log ran, through our logger
    for token in ksim.kraken.ws_tokens:
        pieces = {token[i : i + 8] for i in range(len(token) - 7)}
        assert not [p for p in pieces if p in text], token


def test_an_elided_frame_line_keeps_only_its_size_in_the_wire_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Where websockets' cut would leave the end of a token without its key, the line keeps
    only the frame's kind and size (as every data frame's line does)."""
    wire = logging.getLogger("securetrade.streams.wire")
    caplog.set_level(logging.DEBUG, logger="securetrade.streams.wire")
    wire.debug("> %s", 'TEXT \'{"method": "subscri...kXwG+tGl6cU91HSk+", "x": 1}\' [300 bytes]')
    wire.debug("> %s", 'TEXT \'{"method": "ping", "req_id": 3}\' [33 bytes]')
    wire.debug("= connection is %s", "OPEN")
    lines = [r.getMessage() for r in caplog.records if r.name == "securetrade.streams.wire"]
    assert lines == ["> TEXT [300 bytes]", "> TEXT [33 bytes]", "= connection is OPEN"]
