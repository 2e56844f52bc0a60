"""Typed requests and results. Money is :class:`~decimal.Decimal` from the caller to the wire.

A ``float`` given by a caller is read through its shortest ``repr`` (``0.1`` becomes
``Decimal("0.1")``, never ``0.1000000000000000055511151231257827``). NaN, infinities,
booleans and non-positive quantities are refused with :class:`~securetrade.errors.InvalidRequest`
before anything is encoded.

The models are split by what they describe: :mod:`~securetrade.models.common` (numbers,
enums, the base model), :mod:`~securetrade.models.orders`,
:mod:`~securetrade.models.market` and :mod:`~securetrade.models.account`. Import them
from here.
"""

from __future__ import annotations

from .account import AccountTrade, Balance, Transfer, TransferKind
from .common import (
    CRYPTO_TIME_IN_FORCE,
    AssetClass,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_decimal,
)
from .market import INTERVALS, BookLevel, Candle, Instrument, OrderBook, PublicTrade, Ticker
from .orders import (
    Fill,
    LimitOrder,
    MarketOrder,
    OcoOrder,
    Order,
    OrderRequest,
    StopLimitOrder,
    StopLossOrder,
    TakeProfitLimitOrder,
    TakeProfitOrder,
)
from .orders import as_json as as_json  # not in __all__; the core's journal writes use it
from .orders import as_replayed as as_replayed  # not in __all__; core.orders imports it here
from .orders import replacing as replacing  # not in __all__; core.manage imports it here

# In the order the reference page shows them: from the enums, through orders, to
# market data and the account.
__all__ = [
    "CRYPTO_TIME_IN_FORCE",
    "INTERVALS",
    "Side",
    "OrderType",
    "TimeInForce",
    "AssetClass",
    "OrderStatus",
    "OrderRequest",
    "LimitOrder",
    "MarketOrder",
    "StopLossOrder",
    "StopLimitOrder",
    "TakeProfitOrder",
    "OcoOrder",
    "TakeProfitLimitOrder",
    "Fill",
    "Order",
    "Balance",
    "Instrument",
    "Ticker",
    "BookLevel",
    "OrderBook",
    "Candle",
    "PublicTrade",
    "AccountTrade",
    "TransferKind",
    "Transfer",
    "to_decimal",
]

# Pickles and reprs name each model where it has always been imported from (the package
# itself, as before the split), not the submodule that holds it.
for _name in [*__all__, "replacing", "as_replayed", "as_json"]:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(f"{__name__}."):
        _obj.__module__ = __name__
del _name, _obj
