"""Kraken's WebSocket API v2: the ``executions`` channel (with a token), ``book`` and
``ticker``.

How it differs from Binance, and where each difference is met:

* Authentication is a token from the signed REST call ``GetWebSocketsToken``, asked for
  anew on every connect (:meth:`KrakenStreams.token_frames`); the token is a
  :class:`~securetrade.keys.Secret` until the one frame that carries it, and ``token`` is
  masked wherever frames are logged.
* Every ``executions`` message carries a ``sequence``: a number skipped is a gap, reported
  before the message's own events, and reconciled over REST by the supervisor.
* Withdrawals come on the ``balances`` channel (ledger entries of type ``withdrawal``),
  subscribed to with the same token.
* Updates may name only what changed: the last known fields of each order are kept, so
  every report is whole.
* The ``book`` is kept here from its snapshot and updates, and checked against the CRC32
  checksum of every message; a mismatch is a gap, and the stream subscribes again for a
  fresh snapshot.
* Symbols are unified (``BTC/USD``), in and out. Prices and quantities are JSON numbers,
  read as :class:`~decimal.Decimal` with every digit the venue wrote.
"""

from __future__ import annotations

import itertools
import json
import logging
import zlib
from collections import OrderedDict
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from .._checks import as_text, is_text, own_methods, text
from ..errors import AuthenticationRejected, InvalidRequest
from ..keys import ApiKey, Environment, Secret
from ..models import to_decimal
from ..signing import Signer
from ..venues.kraken.tables import asset_name
from .dialects import ExecutionReport, Parsed, Withdrawal
from .events import BookUpdate, TickerUpdate
from .options import Marker

__all__ = ["KrakenStreams", "book_checksum"]

log = logging.getLogger("securetrade.streams")

_STATUS = {
    "pending_new": "NEW",
    "new": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
}
_KEEP_ORDERS = 10_000  # orders whose last known fields are kept
# one decoder for every frame: json.loads(text, parse_float=...) builds a JSONDecoder and
# its scanner on each call
_DECODER = json.JSONDecoder(parse_float=Decimal)
_ZERO = Decimal(0)
# a trade's own fields: not kept as the order's last known state
_TRADE_FIELDS = frozenset({"exec_id", "trade_id", "last_qty", "last_price", "fees", "cost"})
_DEPTH = 10  # book levels subscribed to (the checksum covers the top ten)


def book_checksum(asks: list[tuple[Decimal, Decimal]], bids: list[tuple[Decimal, Decimal]]) -> int:
    """CRC32 (unsigned) of the top ten asks, lowest first, then the top ten bids, highest
    first: each price and quantity as written on the wire, without its decimal point and
    leading zeros (Kraken's "Book checksum (WebSocket v2)")."""

    def text(value: Decimal) -> str:
        return format(value, "f").replace(".", "").lstrip("0")

    levels = asks[:10] + bids[:10]
    return zlib.crc32("".join(text(p) + text(q) for p, q in levels).encode("ascii"))


def _number(value: Any, name: str) -> Decimal:
    if type(value) is Decimal and value.is_finite():  # a JSON number, as decode reads it
        return value
    return to_decimal(value if isinstance(value, Decimal) else str(value), field=name)


def _ms(stamp: Any) -> int:
    if not isinstance(stamp, str):
        return 0
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


class KrakenStreams:
    """Kraken spot over WebSocket API v2: user data on ``ws-auth.kraken.com/v2`` (a token
    from ``GetWebSocketsToken``), market data on ``ws.kraken.com/v2``."""

    name = "kraken"
    min_reconnect_delay = 1.0  # Kraken limits connection attempts per IP
    max_connection_age = 24 * 3600.0
    needs_token = True  # the supervisor fetches a token before every connect
    unified_symbols = True  # BTC/USD in and out

    _USER: ClassVar[dict[Environment, str]] = {Environment.LIVE: "wss://ws-auth.kraken.com/v2"}
    _MARKET: ClassVar[dict[Environment, str]] = {Environment.LIVE: "wss://ws.kraken.com/v2"}

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._private: dict[int, str] = {}  # request id -> the private channel it subscribes
        self._sequence: int | None = None
        self._orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._bids: dict[Decimal, Decimal] | None = None
        self._asks: dict[Decimal, Decimal] | None = None
        self._books = 0

    # --- URLs and subscriptions -----------------------------------------------------------

    def user_url(self, environment: Environment) -> str:
        """The private endpoint of ``environment``; :class:`InvalidRequest` (pass
        ``stream_url=``) where Kraken has none."""
        environment = Environment(environment)  # a member, or its value; else InvalidRequest
        url = self._USER.get(environment)
        if url is None:
            raise InvalidRequest(f"kraken has no {environment.value} stream URL; pass stream_url=")
        return url

    def market_url(self, environment: Environment, channel: str, symbol: str) -> str:
        """The public endpoint: the channel and symbol travel in the subscription frame."""
        if not is_text(channel) or channel not in ("ticker", "book"):  # no caller's ==
            raise InvalidRequest("channel must be 'ticker' or 'book'")
        environment = Environment(environment)
        url = self._MARKET.get(environment)
        if url is None:
            raise InvalidRequest(f"kraken has no {environment.value} stream URL; pass stream_url=")
        return url

    def auth_frames(self, key: ApiKey, signer: Signer, now_ms: int) -> list[str]:
        """Kraken authenticates with a token, not a signature: see :meth:`token_frames`."""
        raise InvalidRequest("kraken streams authenticate with a WebSocket token (ws_token)")

    def token_frames(self, token: Secret) -> list[str]:
        """The ``executions`` subscription with ``token`` (open orders in the snapshot), and
        the ``balances`` one (withdrawals): sent on every connect, which also restarts the
        sequence numbers."""
        if not isinstance(token, Secret):
            raise InvalidRequest("token must be the Secret that ws_token() returned")
        self._sequence = None
        self._private.clear()  # answers to an earlier connection's requests never come
        frames = []
        for channel, extra in (
            ("executions", {"snap_orders": True, "snap_trades": False}),
            ("balances", {"snapshot": False}),
        ):
            req_id = next(self._ids)
            self._private[req_id] = channel
            params = {"channel": channel, "token": token.expose().decode("ascii"), **extra}
            frames.append(json.dumps({"method": "subscribe", "params": params, "req_id": req_id}))
        return frames

    def check_auth_answer(self, frame: Any) -> bool:
        """True once the executions subscription is confirmed; raises when it was refused.
        A refused ``balances`` subscription (a key that may not query funds) only costs the
        withdrawal alerts, and is logged."""
        if not isinstance(frame, dict) or frame.get("method") != "subscribe":
            return False
        channel = self._private.pop(frame.get("req_id"), None)  # type: ignore[arg-type]
        if frame.get("success") is True:
            result = frame.get("result") or {}
            return bool(result.get("channel") == "executions")
        if channel == "balances":
            log.warning("kraken refused the balances subscription (%s): no withdrawal alerts; "
                        "give the key 'Query funds' at Kraken", frame.get("error"))  # fmt: skip
            return False
        raise AuthenticationRejected(
            f"kraken refused the executions subscription ({frame.get('error')}); check the "
            "key has 'Access WebSockets API' and 'Query open orders & trades' at Kraken"
        )

    @staticmethod
    def asset(code: str) -> str:
        """A Kraken asset code in the common name (``XXBT`` and ``XBT`` are ``BTC``), as
        the balances channel names it: so a withdrawal of ours is matched."""
        plain = as_text(code)  # looked up in a dict: the caller's own hash never runs
        if plain is None:
            raise InvalidRequest(
                f"code must be a Kraken asset code as a str, such as XXBT{own_methods(code)}"
            )
        return asset_name(plain)

    def market_frames(self, channel: str, symbol: str) -> list[str]:
        """The subscription to ``symbol``'s ``channel`` (a new connection: a new book)."""
        _check_market(channel, symbol)
        self._bids = self._asks = None
        params: dict[str, Any] = {"channel": channel, "symbol": [symbol], "snapshot": True}
        if channel == "book":
            params["depth"] = _DEPTH
        return [json.dumps({"method": "subscribe", "params": params, "req_id": next(self._ids)})]

    def resubscribe_frames(self, channel: str, symbol: str) -> list[str]:
        """Unsubscribe and subscribe again on the same connection: a fresh snapshot."""
        _check_market(channel, symbol)
        params = {"channel": channel, "symbol": [symbol]}
        leave = {"method": "unsubscribe", "params": params, "req_id": next(self._ids)}
        return [json.dumps(leave), *self.market_frames(channel, symbol)]

    def check_market_answer(self, frame: Any) -> bool:
        """True once a market subscription is confirmed; :class:`InvalidRequest` when Kraken
        refused it (a pair it does not list, say)."""
        if not isinstance(frame, dict) or frame.get("method") != "subscribe":
            return False
        if frame.get("success") is True:
            return True
        raise InvalidRequest(
            f"kraken refused the subscription ({frame.get('error')}); check the symbol is "
            "Kraken's unified pair name, such as BTC/USD"
        )

    def probe(self) -> str | None:
        """A ``ping`` request: its ``pong`` proves the data path still flows."""
        return json.dumps({"method": "ping", "req_id": next(self._ids)})

    @staticmethod
    def decode(text: str | bytes) -> Any:
        """JSON with numbers read as Decimal (Kraken writes prices as numbers)."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise InvalidRequest("text must be one frame's text or bytes")
        try:
            if isinstance(text, str):
                return _DECODER.decode(text)
            return json.loads(text, parse_float=Decimal)  # bytes: json finds the encoding
        except (ValueError, RecursionError):  # nested too deep: no frame of ours either
            return None

    # --- frames --------------------------------------------------------------------------

    def parse(self, frame: Any) -> list[Parsed]:
        """Execution reports (a sequence gap first as a marker), book snapshots checked
        against their checksum, and tickers; anything else is ignored."""
        if not isinstance(frame, dict):
            return []
        channel = frame.get("channel")
        data = frame.get("data")
        if not isinstance(data, list):
            return []
        if channel == "executions":
            return self._executions(frame, data)
        if channel == "book":
            return self._book(frame, data)
        if channel == "balances" and frame.get("type") == "update":
            return [
                Withdrawal(
                    self.asset(str(row["asset"])),
                    abs(_number(row["amount"], "amount")),
                    _ms(row.get("timestamp")),
                )
                for row in data
                if isinstance(row, dict) and row.get("type") == "withdrawal"
            ]
        if channel == "ticker":
            return [
                TickerUpdate(
                    self.name,
                    str(row["symbol"]),
                    _number(row["bid"], "bid"),
                    _number(row["bid_qty"], "bid_qty"),
                    _number(row["ask"], "ask"),
                    _number(row["ask_qty"], "ask_qty"),
                    _ms(row.get("timestamp")),
                )
                for row in data
            ]
        return []

    def _executions(self, frame: dict[str, Any], data: list[Any]) -> list[Parsed]:
        items: list[Parsed] = []
        sequence = frame.get("sequence")
        if isinstance(sequence, int):
            last = self._sequence
            if frame.get("type") != "snapshot" and last is not None and sequence > last + 1:
                missed = sequence - last - 1
                items.append(Marker("sequence", f"executions skipped {missed} message(s)"))
            self._sequence = sequence if last is None else max(last, sequence)
        for row in data:
            report = self._report(row)
            if report is not None:
                items.append(report)
        return items

    def _report(self, row: dict[str, Any]) -> ExecutionReport | None:
        order_id = str(row["order_id"])
        orders = self._orders
        known = orders.get(order_id)
        if known is None:
            known = orders[order_id] = {}
            if len(orders) > _KEEP_ORDERS:
                orders.popitem(last=False)
        else:
            orders.move_to_end(order_id)  # the most recently reported is kept longest
        known.update(row)  # an update names only what changed: merged in place, ...
        if not _TRADE_FIELDS.isdisjoint(row):  # ... but a trade's own fields are not kept
            for field in _TRADE_FIELDS:
                known.pop(field, None)
        if "symbol" not in known or "side" not in known:
            return None  # never seen whole (a restated order from before the snapshot)
        kind = str(row.get("exec_type", "status"))
        fees = row.get("fees") or []
        traded = kind == "trade" and row.get("exec_id") is not None
        commission = _ZERO
        for fee in fees:
            commission += _number(fee["qty"], "fees")
        # positional, in the fields' order (keywords cost more per frame)
        return ExecutionReport(
            str(known["symbol"]),  # symbol
            order_id,
            str(known.get("cl_ord_id") or ""),  # client_order_id
            str(known["side"]).upper(),  # side
            _STATUS.get(str(known.get("order_status", "new")), "NEW"),  # status
            kind.upper(),  # execution
            _number(known.get("order_qty", 0), "order_qty"),  # quantity
            _number(known.get("cum_qty", 0), "cum_qty"),  # cumulative
            _number(row.get("last_qty", 0), "last_qty"),  # last_quantity
            _number(row.get("last_price", 0), "last_price"),  # last_price
            str(row["exec_id"]) if traded else None,  # trade_id
            commission,
            str(fees[0]["asset"]) if fees else None,  # commission_asset
            _ms(row.get("timestamp")),  # at_ms
        )

    def _book(self, frame: dict[str, Any], data: list[Any]) -> list[Parsed]:
        items: list[Parsed] = []
        for row in data:
            if frame.get("type") == "snapshot":
                self._bids, self._asks = {}, {}
            elif self._bids is None or self._asks is None:
                continue  # waiting for the snapshot a resubscription asked for
            bids, asks = self._bids, self._asks
            assert bids is not None
            assert asks is not None
            for side, levels in ((bids, row.get("bids") or []), (asks, row.get("asks") or [])):
                for level in levels:
                    price, qty = _number(level["price"], "price"), _number(level["qty"], "qty")
                    if qty == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty
            top_bids = sorted(bids.items(), reverse=True)[:_DEPTH]
            top_asks = sorted(asks.items())[:_DEPTH]
            self._bids, self._asks = dict(top_bids), dict(top_asks)  # truncated to the depth
            expected = row.get("checksum")
            if isinstance(expected, int) and book_checksum(top_asks, top_bids) != expected:
                self._bids = self._asks = None
                items.append(Marker("checksum", "the book's checksum did not match"))
                continue
            self._books += 1
            items.append(
                BookUpdate(
                    self.name,
                    str(row.get("symbol", "")),
                    tuple(top_bids),
                    tuple(top_asks),
                    self._books,
                )
            )
        return items


def _check_market(channel: Any, symbol: Any) -> None:
    """A market subscription's channel and symbol, refused before a frame is made."""
    if not is_text(channel) or channel not in ("ticker", "book"):  # no caller's ==
        raise InvalidRequest("channel must be 'ticker' or 'book'")
    text("symbol", symbol)
