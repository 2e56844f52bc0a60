"""What Kraken publishes, and the checks made against it before the engine is asked.

Kraken's names for assets, pairs and order ids, its rate-limit tiers and fees, its error
shape, and the checks on a request's arguments: pairs, numbers, ids, times, the
``deadline``, the pair's rules and the decaying call counters. The lowest layer of the
Kraken dialect (``kraken``): market data, trading and the gateway build on it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from .dialect import Dialect, DialectStats, Refusal, SimKey
from .engine import FeeSchedule, SimInstrument

__all__ = [
    "KRAKEN_FEES",
    "KRAKEN_INTERMEDIATE",
    "KRAKEN_PRO",
    "KRAKEN_STARTER",
    "KrakenLimits",
    "kraken_secret",
]


# Engine asset -> (Kraken asset code, the short name used in pair altnames).
_ASSETS = {
    "BTC": ("XXBT", "XBT"),
    "ETH": ("XETH", "ETH"),
    "USD": ("ZUSD", "USD"),
    "EUR": ("ZEUR", "EUR"),
}
_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
}
_TXID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CLOSED_PAGE = 50  # ClosedOrders answers at most this many per request
_TRANSFER_PAGE = 25  # DepositStatus and WithdrawStatus, a cursor page
_AUTO_ID = "~auto-"  # engine client ids for orders placed without cl_ord_id
_UUID_HEX = frozenset("0123456789abcdefABCDEF")
_OHLC_MINUTES = frozenset({"1", "5", "15", "30", "60", "240", "1440", "10080", "21600"})
_OHLC_FRAMES = 720  # OHLC answers at most this many, the most recent
_WS_TOKEN_TTL = 900  # a WebSocket token must open a subscription within 15 minutes


def kraken_secret(raw: bytes) -> str:
    """A Kraken API secret as Kraken shows it: base64 text."""
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class KrakenLimits:
    """The decaying counters, per key: (maximum, decay per second) each."""

    api_max: int = 20
    api_decay: float = 1.0
    orders_max: int = 180
    orders_decay: float = 3.75


# The tiers of Kraken's "Spot REST API rate limits" page (docs.kraken.com/api/docs/guides/
# spot-rest-ratelimits): the call counter's maximum and decay per second, and the
# add/cancel counter's. The simulator counts Starter's by default, as a new account has.
KRAKEN_STARTER = KrakenLimits(api_max=15, api_decay=0.33, orders_max=60, orders_decay=1.0)
KRAKEN_INTERMEDIATE = KrakenLimits(api_max=20, api_decay=0.5, orders_max=125, orders_decay=2.34)
KRAKEN_PRO = KrakenLimits(api_max=20, api_decay=1.0, orders_max=180, orders_decay=3.75)
#: The fees AssetPairs advertises (``fees``, ``fees_maker``: 0.26% taker, 0.16% maker at the
#: lowest volume tier), in the currency the ``oflags`` defaults name.
KRAKEN_FEES = FeeSchedule(Decimal("0.0016"), Decimal("0.0026"), "kraken")
# Ledger and trade history calls add 2 to the call counter, every other call 1 (same page).
_HEAVY = frozenset({"TradesHistory", "QueryTrades", "Ledgers", "QueryLedgers"})
_OFLAGS = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})


@dataclass(slots=True)
class _Counter:
    level: float = 0.0
    stamp: float = 0.0

    def add(self, now: float, amount: float, decay: float) -> float:
        self.level = max(0.0, self.level - (now - self.stamp) * decay) + amount
        self.stamp = now
        return self.level


@dataclass(slots=True)
class _Stats(DialectStats):
    # The parameters of the last authenticated request per private method (``AddOrder``
    # -> ``{"nonce": ..., "cl_ord_id": ...}``): what a client actually asked for.
    last_params: dict[str, dict[str, str]] = field(default_factory=dict)


class _Error(Refusal):
    """Kraken's error: ``{"error": [text]}``, usually with status 200, counted by its text."""

    def __init__(self, text: str, status: int = 200) -> None:
        super().__init__(status, {"error": [text]}, text)


class _KrakenRules(Dialect[_Stats]):
    """The names and checks every Kraken endpoint shares; the dialect
    (``kraken_gateway``) sets the attributes declared here."""

    limits: KrakenLimits | None
    fees: FeeSchedule | None
    _api: dict[str, _Counter]
    _orders: dict[str, _Counter]
    _pairs: dict[str, SimInstrument]
    _alt_of: dict[str, str]

    @staticmethod
    def _altname(inst: SimInstrument) -> str:
        return _short(inst.base) + _short(inst.quote)

    def _pair(self, alt: str) -> SimInstrument:
        inst = self._pairs.get(alt)
        if inst is None:
            raise _Error("EQuery:Unknown asset pair")
        return inst

    def _count(self, counters: dict[str, _Counter], key: SimKey, cost: float, text: str) -> None:
        if self.limits is None:
            return
        if counters is self._api:
            ceiling, decay = self.limits.api_max, self.limits.api_decay
        else:
            ceiling, decay = self.limits.orders_max, self.limits.orders_decay
        with self._lock:
            counter = counters.setdefault(key.key_id, _Counter(stamp=self._clock()))
            if counter.add(self._clock(), cost, decay) > ceiling:
                counter.level -= cost  # refused calls are not counted against the next
                raise _Error(text)

    def _check_deadline(self, text: str) -> None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _Error("EGeneral:Invalid arguments:deadline") from None
        if moment.tzinfo is None:
            raise _Error("EGeneral:Invalid arguments:deadline")
        deadline_ms = int(moment.timestamp() * 1000)
        now = self.now_ms()
        if deadline_ms > now + 60_000:
            raise _Error("EGeneral:Invalid arguments:deadline")
        if now > deadline_ms:
            raise _Error("EService:Deadline elapsed")

    def _check_rules(
        self, inst: SimInstrument, alt: str, volume: Decimal, price: Decimal | None
    ) -> None:
        if volume % inst.step_size != 0:
            raise _Error("EGeneral:Invalid arguments:volume")
        if volume < inst.min_quantity:
            raise _Error("EOrder:Order minimum not met")
        if price is not None:
            if price % inst.tick_size != 0:
                decimals = _decimals(inst.tick_size)
                raise _Error(
                    f"EOrder:Invalid price:{alt} price can only be specified up to "
                    f"{decimals} decimals."
                )
            if volume * price < inst.min_notional:
                raise _Error("EOrder:Cost minimum not met")


_CONDITIONAL = {  # Kraken's conditional order types -> (what they become, loss or profit)
    "stop-loss": ("market", "loss"),
    "stop-loss-limit": ("limit", "loss"),
    "take-profit": ("market", "profit"),
    "take-profit-limit": ("limit", "profit"),
}
_REJECTIONS = {
    "would_trigger": "EOrder:Invalid price:trigger price would trigger immediately",
    "bad_symbol": "EQuery:Unknown asset pair",
    "duplicate": "EOrder:Duplicate order",
    "insufficient": "EOrder:Insufficient funds",
    "filter": "EGeneral:Invalid arguments",
}


def _seconds(params: Mapping[str, str], name: str) -> float | None:
    """``start`` or ``end``: a unix time in seconds (a txid there is not modelled)."""
    text = params.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise _Error(f"EGeneral:Invalid arguments:{name}") from None


def _between(at_ms: int, after: float | None, upto: float | None) -> bool:
    """After ``start`` (exclusive) and up to ``end`` (inclusive), as Kraken's ranges are."""
    seconds = at_ms / 1000
    return (after is None or seconds > after) and (upto is None or seconds <= upto)


def _engine_asset(code: str) -> str:
    """A Kraken asset code (``XXBT``, ``ZUSD``, ``USDT``) as the engine names it."""
    for asset, (long, short) in _ASSETS.items():
        if code in (long, short):
            return asset
    return code


def _code(asset: str) -> str:
    return _ASSETS.get(asset, (asset, asset))[0]


def _short(asset: str) -> str:
    return _ASSETS.get(asset, (asset, asset))[1]


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _price(value: Decimal, inst: SimInstrument) -> str:
    return f"{value:.{_decimals(inst.tick_size)}f}"


def _txid(number: int) -> str:
    """Kraken-shaped order id (``OABCDE-FGHIJ-KLMNOP``) that encodes the engine's number."""
    digits = []
    for _ in range(16):
        number, rest = divmod(number, 32)
        digits.append(_TXID_ALPHABET[rest])
    text = "".join(reversed(digits))
    return f"O{text[:5]}-{text[5:10]}-{text[10:]}"


def _order_number(txid: str) -> int | None:
    parts = txid.split("-")
    if len(parts) != 3 or [len(p) for p in parts] != [6, 5, 6] or not txid.startswith("O"):
        return None
    number = 0
    for char in "".join(parts)[1:]:
        index = _TXID_ALPHABET.find(char)
        if index < 0:
            return None
        number = number * 32 + index
    return number


def _trade_txid(number: int) -> str:
    """Kraken-shaped trade id (``TABCDE-FGHIJ-KLMNOP``) for the engine's trade number."""
    return "T" + _txid(number)[1:]


def _userref(params: Mapping[str, str]) -> int | None:
    """``userref``: a signed 32-bit integer (AddOrder's reference), or absent."""
    text = params.get("userref")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _Error("EGeneral:Invalid arguments:userref") from None
    if not -(2**31) <= value < 2**31:
        raise _Error("EGeneral:Invalid arguments:userref")
    return value


def _described(head: str, kind: str, limit: str | None, trigger: str | None) -> str:
    """An order's ``descr.order`` text as Kraken writes it: ``sell 0.01000000 XBTUSD @
    limit 60000.0``, or for a trigger order ``... @ stop loss 58000.0 -> limit 57500.0``."""
    if trigger is None:
        return f"{head} @ {kind}" + ("" if limit is None else f" {limit}")
    named = kind.removesuffix("-limit").replace("-", " ")
    return f"{head} @ {named} {trigger}" + ("" if limit is None else f" -> limit {limit}")


def _valid_cl_ord_id(text: str) -> bool:
    if len(text) == 36:
        groups = text.split("-")
        return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(
            set(g) <= _UUID_HEX for g in groups
        )
    if len(text) == 32:
        return set(text) <= _UUID_HEX
    return 1 <= len(text) <= 18 and text.isascii() and text.isprintable() and " " not in text


def _need(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return value


def _count(params: Mapping[str, str], name: str, *, default: int, most: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return int(text)


def _number(params: Mapping[str, str], name: str) -> Decimal:
    text = _need(params, name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Error(f"EGeneral:Invalid arguments:{name}") from None
    if not value.is_finite() or value <= 0:
        raise _Error(f"EGeneral:Invalid arguments:{name}")
    return value
