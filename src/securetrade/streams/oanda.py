"""OANDA v20's transaction stream: every state change of the account, numbered.

``GET /v3/accounts/{id}/transactions/stream`` on the stream host
(``stream-fxpractice.oanda.com``, ``stream-fxtrade.oanda.com``) with the bearer token
answers one JSON object per line, chunked: each transaction of the account (order
creates, fills, cancels, rejects, transfers ...) and a ``HEARTBEAT`` every few seconds
carrying ``lastTransactionID``. Transaction ids count up by one per account, so the
stream is checkable: :class:`~securetrade.streams.lines.LineConnector` reports a jump (or
a heartbeat ahead of the last id read) as a gap, and the reconciliation reads what was
missed from ``GET /v3/accounts/{id}/transactions/sinceid?id=N`` on the REST host before
it asks about the orders in play.

An ``ORDER_FILL`` is one fill, known by its transaction id; an order's id is the id of
the transaction that created it (as the REST API shows it). A ``TRANSFER_FUNDS`` with a
negative amount is money leaving the account: a withdrawal.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from .._checks import text
from ..errors import InvalidRequest
from ..keys import ApiKey, Environment
from ..models import to_decimal
from ..signing import Signer
from ..signing.presented import HeaderAuth
from ..venues.times import parse_time
from .dialects import ExecutionReport, Parsed, Withdrawal

__all__ = ["OandaStreams"]

_CREATES = frozenset({"MARKET_ORDER", "LIMIT_ORDER", "STOP_ORDER", "MARKET_IF_TOUCHED_ORDER"})
_PATH = "/v3/accounts/{account}"


def _money(value: Any, name: str) -> Decimal:
    return to_decimal(str(value), field=name)


def _ms(stamp: Any) -> int:
    """An RFC 3339 time (nanoseconds allowed) as epoch milliseconds; 0 when absent."""
    return int(parse_time(str(stamp)).timestamp() * 1000) if stamp else 0


class OandaStreams:
    """OANDA v20: the transaction stream over chunked HTTPS, replayed by ``sinceid``."""

    name = "oanda"
    transport = "http"  # a line stream over HTTPS, not a WebSocket
    min_reconnect_delay = 0.5  # OANDA asks for at most 2 new connections a second
    max_connection_age = 24 * 3600.0
    market_data = False  # watch_ticker / watch_book: not offered here

    _STREAM: ClassVar[dict[Environment, str]] = {
        Environment.PAPER: "https://stream-fxpractice.oanda.com",
        Environment.LIVE: "https://stream-fxtrade.oanda.com",
    }

    def user_url(self, environment: Environment) -> str:
        """The transaction stream of ``environment``, ``{account}`` still to be filled in;
        :class:`InvalidRequest` (pass ``stream_url=``) where OANDA has none."""
        environment = Environment(environment)  # a member, or its value; else InvalidRequest
        base = self._STREAM.get(environment)
        if base is None:
            raise InvalidRequest(f"oanda has no {environment.value} stream URL; pass stream_url=")
        return base + _PATH + "/transactions/stream"

    def replay_url(self, rest_base: str) -> str:
        """Where the missed transactions are read: ``sinceid`` on the REST host."""
        text("rest_base", rest_base)
        return rest_base.rstrip("/") + _PATH + "/transactions/sinceid"

    def market_url(self, environment: Environment, channel: str, symbol: str) -> str:
        """Not offered yet: read prices with ``client.ticker()``."""
        raise InvalidRequest(
            "oanda streams orders and fills only (watch_orders, watch_fills); "
            "read prices with client.ticker()"
        )

    def headers(self, key: ApiKey, signer: Signer) -> Sequence[tuple[str, str]]:
        """The bearer token, as the REST requests carry it."""
        if not isinstance(signer, HeaderAuth):
            raise InvalidRequest("an OANDA stream needs the key's bearer token")
        return signer.headers(key.key_id)

    def auth_frames(self, key: ApiKey, signer: Signer, now_ms: int) -> Sequence[str | bytes]:
        """None: the token travels in the request's header."""
        return ()

    def check_auth_answer(self, frame: Any) -> bool:
        """Always true: a 200 answer is the authorization."""
        return True

    def probe(self) -> str | None:
        """None: heartbeats come every few seconds, so silence itself is staleness."""
        return None

    @staticmethod
    def ids(frame: Any) -> tuple[int | None, int | None]:
        """(the transaction's id, the id a heartbeat names as the last); either may be None."""
        if not isinstance(frame, dict):
            return None, None
        if frame.get("type") == "HEARTBEAT":
            last = frame.get("lastTransactionID")
            return None, int(last) if isinstance(last, str) and last.isdigit() else None
        ident = frame.get("id")
        return (int(ident) if isinstance(ident, str) and ident.isdigit() else None), None

    def parse(self, frame: Any) -> list[Parsed]:
        """The order event or withdrawal in one transaction; others (heartbeats, rejects,
        financing ...) are ignored."""
        if not isinstance(frame, dict):
            return []
        kind = frame.get("type")
        if kind in _CREATES:
            units = _money(frame["units"], "units")
            return [self._report(frame, str(frame["id"]), units, "NEW", None)]
        if kind == "ORDER_FILL":
            units = _money(frame["units"], "units")
            return [self._report(frame, str(frame["orderID"]), units, "FILLED", frame)]
        if kind == "ORDER_CANCEL":
            return [self._report(frame, str(frame["orderID"]), Decimal(0), "CANCELED", None)]
        if kind == "TRANSFER_FUNDS":
            amount = _money(frame["amount"], "amount")
            if amount < 0:
                # OANDA names no currency: amounts are in the account's home currency
                asset = str(frame.get("currency") or "HOME")
                return [Withdrawal(asset, -amount, _ms(frame.get("time")))]
        return []

    def _report(
        self,
        frame: dict[str, Any],
        order_id: str,
        units: Decimal,
        status: str,
        fill: dict[str, Any] | None,
    ) -> ExecutionReport:
        extensions = frame.get("clientExtensions") or {}
        cid = extensions.get("id") or frame.get("clientOrderID") or ""
        quantity = abs(units)
        return ExecutionReport(
            symbol=str(frame.get("instrument") or ""),
            order_id=order_id,
            client_order_id=str(cid),
            side="BUY" if units >= 0 else "SELL",
            status=status,
            execution="TRADE" if fill is not None else status,
            quantity=quantity,
            cumulative=quantity if fill is not None else Decimal(0),
            last_quantity=quantity if fill is not None else Decimal(0),
            last_price=_money(fill["price"], "price") if fill is not None else Decimal(0),
            trade_id=str(frame["id"]) if fill is not None else None,
            commission=abs(_money(fill.get("commission") or "0", "commission"))
            if fill is not None
            else Decimal(0),
            commission_asset=None,
            at_ms=_ms(frame.get("time")),
        )
