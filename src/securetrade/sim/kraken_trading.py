"""The simulator's Kraken private trading calls: AddOrder, CancelOrder, the order and
trade queries, balances, and the deposit and withdrawal histories.

Above ``kraken_rules``; the dialect (``kraken_gateway``) routes authenticated
``/0/private/`` calls here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .dialect import SimKey
from .engine import FeeSchedule, SimOrder, SimRejection
from .kraken_rules import (
    _AUTO_ID,
    _CLOSED_PAGE,
    _CONDITIONAL,
    _OFLAGS,
    _REJECTIONS,
    _STATUS,
    _TRANSFER_PAGE,
    _between,
    _code,
    _described,
    _engine_asset,
    _Error,
    _KrakenRules,
    _need,
    _number,
    _order_number,
    _price,
    _seconds,
    _trade_txid,
    _txid,
    _userref,
    _valid_cl_ord_id,
)
from .ledger import SimTransfer, transfers_of

__all__: list[str] = []


class _KrakenTrading(_KrakenRules):
    """The private order, trade and account calls; the dialect sets the attributes
    declared here."""

    _auto: itertools.count[int]
    _oflags: dict[int, str]  # order number -> the oflags it was placed with

    def _add_order(self, key: SimKey, params: Mapping[str, str]) -> Any:
        if not key.can_trade:
            raise _Error("EGeneral:Permission denied")
        alt = _need(params, "pair")
        inst = self._pair(alt)
        side = _need(params, "type")
        kind = _need(params, "ordertype")
        if side not in ("buy", "sell"):
            raise _Error("EGeneral:Invalid arguments:type")
        if kind not in ("limit", "market", *_CONDITIONAL):
            raise _Error("EGeneral:Invalid arguments:ordertype")
        volume = _number(params, "volume")
        becomes, stop_kind = _CONDITIONAL.get(kind, (kind, None))
        stop_price = None
        if stop_kind is not None:  # price is the trigger; price2 the limit, if any
            stop_price = _number(params, "price")
            price = _number(params, "price2") if becomes == "limit" else None
        else:
            price = _number(params, "price") if kind == "limit" else None
        tif = params.get("timeinforce", "GTC")
        if tif not in ("GTC", "IOC", "GTD"):
            raise _Error("EGeneral:Invalid arguments:timeinforce")
        cl_ord_id = params.get("cl_ord_id")
        if cl_ord_id is not None and not _valid_cl_ord_id(cl_ord_id):
            raise _Error("EGeneral:Invalid arguments:cl_ord_id")
        userref = _userref(params)
        if userref is not None and cl_ord_id is not None:
            raise _Error("EGeneral:Invalid arguments:cl_ord_id and userref")
        flags = {f for f in params.get("oflags", "").split(",") if f}
        if not flags <= _OFLAGS or {"fcib", "fciq"} <= flags:
            raise _Error("EGeneral:Invalid arguments:oflags")
        if "post" in flags and kind != "limit":  # (Kraken: limit orders only)
            raise _Error("EGeneral:Invalid arguments:oflags")
        # viqc: the volume is in the quote currency; Kraken takes it on market buys alone
        # (a sell answers "Invalid arguments:viqc", as ccxt found).
        quote = volume if "viqc" in flags else None
        if quote is not None and (kind != "market" or side != "buy"):
            raise _Error("EGeneral:Invalid arguments:viqc")
        if "deadline" in params:
            self._check_deadline(params["deadline"])
        if quote is None:
            self._check_rules(inst, alt, volume, price)
        elif quote < inst.min_notional:
            raise _Error("EOrder:Cost minimum not met")
        validate = params.get("validate") in ("true", "1")
        if not validate:
            self._count(self._orders, key, 1.0, "EOrder:Rate limit exceeded")
        client_id = cl_ord_id or f"{_AUTO_ID}{next(self._auto)}"
        fees = self.fees
        if fees is not None and flags & {"fcib", "fciq"}:
            fees = FeeSchedule(fees.maker, fees.taker, "base" if "fcib" in flags else "quote")
        try:
            order = self.market.place(
                key.account,
                symbol=inst.symbol,
                side=side.upper(),
                type=becomes.upper(),
                quantity=volume,
                price=price,
                time_in_force=None if becomes == "market" else ("IOC" if tif == "IOC" else "GTC"),
                client_order_id=client_id,
                fees=fees,
                post_only="cancel" if "post" in flags else None,
                userref=userref,
                validate_only=validate,
                stop_price=stop_price,
                stop_kind=stop_kind,
                quote_quantity=quote,
            )
        except SimRejection as rej:
            raise _Error(_REJECTIONS.get(rej.reason, "EGeneral:Invalid arguments")) from None
        text = _described(
            f"{side} {volume:.8f} {alt}",
            kind,
            None if price is None else _price(price, inst),
            None if stop_price is None else _price(stop_price, inst),
        )
        if validate:  # AddOrder's validate: checked, not placed, no txid
            return {"descr": {"order": text}}
        if stop_kind is not None:
            order.display_type = kind
        self._oflags[order.order_id] = ",".join(sorted(flags)) or (
            "fciq" if side == "buy" else "fcib"
        )
        return {"descr": {"order": text}, "txid": [_txid(order.order_id)]}

    def _find(self, key: SimKey, params: Mapping[str, str]) -> list[SimOrder]:
        txids = [t.strip() for t in params.get("txid", "").split(",") if t.strip()]
        cl_ord_id = params.get("cl_ord_id")
        if not txids and cl_ord_id is None:
            raise _Error("EGeneral:Invalid arguments:txid")
        found: list[SimOrder] = []
        for txid in txids:
            number = _order_number(txid)
            if number is None:
                raise _Error("EOrder:Invalid order")
            try:
                found.append(
                    self.market.find(key.account, None, order_id=number, client_order_id=None)
                )
            except SimRejection:
                raise _Error("EOrder:Invalid order") from None
        if cl_ord_id is not None:
            try:
                order = self.market.find(
                    key.account, None, order_id=None, client_order_id=cl_ord_id
                )
            except SimRejection:
                return [o for o in found if o.client_order_id == cl_ord_id]
            found = [o for o in found if o.order_id == order.order_id] if txids else [order]
        return found

    def _query(self, key: SimKey, params: Mapping[str, str]) -> Any:
        trades = params.get("trades") in ("true", "1")
        userref = _userref(params)
        return {
            _txid(o.order_id): self._order_json(o, trades=trades)
            for o in self._find(key, params)
            if userref is None or o.userref == userref
        }

    def _query_trades(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """``QueryTrades``: up to 20 of the account's trades by txid, comma separated."""
        wanted = [t for t in _need(params, "txid").split(",") if t]
        if len(wanted) > 20:
            raise _Error("EGeneral:Invalid arguments:txid")
        numbers = {_order_number("O" + t[1:]) for t in wanted if t.startswith("T")}
        with self.market.lock:
            rows = [
                (o, p, q, t)
                for o in self.market.orders.values()
                if o.account == key.account
                for p, q, t in o.fills
                if t in numbers
            ]
        return {_trade_txid(t): self._trade_json(o, p, q, t) for o, p, q, t in rows}

    def _trades_history(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """``TradesHistory``: the account's trades after ``start`` (exclusive) up to ``end``
        (inclusive), in seconds, newest first, 50 a page from ``ofs``."""
        offset_text = params.get("ofs", "0")
        if not offset_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:ofs")
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        with self.market.lock:
            orders = [o for o in self.market.orders.values() if o.account == key.account]
            rows = [
                (o, p, q, t)
                for o in orders
                for p, q, t in o.fills
                if _between(o.fill_times.get(t, o.updated_ms), after, upto)
            ]
        rows.sort(key=lambda row: (row[0].fill_times.get(row[3], 0), row[3]), reverse=True)
        offset = int(offset_text)
        page = rows[offset : offset + _CLOSED_PAGE]
        return {
            "trades": {_trade_txid(t): self._trade_json(o, p, q, t) for o, p, q, t in page},
            "count": len(rows),
        }

    def _trade_json(self, order: SimOrder, price: Decimal, volume: Decimal, trade: int) -> Any:
        inst = self.market.instruments[order.symbol]
        fee, taker = self._fee_in_quote(order, trade, price)
        return {
            "ordertxid": _txid(order.order_id),
            "postxid": _trade_txid(trade).replace("T", "P", 1),
            "pair": self._alt_of[order.symbol],
            "time": order.fill_times.get(trade, order.updated_ms) / 1000,
            "type": order.side.lower(),
            "ordertype": order.type.lower(),
            "price": _price(price, inst),
            "cost": _price(price * volume, inst),
            "fee": _price(fee, inst),
            "vol": f"{volume:.8f}",
            "margin": "0.00000",
            "leverage": "0",
            "misc": "",
            "trade_id": trade,
            "maker": not taker,
        }

    def _fee_in_quote(self, order: SimOrder, trade: int, price: Decimal) -> tuple[Decimal, bool]:
        """A fill's fee in the quote currency (how Kraken reports every fee), and whether
        the fill took liquidity."""
        entry = order.fees.get(trade)
        if entry is None:
            return Decimal(0), order.type == "MARKET"
        amount, asset, taker = entry
        in_base = asset == self.market.instruments[order.symbol].base
        return (amount * price if in_base else amount), taker

    def _transfers(self, key: SimKey, params: Mapping[str, str], deposits: bool) -> Any:
        """``DepositStatus`` / ``WithdrawStatus``: newest first; without ``cursor`` the
        most recent as a plain list, with it ``_TRANSFER_PAGE`` a page and the
        ``next_cursor`` (an offset, as text) of the next, ``None`` after the last."""
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        asset = params.get("asset")
        rows = [
            t
            for t in transfers_of(self.market, key.account, "deposit" if deposits else "withdrawal")
            if _between(t.at_ms, after, upto) and (asset is None or _engine_asset(asset) == t.asset)
        ]
        cursor = params.get("cursor")
        if cursor is None or cursor == "false":
            return [self._transfer_json(t, deposits) for t in rows[:_TRANSFER_PAGE]]
        offset = 0 if cursor == "true" else int(cursor) if cursor.isdigit() else -1
        if offset < 0:
            raise _Error("EGeneral:Invalid arguments:cursor")
        page = rows[offset : offset + _TRANSFER_PAGE]
        following = offset + len(page)
        return {
            "deposit" if deposits else "withdrawals": [
                self._transfer_json(t, deposits) for t in page
            ],
            "next_cursor": str(following) if following < len(rows) else None,
        }

    @staticmethod
    def _transfer_json(transfer: SimTransfer, deposit: bool) -> dict[str, Any]:
        return {
            "method": transfer.network,
            "aclass": "currency",
            "asset": _code(transfer.asset),
            "refid": f"{'D' if deposit else 'W'}{transfer.transfer_id:017d}",
            "txid": transfer.tx_id,
            "info": transfer.address,
            "amount": f"{transfer.amount:.8f}",
            "fee": f"{transfer.fee:.8f}",
            "time": transfer.at_ms // 1000,
            "status": "Success",
            "network": transfer.network,
        }

    def _cancel(self, key: SimKey, params: Mapping[str, str]) -> Any:
        if "txid" not in params and "cl_ord_id" not in params:
            raise _Error("EGeneral:Invalid arguments:txid")
        self._count(self._orders, key, 1.0, "EOrder:Rate limit exceeded")
        try:
            (order,) = self._find(key, params)
        except (_Error, ValueError):
            raise _Error("EOrder:Unknown order") from None
        try:
            self.market.cancel(key.account, None, order_id=order.order_id, client_order_id=None)
        except SimRejection:
            raise _Error("EOrder:Unknown order") from None
        return {"count": 1, "pending": False}

    def _open_orders(self, key: SimKey, params: Mapping[str, str]) -> dict[str, Any]:
        cl_ord_id = params.get("cl_ord_id")
        userref = _userref(params)
        trades = params.get("trades") in ("true", "1")
        return {
            _txid(o.order_id): self._order_json(o, trades=trades)
            for o in self.market.open_orders(key.account, None)
            if (cl_ord_id is None or o.client_order_id == cl_ord_id)
            and (userref is None or o.userref == userref)
        }

    def _closed_orders(self, key: SimKey, params: Mapping[str, str]) -> Any:
        """A page of closed orders, the most recently closed first."""
        offset_text = params.get("ofs", "0")
        if not offset_text.isdigit():
            raise _Error("EGeneral:Invalid arguments:ofs")
        offset = int(offset_text)
        cl_ord_id = params.get("cl_ord_id")
        userref = _userref(params)
        trades = params.get("trades") in ("true", "1")
        after, upto = _seconds(params, "start"), _seconds(params, "end")
        closetime = params.get("closetime", "both")
        if closetime not in ("open", "close", "both"):
            raise _Error("EGeneral:Invalid arguments:closetime")

        def within(order: SimOrder) -> bool:  # by when it opened, closed, or either
            opened = _between(order.created_ms, after, upto)
            closed = _between(order.updated_ms, after, upto)
            return {"open": opened, "close": closed, "both": opened or closed}[closetime]

        with self.market.lock:
            closed = [
                o
                for o in self.market.orders.values()
                if o.account == key.account
                and not o.is_open
                and (cl_ord_id is None or o.client_order_id == cl_ord_id)
                and (userref is None or o.userref == userref)
                and within(o)
            ]
        closed.sort(key=lambda o: (o.updated_ms, o.order_id), reverse=True)
        page = closed[offset : offset + _CLOSED_PAGE]
        return {
            "closed": {_txid(o.order_id): self._order_json(o, trades=trades) for o in page},
            "count": len(closed),
        }

    def _order_json(self, order: SimOrder, *, trades: bool = False) -> dict[str, Any]:
        inst = self.market.instruments[order.symbol]
        alt = self._alt_of[order.symbol]
        kind = order.display_type or order.type.lower()
        price = _price(order.price, inst) if order.price is not None else "0"
        price2 = "0"
        if order.stop_price is not None:  # Kraken: price the trigger, price2 the limit
            price, price2 = _price(order.stop_price, inst), price
        average = order.quote_filled / order.filled if order.filled else Decimal(0)
        text = _described(
            f"{order.side.lower()} {order.quantity:.8f} {alt}",
            kind,
            None if order.price is None else _price(order.price, inst),
            None if order.stop_price is None else _price(order.stop_price, inst),
        )
        closed = not order.is_open
        fee = sum((self._fee_in_quote(order, t, p)[0] for p, _, t in order.fills), Decimal(0))
        result: dict[str, Any] = {
            "refid": None,
            "userref": order.userref if order.userref is not None else 0,
            "cl_ord_id": None
            if order.client_order_id.startswith(_AUTO_ID)
            else order.client_order_id,
            "status": _STATUS[order.status],
            "opentm": order.created_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": alt,
                "type": order.side.lower(),
                "ordertype": kind,
                "price": price,
                "price2": price2,
                "leverage": "none",
                "order": text,
                "close": "",
            },
            # A viqc order's volume is the quote amount it was given; what executed is base.
            "vol": f"{order.quote_order_qty or order.quantity:.8f}",
            "vol_exec": f"{order.filled:.8f}",
            "cost": _price(order.quote_filled, inst),
            "fee": _price(fee, inst),
            "price": _price(average, inst),
            "stopprice": price if order.stop_price is not None else "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": self._oflags.get(order.order_id, "fciq"),
        }
        if trades and order.fills:
            result["trades"] = [_trade_txid(t) for _, _, t in order.fills]
        if closed:
            result["closetm"] = order.updated_ms / 1000
            result["reason"] = order.reason
        return result

    def _balances(self, key: SimKey, *, extended: bool) -> Any:
        account = self.market.accounts[key.account]
        with self.market.lock:
            rows = {a: (v[0], v[1]) for a, v in account.balances.items()}
        if not extended:
            return {_code(a): f"{free + held:.10f}" for a, (free, held) in sorted(rows.items())}
        return {
            _code(a): {"balance": f"{free + held:.10f}", "hold_trade": f"{held:.10f}"}
            for a, (free, held) in sorted(rows.items())
        }
