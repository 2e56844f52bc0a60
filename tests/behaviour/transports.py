"""The transports the behavioural suite runs against: one :class:`Transport` per parameter.

To add one (``ccxt:binance``, a third-party adapter), append a ``Transport`` to
``TRANSPORTS``: name the venue, the simulator dialect that serves it, its symbols and
asset names, the paths its orders travel, and how to build a client on a running server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from securetrade import ApiKey, Client, Settings
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues.ccxt.venue import COST
from securetrade.venues.kraken.tables import API, ORDERS, PUBLIC

# Short deadlines and settle margins: a lost request is proven absent in about a second.
FAST = Settings(settle_ms=300, resolve_timeout=20.0)


def _pinned(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


def native_client(transport: Transport, sim: Simulator, server: HttpsServer, key: ApiKey,
                  **kwargs: Any) -> Client:  # fmt: skip
    """A native client over pinned TLS to the simulator."""
    options: dict[str, Any] = {
        "venue": transport.venue,
        "journal": ":memory:",
        "settings": FAST,
        "recv_window_ms": transport.recv_window_ms,
        **transport.client_options(),
        **_pinned(server),
    }
    options.update(kwargs)
    return Client(key, **options)


@dataclass(frozen=True)
class Transport:
    """How one transport is driven and observed in the suite."""

    name: str  # the pytest id
    venue: str  # what the client is given as ``venue=``
    dialect: str  # the simulator dialect behind it: "binance" or "kraken"
    btc: str  # the BTC/USDT pair as this venue names it
    eth: str  # the ETH/USDT pair
    quote_asset: str  # USDT as this venue names it
    place: tuple[str, str]  # (method, path) of placing an order, for fault injection
    lookup: tuple[str, str]  # (method, path) of reading one order
    freshness: str  # "timestamp" or "nonce": which stale-request test applies
    recv_window_ms: int
    client_options: Callable[[], dict[str, Any]] = field(default=dict)
    build: Callable[..., Client] = native_client
    relabel: str | None = None  # key.venue for adapters riding on another's dialect
    # Valid text, not a symbol of this venue (a unified BTC/USDT is one of every venue's).
    foreign_symbols: tuple[str, ...] = ("btc-usdt", "btc_usdt")
    unlisted: str = "DOGEUSDT"  # well formed for this venue, but not listed
    market_data: bool = True  # the adapter offers ticker, order book, candles and trades

    def key(self, sim: Simulator, **kwargs: Any) -> ApiKey:
        made = sim.create_key(venue=self.dialect, **kwargs)
        if self.relabel is None:
            return made
        return ApiKey(
            self.relabel,
            made.key_id,
            made.secret,
            scopes=made.scopes,
            kind=made.kind,
            environment=made.environment,
        )

    def client(self, sim: Simulator, server: HttpsServer, key: ApiKey, **kwargs: Any) -> Client:
        return self.build(self, sim, server, key, **kwargs)


def _kraken_options() -> dict[str, Any]:
    # The suite tests behaviour, not Kraken's counters (tests/test_kraken.py does): a
    # starter-tier key may make 15 private reads per 45 s, which would slow it to a crawl.
    roomy = [RateLimit(API, 1.0, 1000), RateLimit(ORDERS, 1.0, 1000), RateLimit(PUBLIC, 1.0, 1000)]
    return {"limiter": RateLimiter(roomy)}


def _kraken_by_the_book(transport: Transport, sim: Simulator, server: HttpsServer, key: ApiKey,
                        **kwargs: Any) -> Client:  # fmt: skip
    """A client on a simulator whose QueryOrders needs a txid, as Kraken's reference says:
    every lookup by client order id must go through OpenOrders and ClosedOrders."""
    sim.kraken.query_needs_txid = True
    return native_client(transport, sim, server, key, **kwargs)


def _ccxt_kraken_options() -> dict[str, Any]:
    # ccxt paces Kraken at one private read per 3 s (its cost 3 per 1000 ms unit): right
    # for a starter-tier key, a crawl for the suite. Thousandths of ccxt's unit, per second.
    return {"limiter": RateLimiter([RateLimit(COST, 1.0, 1_000_000)])}


BINANCE = Transport(
    name="binance",
    venue="binance",
    dialect="binance",
    btc="BTCUSDT",
    eth="ETHUSDT",
    quote_asset="USDT",
    place=("POST", "/api/v3/order"),
    lookup=("GET", "/api/v3/order"),
    freshness="timestamp",
    recv_window_ms=500,
)

KRAKEN = Transport(
    name="kraken",
    venue="kraken",
    dialect="kraken",
    btc="XBTUSDT",
    eth="ETHUSDT",
    quote_asset="USDT",
    place=("POST", "/0/private/AddOrder"),
    lookup=("POST", "/0/private/OpenOrders"),  # by cl_ord_id; then ClosedOrders
    freshness="nonce",
    recv_window_ms=2000,  # Kraken's shortest order deadline
    client_options=_kraken_options,
)

# The example adapter in examples/third_party_venue, found through its entry point; it
# speaks Binance's wire dialect under its own name (conftest.py installs it for the run).
ACME = Transport(
    name="acme (entry point)",
    venue="acme",
    dialect="binance",
    btc="BTCUSDT",
    eth="ETHUSDT",
    quote_asset="USDT",
    place=("POST", "/api/v3/order"),
    lookup=("GET", "/api/v3/order"),
    freshness="timestamp",
    recv_window_ms=500,
    relabel="acme",
    market_data=False,  # its endpoint table has no market data: a typed refusal, no I/O
)

# ccxt's Binance, over the simulator's Binance dialect: ccxt builds, signs and reads every
# request; ccxt's own HTTP stack (pinned) carries it. Unified symbols.
CCXT_BINANCE = Transport(
    name="ccxt:binance",
    venue="ccxt:binance",
    dialect="binance",
    btc="BTC/USDT",
    eth="ETH/USDT",
    quote_asset="USDT",
    place=("POST", "/api/v3/order"),
    lookup=("GET", "/api/v3/order"),
    freshness="timestamp",
    recv_window_ms=500,
    relabel="ccxt:binance",
    foreign_symbols=("btc-usdt", "BTCUSDT"),
    unlisted="DOGE/USDT",
)


# ccxt's Kraken, over the simulator's Kraken dialect: nonce-signed by ccxt with the core's
# nonces, orders found by cl_ord_id among open, then closed orders (Kraken's QueryOrders
# needs a txid). Unified symbols; ccxt's asset codes (BTC, not XXBT).
CCXT_KRAKEN = Transport(
    name="ccxt:kraken",
    venue="ccxt:kraken",
    dialect="kraken",
    btc="BTC/USDT",
    eth="ETH/USDT",
    quote_asset="USDT",
    place=("POST", "/0/private/AddOrder"),
    lookup=("POST", "/0/private/OpenOrders"),
    freshness="nonce",
    recv_window_ms=2000,  # Kraken's shortest order deadline
    client_options=_ccxt_kraken_options,
    build=_kraken_by_the_book,
    relabel="ccxt:kraken",
    foreign_symbols=("btc-usdt", "XBTUSDT"),
    unlisted="DOGE/USDT",
)

TRANSPORTS: list[Transport] = [BINANCE, KRAKEN, ACME, CCXT_BINANCE, CCXT_KRAKEN]
