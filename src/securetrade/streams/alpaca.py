"""Alpaca's ``trade_updates`` stream: the account's order events over a pinned WebSocket.

The protocol (Alpaca Trading API, "Websocket Streaming"): connect to
``wss://paper-api.alpaca.markets/stream`` (``api.`` for live), send
``{"action": "auth", "key": ..., "secret": ...}``, wait for
``{"stream": "authorization", "data": {"status": "authorized"}}``, then
``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` and its ``listening``
answer. Each ``trade_updates`` message carries an ``event`` (``new``, ``fill``,
``partial_fill``, ``canceled``, ``expired``, ``rejected``, ...), the whole ``order`` as
the REST API shows it, and for fills the execution's ``price`` and ``qty``. Frames may
come as binary; they hold JSON all the same.

Alpaca numbers nothing, and its REST API has no per-order list of executions. So a fill
is known by the point it brings the order to: ``<order id>@<filled quantity after it>``,
which the stream's event (the order's ``filled_qty``) and the account's FILL activities
(``order_id``, ``cum_qty``) both show. When the socket lost fills, reconciliation reads
the order, then the account's FILL activities since it was created (``my_trades``), and
delivers the executions not yet seen, each under its own identity.

The auth frame carries the secret itself (Alpaca checks it, nothing is signed): it is
logged only through :meth:`AlpacaStreams.redact`, which removes both the key id and the
secret, and the wire log shows frames by size only.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, ClassVar

from ..errors import AuthenticationRejected, InvalidRequest
from ..keys import ApiKey, Environment
from ..models import to_decimal
from ..signing import Signer
from ..transport.redaction import redact_text
from ..venues.alpaca.history import trade_id as fill_id
from ..venues.times import parse_time
from .dialects import ExecutionReport, Parsed, check_signing

__all__ = ["AlpacaStreams", "fill_id"]

# Alpaca's order statuses, in the names the ledger and OrderStatus use.
_STATUS = {
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
    "done_for_day": "EXPIRED",
    "replaced": "CANCELED",
}
_LISTEN = json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})


def _money(value: Any, name: str) -> Decimal:
    return to_decimal(str(value), field=name)


def _ms(stamp: Any) -> int:
    """An RFC 3339 time (nanoseconds allowed) as epoch milliseconds; 0 when absent."""
    return int(parse_time(str(stamp)).timestamp() * 1000) if stamp else 0


class AlpacaStreams:
    """Alpaca Trading API: ``trade_updates`` over ``/stream``; no market data here."""

    name = "alpaca"
    # One trade_updates connection per account: a storm of dials is answered 406 and a
    # half-dead connection is held ~90 s (research note 2.2), so never dial quickly.
    min_reconnect_delay = 1.0
    #: after a 406 ("connection limit exceeded") wait out the ~90 s a dead connection is held
    refusal_floor: ClassVar[dict[int, float]] = {406: 90.0}
    max_connection_age = 24 * 3600.0
    market_data = False  # watch_ticker / watch_book: not offered here
    fills_in_history = True  # missed fills are read back from the FILL activities

    _USER: ClassVar[dict[Environment, str]] = {
        Environment.PAPER: "wss://paper-api.alpaca.markets/stream",
        Environment.LIVE: "wss://api.alpaca.markets/stream",
    }

    def user_url(self, environment: Environment) -> str:
        """The trade stream of ``environment``; :class:`InvalidRequest` (pass ``stream_url=``)
        where Alpaca has none."""
        environment = Environment(environment)  # a member, or its value; else InvalidRequest
        try:
            return self._USER[environment]
        except KeyError:
            raise InvalidRequest(
                f"alpaca has no {environment.value} stream URL; pass stream_url="
            ) from None

    def market_url(self, environment: Environment, channel: str, symbol: str) -> str:
        """Alpaca's market data is a separate, subscription-priced service: not offered."""
        raise InvalidRequest(
            "alpaca streams orders and fills only (watch_orders, watch_fills); "
            "read quotes with client.ticker()"
        )

    def auth_frames(self, key: ApiKey, signer: Signer, now_ms: int) -> list[str | bytes]:
        """The auth frame (key id and secret, as bytes) and the ``listen`` frame."""
        check_signing(key, signer, now_ms)
        # the secret leaves the signer as text (as the REST headers take it), straight
        # into the frame; the log shows :meth:`redact`'s form of it
        return [json.dumps({"action": "auth", "key": key.key_id, "secret": signer.sign(b"")}),
                _LISTEN]  # fmt: skip

    def redact(self, frame: str | bytes) -> str:
        """A frame for the log: the auth frame's key id and secret are never shown."""
        if not isinstance(frame, (str, bytes)):
            raise InvalidRequest("frame must be the text or bytes of one WebSocket frame")
        try:
            decoded = json.loads(frame)
        except ValueError:
            return "<unreadable frame>"
        if isinstance(decoded, dict) and decoded.get("action") == "auth":
            return json.dumps({"action": "auth", "key": "***", "secret": "***"})
        return redact_text(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))

    def check_auth_answer(self, frame: Any) -> bool:
        """True once ``trade_updates`` is listened to; raises when authorization failed."""
        if not isinstance(frame, dict):
            return False
        stream, data = frame.get("stream"), frame.get("data") or {}
        if stream == "authorization" and data.get("status") != "authorized":
            raise AuthenticationRejected(
                "alpaca refused the stream's authorization; check the key id and secret are "
                "this environment's (paper and live keys differ)"
            )
        return stream == "listening" and "trade_updates" in (data.get("streams") or ())

    def probe(self) -> str | None:
        """``listen`` again: Alpaca answers it with ``listening``, proving the path flows."""
        return _LISTEN

    def parse(self, frame: Any) -> list[Parsed]:
        """The order event in a ``trade_updates`` frame; anything else is ignored."""
        if not isinstance(frame, dict) or frame.get("stream") != "trade_updates":
            return []
        data = frame["data"]
        order = data["order"]
        event = str(data["event"])
        order_id = str(order["id"])
        cumulative = _money(order.get("filled_qty") or "0", "filled_qty")
        filled = event in ("fill", "partial_fill")
        status = _STATUS.get(str(order["status"]), "NEW")
        return [
            ExecutionReport(
                symbol=str(order["symbol"]),
                order_id=order_id,
                client_order_id=str(order.get("client_order_id") or ""),
                side=str(order["side"]).upper(),
                status=status,
                execution="TRADE" if filled else event.upper(),
                quantity=_money(order.get("qty") or cumulative, "qty"),
                cumulative=cumulative,
                last_quantity=_money(data["qty"], "qty") if filled else Decimal(0),
                last_price=_money(data["price"], "price") if filled else Decimal(0),
                trade_id=fill_id(order_id, cumulative) if filled else None,
                commission=Decimal(0),  # Alpaca charges no commission on its stock orders
                commission_asset=None,
                at_ms=_ms(data.get("timestamp")),
            )
        ]
