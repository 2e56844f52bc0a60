"""The simulator's Kraken spot dialect: the same engine, Kraken's wire format and checks.

It checks what Kraken checks, the way Kraken documents it: the ``API-Key`` header
(``EAPI:Invalid key``), ``API-Sign`` = base64(HMAC-SHA512(base64decode(secret), path +
SHA256(nonce + body))) over the exact body (``EAPI:Invalid signature``), a nonce larger
than the last one the key used (``EAPI:Invalid nonce``; a nonce window can be set per
dialect), ``AddOrder``'s ``deadline`` (``EService:Deadline elapsed``), the ``otp`` of
keys enrolled with 2FA (:meth:`KrakenDialect.enroll_otp`; ``EAPI:Invalid signature`` as
at Kraken), pair rules from ``AssetPairs``, balances, duplicate ``cl_ord_id`` among open
orders, and optionally the decaying API and add/cancel counters. Faults come from the
same schedule as Binance's and are applied by the same handler
(:class:`~securetrade.sim.dialect.Dialect`); a 5xx fault answers with a gateway's HTML
page, as Kraken's edge does.

As the venue does by default, the call counters run at the Starter tier (``KRAKEN_STARTER``;
``limits=None`` turns them off), fills pay the fees ``AssetPairs`` advertises, ``validate``
checks an order without placing it, a post-only order that would take is cancelled, and
``userref`` is kept. ``TradesHistory``, ``QueryTrades``, ``SystemStatus`` and the whole
``Ticker`` answer are served, and ``GetWebSocketsToken`` issues the tokens its WebSocket
API (:mod:`securetrade.sim.kraken_ws`) accepts.

Orders are found as Kraken documents it: ``QueryOrders`` by ``txid`` (``cl_ord_id`` narrows
the result; without a ``txid`` it is refused unless ``query_needs_txid`` is turned off),
``OpenOrders`` and ``ClosedOrders`` filtered by ``cl_ord_id``, ``CancelOrder`` by ``txid`` or
``cl_ord_id``. ``ClosedOrders`` pages like Kraken's: the 50 most recently
closed first, ``ofs`` to page on, ``count`` for all that match.

Engine symbols and assets are venue-neutral (``BTCUSDT``, ``BTC``); here they wear
Kraken's names (pair ``XBTUSDT``, asset ``XXBT``).

The dialect is split along its layers: ``kraken_rules`` (Kraken's names, limits and the
checks on arguments), ``kraken_market`` (public market data), ``kraken_trading`` (orders,
trades, balances, transfers) and ``kraken_gateway`` (routing, authentication, nonces, 2FA,
WebSocket tokens). This module is where callers have always found its names.
"""

from __future__ import annotations

from .kraken_gateway import KrakenDialect
from .kraken_rules import (
    KRAKEN_FEES,
    KRAKEN_INTERMEDIATE,
    KRAKEN_PRO,
    KRAKEN_STARTER,
    KrakenLimits,
    kraken_secret,
)

# Kraken's order and trade ids, which the WebSocket side and the tests read here too.
from .kraken_rules import _order_number as _order_number
from .kraken_rules import _trade_txid as _trade_txid
from .kraken_rules import _txid as _txid

__all__ = [
    "KRAKEN_FEES",
    "KRAKEN_INTERMEDIATE",
    "KRAKEN_PRO",
    "KRAKEN_STARTER",
    "KrakenDialect",
    "KrakenLimits",
    "kraken_secret",
]

# Pickles and reprs name the classes the layers hold where they have always been found.
KrakenDialect.__module__ = KrakenLimits.__module__ = kraken_secret.__module__ = __name__
