"""What the ccxt venue must know about one exchange beyond what ccxt knows.

ccxt knows how to build, sign and read each request. It does not know what our layers
need: that each operation is one request, how a request proves it is fresh, which answers
are only acknowledgements, which client order ids the exchange accepts, how an order is
found by its client order id, and how long an order request stays executable. A profile
says so per exchange; exchanges without one get :data:`DEFAULT`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..._checks import LAST_SECOND, whole
from ...errors import InvalidRequest
from ..base import Freshness, Op

__all__ = ["DEFAULT", "PROFILES", "Profile", "kraken_deadline"]

_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Profile:
    """One exchange's needs, as data.

    * ``order_acks``: operations answered by an acknowledgement rather than the order; the
      core reads those orders back by client order id.
    * ``id_marker``: ``None`` keeps the core's ids (``st`` + 30 hex); two hex digits give
      32 hex digits starting with them, for exchanges whose grammar is hex (Kraken's
      ``cl_ord_id``: a short UUID).
    * ``lookup_in_lists``: the exchange cannot fetch one order by client order id; it is
      looked up among open orders, then closed orders, both filtered by that id.
    * ``deadline``: ``(timestamp_ms, recv_window_ms) -> (parameter, value)``, an order
      parameter after which the matching engine refuses the order. Nonce venues need it:
      a nonce never expires, so without it a delayed order could execute at any time.
    * ``conditional``: trigger orders (stop-loss, take-profit) live in the exchange's
      ordinary order book, where the journal's lookup by client order id finds them; the
      types ccxt maps for the exchange are then offered (see :mod:`.offers`).
    * ``otp``: the signed-body field of a 2FA key's one-time password (Kraken's ``otp``);
      ``None``: the exchange takes none, and a key that carries one is refused.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    freshness: Freshness = Freshness.TIMESTAMP
    order_acks: frozenset[Op] = frozenset({Op.PLACE_ORDER, Op.CANCEL_ORDER})
    recv_window_option: str | None = None
    id_marker: str | None = None
    lookup_in_lists: bool = False
    deadline: Callable[[int, int], tuple[str, str]] | None = None
    # How account history pages at this exchange (venues/ccxt/history.py): "binance",
    # "kraken", or None (not offered through ccxt: refused before any I/O).
    paging: str | None = None
    conditional: bool = False
    otp: str | None = None

    def owns_hex_id(self, client_order_id: str) -> bool:
        """True for a 32-hex id with this profile's marker (``id_marker`` is set)."""
        if not isinstance(client_order_id, str):  # no id of ours (a TypeError from re before)
            return False
        marker = self.id_marker or ""
        return _HEX32.fullmatch(client_order_id) is not None and str.startswith(
            client_order_id, marker
        )


def kraken_deadline(timestamp_ms: int, recv_window_ms: int) -> tuple[str, str]:
    """AddOrder's ``deadline``: venue time plus the window, RFC 3339, whole seconds rounded
    down (never later than the core assumes). Kraken accepts 2 to 60 seconds ahead."""
    whole("timestamp_ms", timestamp_ms, 0, LAST_SECOND * 1000)
    if type(recv_window_ms) is not int or not 2000 <= recv_window_ms <= 60_000:
        raise InvalidRequest("Kraken accepts order deadlines 2 to 60 s ahead: recv_window_ms")
    moment = datetime.fromtimestamp((timestamp_ms + recv_window_ms) // 1000, tz=timezone.utc)
    return "deadline", moment.strftime("%Y-%m-%dT%H:%M:%SZ")


PROFILES: dict[str, Profile] = {
    "binance": Profile(
        options={
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            # The public tape as trades (GET /api/v3/trades), as every venue reports it,
            # rather than ccxt's default of aggregated trades.
            "fetchTradesMethod": "publicGetTrades",
        },
        order_acks=frozenset(),  # newOrderRespType=FULL: the answer is the order
        recv_window_option="recvWindow",
        paging="binance",
        conditional=True,  # STOP_LOSS... are orders like any other: order?origClientOrderId
    ),
    # QueryOrders needs a txid (Kraken's API reference); OpenOrders and ClosedOrders take
    # cl_ord_id as a filter. ccxt's fetch_order would send the id as ``userref``.
    "kraken": Profile(
        freshness=Freshness.NONCE,
        id_marker="5e",  # the marker of the native Kraken venue's ids
        lookup_in_lists=True,
        deadline=kraken_deadline,
        paging="kraken",
        conditional=True,  # stop-loss... rest in OpenOrders, found there by cl_ord_id
        otp="otp",  # in the POST data of every private call, signed with it
    ),
}
DEFAULT = Profile(options={"defaultType": "spot"})
