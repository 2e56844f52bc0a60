"""An order's trades at Kraken: a chain of requests, and what each answer means.

Kraken has no call for "the trades of this order". ``QueryOrders`` with ``trades`` names
the order's trade ids; ``QueryTrades`` gives the trades for at most 20 ids a request. The
core runs one operation (``Op.TRADES``) as follow-up requests: each answer says which ids
to ask for next, and carries the trades read so far in ``~`` parameters, which are never
sent. The last answer holds every trade, keyed by its txid (the ``exec_id`` of the
WebSocket ``executions`` channel).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import AmbiguousOutcome, OrderNotFound
from ...models import Fill
from ..base import Outcome, Params, Verdict

__all__ = ["QUERY_ORDERS", "QUERY_TRADES", "parse_trades", "trades_request", "trades_step"]

QUERY_ORDERS = "/0/private/QueryOrders"
QUERY_TRADES = "/0/private/QueryTrades"
_IDS = "~trade_ids"  # the trade ids to ask for now
_LEFT = "~trades_left"  # those left for later requests
_READ = "~trades_read"  # the trades read so far (JSON)
_MOST = 20  # QueryTrades takes at most 20 txids


def trades_request(params: Params) -> tuple[str, Params]:
    """Where one step goes: QueryTrades for the ids the last answer named, else
    QueryOrders (with ``trades``). The ``~`` markers are not sent."""
    ids = dict(params).get(_IDS)
    if ids is None:
        return QUERY_ORDERS, [(n, v) for n, v in params if not n.startswith("~")]
    return QUERY_TRADES, [("txid", ids)]


def trades_step(venue: str, fields: Mapping[str, str], result: Any) -> Outcome:
    """The meaning of one answer of the chain: the next request, or every trade read."""
    if not isinstance(result, dict):
        unreadable = AmbiguousOutcome("an order's trades: not a map", venue=venue)
        return Outcome(Verdict.AMBIGUOUS, None, unreadable)
    read: dict[str, Any] = json.loads(fields.get(_READ, "{}"))
    if _IDS in fields:  # a QueryTrades answer: {trade txid: trade}
        read.update(result)
        pending = fields.get(_LEFT, "")
    else:  # a QueryOrders answer: {order txid: order with its "trades"}
        entry = next(iter(result.values()), None)
        if not isinstance(entry, dict):
            return Outcome(Verdict.REJECTED, None, OrderNotFound("no such order", venue=venue))
        pending = ",".join(str(t) for t in entry.get("trades") or ())
    ids = [i for i in pending.split(",") if i]
    if not ids:
        return Outcome(Verdict.OK, read)
    return Outcome(
        Verdict.OK,
        None,
        follow_up=[
            (_IDS, ",".join(ids[:_MOST])),
            (_LEFT, ",".join(ids[_MOST:])),
            (_READ, json.dumps(read)),
        ],
    )


def parse_trades(payload: Mapping[str, Any]) -> list[Fill]:
    """The trades read as fills, oldest first, identified by the trade txid; Kraken
    charges every fee in the quote currency."""
    rows = sorted(payload.items(), key=lambda item: float(item[1].get("time", 0)))
    return [
        Fill(
            price=entry["price"],
            quantity=entry["vol"],
            commission=entry.get("fee", "0"),
            trade_id=str(txid),
        )
        for txid, entry in rows
    ]
