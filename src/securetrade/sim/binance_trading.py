"""The simulator's Binance trading endpoints: orders (new, test, cancel, cancel-replace,
queries), trades, the account, and the deposit and withdrawal histories, with the order
count Binance limits per account.

Above ``binance_rules``; the dialect (``binance_gateway``) routes the signed requests here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .binance_rules import (
    _CLIENT_ID,
    _CLIENT_ID_TEXT,
    _CONDITIONAL,
    _NINETY_DAYS_MS,
    _ORDER_TYPES,
    _UNMODELLED_TYPES,
    _BinanceRules,
    _Counter,
    _day_range,
    _illegal,
    _limit,
    _lookup,
    _not_required,
    _order_id,
    _time,
)
from .binance_wire import _ApiError, _order_json, _required, _text
from .dialect import SimKey
from .engine import Market, SimOrder, SimTrade
from .ledger import transfers_of

__all__: list[str] = []


class _BinanceTrading(_BinanceRules):
    """The signed account and order endpoints; the order counters (per account, per
    window and per day) are set by the dialect."""

    _orders: dict[str, _Counter]
    _orders_day: dict[str, _Counter]

    def _account(self, key: SimKey) -> dict[str, Any]:
        account = self.market.accounts[key.account]
        with self.market.lock:
            balances = [
                {"asset": a, "free": _text(v[0]), "locked": _text(v[1])}
                for a, v in sorted(account.balances.items())
            ]
        maker = self.fees.maker if self.fees else Decimal(0)
        taker = self.fees.taker if self.fees else Decimal(0)
        return {
            "makerCommission": int(maker * 10000),
            "takerCommission": int(taker * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": f"{maker:.8f}",
                "taker": f"{taker:.8f}",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": key.can_trade,
            "canWithdraw": key.can_withdraw,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": int(hashlib.sha256(key.account.encode()).hexdigest()[:8], 16),
        }

    def _count_order(self, key: SimKey) -> None:
        now = self._clock()
        limits = self.limits
        with self._lock:
            counter = self._orders.setdefault(key.account, _Counter(limits.orders_seconds))
            daily = self._orders_day.setdefault(key.account, _Counter(86400))
            if counter.add(now, 1) > limits.orders or daily.add(now, 1) > limits.orders_day:
                self.stats.status_429 += 1
                raise _ApiError(
                    429,
                    -1015,
                    "Too many new orders.",
                    {"retry-after": str(limits.orders_seconds)},
                )

    def _new_order(
        self, key: SimKey, params: dict[str, str], *, test: bool = False
    ) -> dict[str, Any]:
        """``POST /api/v3/order`` (or ``/order/test``: every check, nothing placed), with
        the checks and codes of Binance's "New order" page and errors page."""
        if not key.can_trade:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        symbol = self._symbol(_required(params, "symbol"))
        side = _required(params, "side")
        order_type = _required(params, "type")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1117, "Invalid side.")
        if order_type in _UNMODELLED_TYPES:
            raise _ApiError(400, -2010, "Order type not supported for this symbol.")
        if order_type not in _ORDER_TYPES:
            raise _ApiError(400, -1116, "Invalid orderType.")
        becomes, stop_kind = _CONDITIONAL.get(order_type, (order_type, None))
        limit = becomes != "MARKET"
        tif = params.get("timeInForce")
        stop_price = self._decimal(params, "stopPrice") if stop_kind is not None else None
        if stop_kind is None and "stopPrice" in params and self.strict:
            _not_required("stopPrice")
        if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            tif = _required(params, "timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise _ApiError(400, -1115, "Invalid timeInForce.")
        elif tif is not None:
            if self.strict:
                _not_required("timeInForce")
            tif = None
        if not limit and "price" in params and self.strict:
            _not_required("price")
        price = self._decimal(params, "price") if limit else None
        quote_qty = None
        if order_type == "MARKET" and "quoteOrderQty" in params:
            if "quantity" in params and self.strict:
                _not_required("quoteOrderQty")
            quote_qty = self._decimal(params, "quoteOrderQty")
        elif "quoteOrderQty" in params and self.strict:
            _not_required("quoteOrderQty")
        if quote_qty is not None and "quantity" not in params:
            quantity = Decimal(0)  # the engine works it out at the price it fills at
        else:
            quote_qty = None
            quantity = self._decimal(params, "quantity")
        client_id = params.get("newClientOrderId")
        if client_id is not None and self.strict and not _CLIENT_ID.fullmatch(client_id):
            raise _illegal("newClientOrderId", _CLIENT_ID_TEXT)
        client_id = client_id or f"sim{time.time_ns()}"
        response_type = params.get(
            "newOrderRespType", "FULL" if order_type != "LIMIT_MAKER" else "ACK"
        )
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise _illegal("newOrderRespType", "ACK, RESULT, FULL")
        if not test:
            self._count_order(key)
        order = self._guard(
            lambda: self.market.place(
                key.account,
                symbol=symbol,
                side=side,
                type="MARKET" if becomes == "MARKET" else "LIMIT",
                quantity=quantity,
                price=price,
                time_in_force=tif,
                client_order_id=client_id,
                fees=self.fees,
                post_only="reject" if order_type == "LIMIT_MAKER" else None,
                validate_only=test,
                stop_price=stop_price,
                stop_kind=stop_kind,
                quote_quantity=quote_qty,
            )
        )
        if test:
            if params.get("computeCommissionRates") == "true":
                return self._commission_rates()
            return {}
        if order_type != becomes or order_type == "LIMIT_MAKER":
            order.display_type = order_type
        if response_type == "ACK":
            return {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderListId": -1,
                "clientOrderId": order.client_order_id,
                "transactTime": order.created_ms,
            }
        result = _order_json(order)
        result["transactTime"] = order.created_ms
        if response_type == "FULL":
            result["fills"] = [
                {
                    "price": _text(p),
                    "qty": _text(q),
                    "commission": _text(order.fees[t][0]) if t in order.fees else "0",
                    "commissionAsset": order.fees[t][1] if t in order.fees else "BNB",
                    "tradeId": t,
                }
                for p, q, t in order.fills
            ]
        return result

    def _cancel_replace(self, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
        """``POST /api/v3/order/cancelReplace``: cancel one order and place another, under
        one lock, so nothing sees both or neither live. ``STOP_ON_FAILURE``: a failed cancel
        places nothing (-2022); a new order refused after the cancel is -2021."""
        if not key.can_trade:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        mode = _required(params, "cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise _illegal("cancelReplaceMode", "STOP_ON_FAILURE, ALLOW_FAILURE")
        lookup = {
            "orderId": params.get("cancelOrderId"),
            "origClientOrderId": params.get("cancelOrigClientOrderId"),
        }
        cancel = {k: v for k, v in lookup.items() if v is not None}
        new = {
            k: v
            for k, v in params.items()
            if not k.startswith("cancel") and k != "orderRateLimitExceededMode"
        }
        with self.market.lock:
            try:
                cancelled = self._cancel(key, {"symbol": params.get("symbol", ""), **cancel})
            except _ApiError as failed:
                if mode == "STOP_ON_FAILURE":
                    raise _ApiError(400, -2022, "Order cancel-replace failed.") from failed
                raise
            try:
                placed = self._new_order(key, new)
            except _ApiError as failed:
                raise _ApiError(400, -2021, "Order cancel-replace partially failed.") from failed
        return {
            "cancelResult": "SUCCESS",
            "newOrderResult": "SUCCESS",
            "cancelResponse": cancelled,
            "newOrderResponse": placed,
        }

    def _commission_rates(self) -> dict[str, Any]:
        maker = self.fees.maker if self.fees else Decimal(0)
        taker = self.fees.taker if self.fees else Decimal(0)
        return {
            "standardCommissionForOrder": {"maker": f"{maker:.8f}", "taker": f"{taker:.8f}"},
            "taxCommissionForOrder": {"maker": "0.00000000", "taker": "0.00000000"},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0.00000000",
            },
        }

    def _find(self, key: SimKey, params: dict[str, str]) -> SimOrder:
        symbol = self._symbol(_required(params, "symbol"))
        return self._guard(lambda: self.market.find(key.account, symbol, **_lookup(params)))

    def _cancel(self, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
        """``DELETE /api/v3/order``: the order's id in ``origClientOrderId``, and the cancel's
        own id (``newClientOrderId`` or a generated one) in ``clientOrderId``."""
        symbol = self._symbol(_required(params, "symbol"))
        cancel_id = params.get("newClientOrderId")
        if cancel_id is not None and self.strict and not _CLIENT_ID.fullmatch(cancel_id):
            raise _illegal("newClientOrderId", _CLIENT_ID_TEXT)
        order = self._guard(lambda: self.market.cancel(key.account, symbol, **_lookup(params)))
        result = _order_json(order)
        result["origClientOrderId"] = order.client_order_id
        result["clientOrderId"] = cancel_id or f"cancel{time.time_ns()}"
        result["transactTime"] = order.updated_ms
        for name in ("time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty"):
            result.pop(name, None)  # the cancel answer does not carry these
        return result

    def _all_orders(self, key: SimKey, params: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/allOrders``: orders of one symbol from ``orderId`` on, oldest first,
        at most ``limit`` (500 by default, 1000 at most)."""
        symbol = self._symbol(_required(params, "symbol"))
        start = params.get("orderId")
        if start is not None:
            _order_id(start)
        limit = _limit(params, default=500, most=1000)
        begin, end = _day_range(params)
        with self.market.lock:
            orders = sorted(
                (
                    o
                    for o in self.market.orders.values()
                    if o.account == key.account
                    and o.symbol == symbol
                    and (start is None or o.order_id >= int(start))
                    and (begin is None or o.created_ms >= begin)
                    and (end is None or o.created_ms <= end)
                ),
                key=lambda o: o.order_id,
            )
        if start is None and begin is None:  # neither: the most recent
            return [_order_json(o) for o in orders[-limit:]]
        return [_order_json(o) for o in orders[:limit]]

    def _my_trades(self, key: SimKey, params: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/myTrades``: an order's trades; else from ``fromId`` on, or within
        ``startTime``..``endTime`` (24 hours at most; not with ``fromId``: -1128), oldest
        first, at most ``limit`` (500 by default, 1000 at most); with neither, the most
        recent ``limit``."""
        symbol = self._symbol(_required(params, "symbol"))
        order_id = params.get("orderId")
        if order_id is not None:
            _order_id(order_id)
        from_id = params.get("fromId")
        if from_id is not None:
            _order_id(from_id)
            if "startTime" in params or "endTime" in params:
                raise _ApiError(400, -1128, "Combination of optional parameters invalid.")
        limit = _limit(params, default=500, most=1000)
        begin, end = _day_range(params)
        trades = [
            t
            for t in self.market.trades(
                key.account, symbol, None if order_id is None else int(order_id)
            )
            if (from_id is None or t.trade_id >= int(from_id))
            and (begin is None or t.at_ms >= begin)
            and (end is None or t.at_ms <= end)
        ]
        if order_id is None and from_id is None and begin is None:
            trades = trades[-limit:]  # neither: the most recent
        return [_trade_json(t) for t in trades[:limit]]


def _trade_json(trade: SimTrade) -> dict[str, Any]:
    order = trade.order
    fee = order.fees.get(trade.trade_id)
    return {
        "symbol": order.symbol,
        "id": trade.trade_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "price": _text(trade.price),
        "qty": _text(trade.quantity),
        "quoteQty": _text(trade.price * trade.quantity),
        "commission": _text(fee[0]) if fee else "0",
        "commissionAsset": fee[1] if fee else "BNB",
        "time": trade.at_ms or order.updated_ms,
        "isBuyer": order.side == "BUY",
        "isMaker": not fee[2] if fee else order.type == "LIMIT",
        "isBestMatch": True,
    }


def _transfer_range(market: Market, params: Mapping[str, str]) -> tuple[int, int]:
    """The deposit and withdrawal histories' range: the last 90 days unless told, and
    never more than 90 days (-1127)."""
    now = market._now_ms()
    begin, end = _time(params, "startTime"), _time(params, "endTime")
    end = end if end is not None else (now if begin is None else begin + _NINETY_DAYS_MS)
    begin = begin if begin is not None else end - _NINETY_DAYS_MS
    if end - begin > _NINETY_DAYS_MS or end < begin:
        raise _ApiError(400, -1127, "Time interval must be within 0-90 days.")
    return begin, end


def _paged_transfers(
    market: Market, key: SimKey, params: Mapping[str, str], kind: str
) -> list[Any]:
    begin, end = _transfer_range(market, params)
    offset_text = params.get("offset", "0")
    if not offset_text.isdigit():
        raise _illegal("offset", "^[0-9]{1,9}$")
    limit = _limit(params, default=1000, most=1000)
    coin = params.get("coin")
    rows = [
        t
        for t in transfers_of(market, key.account, kind)
        if begin <= t.at_ms <= end and (coin is None or t.asset == coin)
    ]
    offset = int(offset_text)
    return rows[offset : offset + limit]


def _deposits(market: Market, key: SimKey, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """``GET /sapi/v1/capital/deposit/hisrec``, newest first."""
    return [
        {
            "id": str(t.transfer_id),
            "amount": _text(t.amount),
            "coin": t.asset,
            "network": t.network,
            "status": 1,
            "address": t.address,
            "addressTag": "",
            "txId": t.tx_id,
            "insertTime": t.at_ms,
            "transferType": 0,
            "confirmTimes": "12/12",
            "unlockConfirm": 0,
            "walletType": 0,
        }
        for t in _paged_transfers(market, key, params, "deposit")
    ]


def _withdrawals(market: Market, key: SimKey, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """``GET /sapi/v1/capital/withdraw/history``, newest first; ``applyTime`` is UTC text."""
    return [
        {
            "id": f"{t.transfer_id:032x}",
            "amount": _text(t.amount),
            "transactionFee": _text(t.fee),
            "coin": t.asset,
            "status": 6,
            "address": t.address,
            "txId": t.tx_id,
            "applyTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.at_ms // 1000)),
            "network": t.network,
            "transferType": 0,
            "confirmNo": 12,
            "walletType": 0,
        }
        for t in _paged_transfers(market, key, params, "withdrawal")
    ]
