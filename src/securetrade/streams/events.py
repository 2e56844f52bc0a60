"""What a stream yields: order updates, fills, market data, and the supervisor's markers.

Every event is immutable and carries money as :class:`~decimal.Decimal`. ``StreamGap`` and
``Resynced`` bracket a reconciliation: between them come the events the socket lost,
recovered over REST, each at most once. ``UnknownActivity`` is an order, fill or
withdrawal on the account that no process sharing the journal made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "BookUpdate",
    "FillEvent",
    "OrderUpdate",
    "Resynced",
    "StreamEvent",
    "StreamGap",
    "TickerUpdate",
    "UnknownActivity",
    "WithdrawalEvent",
]


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A venue order changed state (placed, partly filled, filled, cancelled, expired)."""

    venue: str
    symbol: str
    order_id: str
    client_order_id: str
    side: str
    status: str
    quantity: Decimal
    filled_quantity: Decimal
    at_ms: int
    ours: bool = True
    recovered: bool = False  # found by reconciliation over REST, not on the socket


@dataclass(frozen=True, slots=True)
class FillEvent:
    """One execution, identified by the venue's trade id; delivered once per trade id."""

    venue: str
    symbol: str
    order_id: str
    client_order_id: str
    trade_id: str
    side: str
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str | None
    at_ms: int
    ours: bool = True
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class WithdrawalEvent:
    """Funds left the account (Binance ``balanceUpdate`` with a negative delta)."""

    venue: str
    asset: str
    amount: Decimal
    at_ms: int


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """Best bid and ask of one symbol."""

    venue: str
    symbol: str
    bid: Decimal
    bid_quantity: Decimal
    ask: Decimal
    ask_quantity: Decimal
    at_ms: int


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """A snapshot of the top of one symbol's book (best first on each side)."""

    venue: str
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    sequence: int


@dataclass(frozen=True, slots=True)
class StreamGap:
    """The stream may have lost events: ``reason`` is ``reconnect``, ``stale``,
    ``overflow``, ``sequence`` or ``sweep`` (a reconciliation follows), or, on a book,
    ``checksum`` (a fresh snapshot follows)."""

    venue: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Resynced:
    """Reconciliation finished: ``recovered`` events were found over REST and emitted."""

    venue: str
    recovered: int


@dataclass(frozen=True, slots=True)
class UnknownActivity:
    """Activity on the account that neither this process nor any sharing its journal made:
    the first sign of a stolen key. ``kind`` is ``order``, ``fill``, ``withdrawal`` or
    ``key`` (the key's permissions changed at the venue)."""

    venue: str
    kind: str
    detail: str
    symbol: str | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    asset: str | None = None
    amount: Decimal | None = None
    at_ms: int = 0
    numbers: dict[str, str] = field(default_factory=dict)


StreamEvent = (
    OrderUpdate
    | FillEvent
    | WithdrawalEvent
    | TickerUpdate
    | BookUpdate
    | StreamGap
    | Resynced
    | UnknownActivity
)
