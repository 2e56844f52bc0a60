"""The simulator's Binance spot dialect: one request handler for every way it is served.

It checks what Binance checks, the way Binance documents it: the API key (-2014, -2015),
the signature over the exact query string plus body (-1022), the timestamp against
``recvWindow`` (-1021: older than the window, or more than 1 s ahead), duplicate client
order ids among open orders (-2010), filters (-1013), and its published rate limits (429
with Retry-After, then 418 for a client that keeps going).

Strict by default, as the venue is: a parameter the endpoint does not read (-1104), a
number outside Binance's grammar or a client order id outside its own (-1100), a
parameter the order type does not take (-1106), too many decimals (-1111), an unknown
time in force, order type or side (-1115, -1116, -1117) and an unknown symbol on any
endpoint (-1121) are refused; fills pay the published commission. ``strict=False`` lifts
the grammar and parameter checks, for a test that needs a lenient venue.

The dialect is split along its layers: ``binance_rules`` (what Binance publishes, and the
checks against it), ``binance_market`` (market data), ``binance_trading`` (orders and the
account) and ``binance_gateway`` (routing, signatures, request weight). This module is
where callers have always found its public names.
"""

from __future__ import annotations

from .binance_gateway import BinanceDialect
from .binance_rules import BINANCE_FEES as BINANCE_FEES  # where sim/__init__ finds it
from .binance_rules import SimLimits
from .dialect import SimKey, SimResponse

# SimKey and SimResponse live in .dialect; they are exported here too, where callers
# have always found them.
__all__ = ["BinanceDialect", "SimKey", "SimLimits", "SimResponse"]

# Pickles and reprs name the classes the layers hold where they have always been found.
BinanceDialect.__module__ = SimLimits.__module__ = __name__
