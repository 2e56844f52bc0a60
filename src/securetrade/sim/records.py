"""The simulator's records: instruments, orders, fills, tape trades and transfers.

The lowest layer of the simulator: plain data the engine, its market data (``quotes``) and
its ledger all read, so none of them has to import another to name these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["FeeSchedule", "SimInstrument", "SimOrder", "SimTrade", "SimTransfer", "TapeTrade"]


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """What a venue charges per fill, as a fraction of it, and in which asset.

    ``asset`` is ``"received"`` (Binance without BNB: the buyer pays in the base asset it
    receives, the seller in the quote asset), ``"kraken"`` (the ``oflags`` defaults: a
    buy pays in the quote currency, a sell in the base currency when the account holds
    enough of it, else in quote), ``"base"`` or ``"quote"``.
    """

    maker: Decimal
    taker: Decimal
    asset: str = "received"


@dataclass(frozen=True, slots=True)
class SimInstrument:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    start_price: Decimal
    max_quantity: Decimal = Decimal("9000")
    max_price: Decimal = Decimal("1000000")


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT
    quantity: Decimal
    price: Decimal | None
    time_in_force: str | None
    status: str = "NEW"
    filled: Decimal = Decimal(0)
    quote_filled: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    fills: list[tuple[Decimal, Decimal, int]] = field(default_factory=list)  # price, qty, id
    fee_schedule: FeeSchedule | None = None
    #: trade id -> (commission, asset, taker?) of each fill
    fees: dict[int, tuple[Decimal, str, bool]] = field(default_factory=dict)
    userref: int | None = None
    reason: str | None = None  # why a closed order closed, where the venue says so
    display_type: str | None = None  # the venue's name when not MARKET or LIMIT
    fill_times: dict[int, int] = field(default_factory=dict)  # trade id -> when, ms
    # A conditional order: its trigger, and whether it fires as the price falls to it
    # ("below": a sell stop-loss, a buy take-profit) or rises to it ("above"); it rests
    # unseen (in no book, filling nothing) until then, and acts as ``type`` after.
    stop_price: Decimal | None = None
    trigger: str | None = None
    triggered: bool = False
    # An order list (OCO): its id, and the other leg, closed when this one executes,
    # triggers or is cancelled (see :meth:`Market.link`).
    list_id: int = -1
    linked: int | None = None
    # A MARKET order sized in the quote asset: the amount asked (its ``quantity`` is what
    # the engine worked out from it at the market price, on the instrument's step).
    quote_order_qty: Decimal | None = None

    @property
    def waiting(self) -> bool:
        """A conditional order whose trigger the price has not reached yet."""
        return self.stop_price is not None and not self.triggered

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class SimTrade:
    """One execution: part (or all) of ``order`` at ``price``."""

    order: SimOrder
    price: Decimal
    quantity: Decimal
    trade_id: int
    at_ms: int = 0


@dataclass(frozen=True, slots=True)
class TapeTrade:
    """One trade on the public tape: every account's executions, as the market saw them."""

    trade_id: int
    symbol: str
    price: Decimal
    quantity: Decimal
    at_ms: int
    taker_side: str  # BUY | SELL: the side that took liquidity


@dataclass(frozen=True, slots=True)
class SimTransfer:
    """One deposit (``kind="deposit"``) or withdrawal of an account."""

    transfer_id: int
    account: str
    kind: str
    asset: str
    amount: Decimal
    at_ms: int
    address: str
    network: str
    tx_id: str
    fee: Decimal = Decimal(0)
