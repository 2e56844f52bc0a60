"""The account: balances, and its history of trades and transfers as the venue lists it.

Above :mod:`securetrade.models.common`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from .._checks import Choice
from .common import Money, Side, _Model

__all__ = ["AccountTrade", "Balance", "Transfer", "TransferKind"]


class Balance(_Model):
    """Holdings of one asset."""

    asset: str
    free: Money
    locked: Money = Decimal(0)

    @property
    def total(self) -> Decimal:
        """``free`` plus ``locked``: everything held in this asset."""
        return self.free + self.locked


# --- account history -----------------------------------------------------------------------


class AccountTrade(_Model):
    """One execution of this account's orders, as the venue's trade history lists it."""

    symbol: str
    trade_id: str
    order_id: str
    side: Side
    price: Money
    quantity: Money
    quote_quantity: Money | None = None
    commission: Money = Decimal(0)
    commission_asset: str | None = None
    maker: bool | None = None
    at: datetime


class TransferKind(str, Choice):
    """Which way a :class:`Transfer` moved funds: into the account or out of it."""

    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"


class Transfer(_Model):
    """One deposit into or withdrawal out of the account."""

    kind: TransferKind
    transfer_id: str
    asset: str
    amount: Money
    fee: Money = Decimal(0)
    status: str = Field(description="the venue's own status word or code, as text")
    at: datetime
    address: str | None = None
    network: str | None = None
    tx_id: str | None = Field(default=None, description="the chain's transaction id")
