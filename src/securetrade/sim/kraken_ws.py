"""The simulator's Kraken WebSocket API v2 (``/v2``), over the same TLS certificates (and so
the same pins) as its HTTPS server.

As Kraken documents it: requests are ``{"method", "params", "req_id"}`` objects answered
with ``{"method", "success", "result" | "error", "req_id"}``; ``ping`` is answered with
``pong``. The private ``executions`` channel needs a token from ``GetWebSocketsToken``
(checked against the Kraken dialect's tokens), sends a snapshot of the open orders, then an
update for every order event of the token's account, each message numbered by
``sequence``; the private ``balances`` channel reports every withdrawal as a ledger
entry. ``book`` sends a snapshot and then the changed price levels, each message with the
CRC32 checksum of the top ten levels; ``ticker`` the best bid and ask. Prices and
quantities are JSON numbers written with the pair's precision, as Kraken writes them.

The faults of :class:`~securetrade.sim.ws.WsFaults` apply to the executions updates (mute,
drop, duplicate, reorder, close every N seconds, refuse, expire), and
:meth:`KrakenWebSockets.corrupt_checksums` sends wrong book checksums.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import zlib
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .certs import Certificates
from .engine import SimInstrument, SimOrder
from .kraken import KrakenDialect, _trade_txid, _txid
from .ws import SimVenue, SimWebSockets, _User

__all__ = ["KrakenSimVenue", "KrakenWebSockets", "book_checksum"]

_STATUS = {
    "NEW": "new",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
}
_NUMBER = re.compile(r'"\\u0000(-?[0-9.]+)"')


class KrakenSimVenue(SimVenue, Protocol):
    """A simulator with a Kraken dialect (a :class:`~securetrade.sim.Simulator` is one)."""

    @property
    def kraken(self) -> KrakenDialect: ...


def _dumps(frame: Any) -> str:
    """JSON with every Decimal written as a JSON number, digits as they are."""

    def number(value: Any) -> str:
        if isinstance(value, Decimal):
            return "\x00" + format(value, "f")
        raise TypeError(type(value).__name__)

    return _NUMBER.sub(r"\1", json.dumps(frame, default=number))


def book_checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's book checksum over wire texts: the top ten asks (lowest first), then the top
    ten bids (highest first), each price and quantity without its point and leading zeros,
    concatenated, CRC32 as an unsigned integer."""

    def digits(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    joined = "".join(digits(p) + digits(q) for p, q in asks[:10])
    joined += "".join(digits(p) + digits(q) for p, q in bids[:10])
    return zlib.crc32(joined.encode("ascii"))


class _Subscriber(_User):
    """A connection subscribed to private channels: which ones, and its own sequence
    numbers of ``executions``."""

    def __init__(self, socket: ServerConnection, account: str) -> None:
        super().__init__(socket, account)
        self.sequence = 0
        self.executions = False
        self.balances = False


class KrakenWebSockets(SimWebSockets):
    """Kraken's WebSocket API v2, served on 127.0.0.1 in a thread of its own."""

    def __init__(
        self,
        sim: KrakenSimVenue,
        *,
        certificates: Certificates | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(sim, certificates=certificates, host=host, port=port)
        self.kraken = sim.kraken
        self._corrupt = 0
        self._ledger_ids = itertools.count(1)

    @property
    def user_url(self) -> str:
        """The private endpoint (``ws-auth.kraken.com/v2``'s stand-in)."""
        return f"{self.url}/v2"

    @property
    def market_url(self) -> str:
        """The public endpoint (``ws.kraken.com/v2``'s stand-in)."""
        return f"{self.url}/v2"

    def corrupt_checksums(self, count: int = 1) -> None:
        """Send the next ``count`` book updates with a wrong checksum."""
        self._corrupt += count

    # --- connections ---------------------------------------------------------------------

    async def _handle(self, socket: ServerConnection) -> None:
        self.connections += 1
        self._all.add(socket)
        path = socket.request.path if socket.request is not None else ""
        tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        try:
            if path == "/v2":
                await self._requests_v2(socket, tasks)
            else:
                await socket.close(1008, "unknown endpoint")
        except ConnectionClosed:
            pass
        finally:
            for task in tasks.values():
                task.cancel()
            self._all.discard(socket)
            self._users = [u for u in self._users if u.socket is not socket]

    async def _requests_v2(
        self, socket: ServerConnection, tasks: dict[tuple[str, str], asyncio.Task[None]]
    ) -> None:
        subscriber: _Subscriber | None = None
        async for text in socket:
            if subscriber is not None and subscriber.muted:
                continue
            received = _now()
            try:
                request = json.loads(text)
                method = request["method"]
                params = request.get("params") or {}
                req_id = request.get("req_id")
                if not isinstance(params, dict):
                    raise TypeError("params")
            except (ValueError, KeyError, TypeError, AttributeError):
                await socket.send(json.dumps({"error": "EGeneral:Invalid arguments",
                                              "success": False}))  # fmt: skip
                continue
            answer: dict[str, Any] = {"method": method, "req_id": req_id, "time_in": received}
            if method == "ping":
                answer = {"method": "pong", "req_id": req_id, "time_in": received}
            elif method == "subscribe" and params.get("channel") in ("executions", "balances"):
                channel = str(params["channel"])
                account = self.kraken.ws_account(str(params.get("token", "")))
                if account is None or (subscriber is not None and subscriber.account != account):
                    answer.update(success=False, error="EAccount:Invalid token")
                else:
                    answer.update(success=True, result={"channel": channel})
                    if subscriber is None:
                        subscriber = _Subscriber(socket, account)
                        tasks[("private", "")] = asyncio.get_running_loop().create_task(
                            subscriber.write()
                        )
                        self._users.append(subscriber)
                    await socket.send(json.dumps({**answer, "time_out": _now()}))
                    if channel == "executions":
                        subscriber.executions = True
                        self._snapshot(subscriber, bool(params.get("snap_orders", True)))
                    else:
                        subscriber.balances = True
                        self._balances_snapshot(subscriber)
                    continue
            elif method in ("subscribe", "unsubscribe") and params.get("channel") in (
                "book",
                "ticker",
            ):
                self._market_request(socket, method, params, answer, tasks)
            else:
                answer.update(success=False, error="EGeneral:Invalid arguments")
            answer["time_out"] = _now()
            await socket.send(json.dumps(answer))

    def _market_request(
        self,
        socket: ServerConnection,
        method: str,
        params: dict[str, Any],
        answer: dict[str, Any],
        tasks: dict[tuple[str, str], asyncio.Task[None]],
    ) -> None:
        channel = str(params["channel"])
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or len(symbols) != 1:
            answer.update(success=False, error="EGeneral:Invalid arguments:symbol")
            return
        name = str(symbols[0])
        inst = self._instrument(name)
        if inst is None:
            answer.update(success=False, error=f"Currency pair not supported {name}")
            return
        answer.update(success=True, result={"channel": channel, "symbol": name})
        running = tasks.pop((channel, name), None)
        if running is not None:
            running.cancel()
        if method == "unsubscribe":
            return
        depth = params.get("depth", 10)
        feed = self._book(socket, name, inst, int(depth)) if channel == "book" else (
            self._ticker(socket, name, inst))  # fmt: skip
        tasks[(channel, name)] = asyncio.get_running_loop().create_task(feed)

    def _instrument(self, name: str) -> SimInstrument | None:
        base, _, quote = name.partition("/")
        for inst in self.sim.market.instruments.values():
            if inst.base == base and inst.quote == quote:
                return inst
        return None

    # --- market data -------------------------------------------------------------------------

    async def _book(self, socket: ServerConnection, name: str, inst: SimInstrument,
                    depth: int) -> None:  # fmt: skip
        sent: tuple[dict[str, str], dict[str, str]] | None = None
        quiet = 0.0
        with contextlib.suppress(ConnectionClosed):
            while True:
                bids, asks = self._levels(inst, depth)
                if sent is None:
                    changes = (bids, asks)
                else:
                    changes = (_changed(sent[0], bids), _changed(sent[1], asks))
                if sent is None or changes[0] or changes[1]:
                    checksum = book_checksum(_ordered(asks, False), _ordered(bids, True))
                    if sent is not None and self._corrupt > 0:
                        self._corrupt -= 1
                        checksum ^= 0x5A5A5A5A
                    frame = {
                        "channel": "book",
                        "type": "snapshot" if sent is None else "update",
                        "data": [
                            {
                                "symbol": name,
                                "bids": _wire_levels(changes[0], True),
                                "asks": _wire_levels(changes[1], False),
                                "checksum": checksum,
                                "timestamp": _now(),
                            }
                        ],
                    }
                    sent, quiet = (bids, asks), 0.0
                    await socket.send(_dumps(frame))
                elif quiet >= 1.0:  # Kraken's heartbeat: about once a second when quiet
                    await socket.send(json.dumps({"channel": "heartbeat"}))
                    quiet = 0.0
                await asyncio.sleep(0.1)
                quiet += 0.1

    def _levels(self, inst: SimInstrument, depth: int) -> tuple[dict[str, str], dict[str, str]]:
        bids, asks = self.sim.market.book(inst.symbol, depth)
        places = _places(inst.tick_size)
        return (
            {f"{p:.{places}f}": f"{q:.8f}" for p, q in bids},
            {f"{p:.{places}f}": f"{q:.8f}" for p, q in asks},
        )

    async def _ticker(self, socket: ServerConnection, name: str, inst: SimInstrument) -> None:
        first = True
        places = _places(inst.tick_size)
        with contextlib.suppress(ConnectionClosed):
            while True:
                bids, asks = self.sim.market.book(inst.symbol, 1)
                last = self.sim.market.price(inst.symbol)
                entry = {
                    "symbol": name,
                    "bid": Decimal(f"{bids[0][0]:.{places}f}"),
                    "bid_qty": Decimal(f"{bids[0][1]:.8f}"),
                    "ask": Decimal(f"{asks[0][0]:.{places}f}"),
                    "ask_qty": Decimal(f"{asks[0][1]:.8f}"),
                    "last": Decimal(f"{last:.{places}f}"),
                    "timestamp": _now(),
                }
                frame = {"channel": "ticker", "type": "snapshot" if first else "update",
                         "data": [entry]}  # fmt: skip
                first = False
                await socket.send(_dumps(frame))
                await asyncio.sleep(0.1)

    # --- executions --------------------------------------------------------------------------

    def _snapshot(self, subscriber: _Subscriber, orders: bool) -> None:
        rows = []
        if orders:
            for order in self.sim.market.open_orders(subscriber.account, None):
                rows.append(self._execution(order, "new" if not order.filled else "status"))
        subscriber.sequence += 1
        frame = {"channel": "executions", "type": "snapshot", "data": rows,
                 "sequence": subscriber.sequence}  # fmt: skip
        self._send(subscriber, _dumps(frame), None)

    def _on_market(
        self, what: str, order: SimOrder | None, detail: tuple[object, ...] | None
    ) -> None:
        """Engine listener (under the market lock, any thread): build the data now, number
        and send it on the server's loop."""
        if order is None:  # a withdrawal: Kraken reports it on the balances channel
            assert detail is not None
            asset, amount, account = detail
            entry = {
                "ledger_id": f"L{next(self._ledger_ids):017d}",
                "ref_id": f"W{next(self._ledger_ids):017d}",
                "timestamp": _now(),
                "type": "withdrawal",
                "asset": str(asset),
                "asset_class": "currency",
                "category": "withdrawal",
                "wallet_type": "spot",
                "wallet_id": "main",
                "amount": -Decimal(str(amount)),
                "fee": Decimal(0),
            }
            frame = _dumps({"channel": "balances", "type": "update", "data": [entry]})
            self._loop.call_soon_threadsafe(self._fan_out_balances, str(account), frame)
            return
        rows: list[dict[str, Any]]
        if what == "TRADE":
            assert detail is not None
            price, quantity, trade = detail
            executed = (Decimal(str(price)), Decimal(str(quantity)), int(str(trade)))
            rows = [self._execution(order, "trade", executed)]
            if order.status == "FILLED":  # completion comes as an update of its own
                rows.append(self._execution(order, "filled"))
        else:
            rows = [self._execution(order, what.lower())]
        for row in rows:
            data = _dumps([row])
            trade_id = row.get("exec_id")
            self._loop.call_soon_threadsafe(self._fan_out, order.account, data, trade_id)

    def _execution(
        self, order: SimOrder, kind: str, trade: tuple[Decimal, Decimal, int] | None = None
    ) -> dict[str, Any]:
        inst = self.sim.market.instruments[order.symbol]
        places = _places(inst.tick_size)
        status = _STATUS[order.status]
        if kind == "trade" and status == "filled":
            status = "partially_filled"  # as Kraken: the separate "filled" update follows
        row: dict[str, Any] = {
            "exec_type": kind,
            "order_id": _txid(order.order_id),
            "symbol": f"{inst.base}/{inst.quote}",
            "side": order.side.lower(),
            "order_type": order.type.lower(),
            "order_qty": Decimal(f"{order.quantity:.8f}"),
            "order_status": status,
            "cum_qty": Decimal(f"{order.filled:.8f}"),
            "timestamp": _now(),
        }
        if not order.client_order_id.startswith("~auto-"):
            row["cl_ord_id"] = order.client_order_id
        if order.price is not None:
            row["limit_price"] = Decimal(f"{order.price:.{places}f}")
        if trade is not None:
            price, quantity, number = trade
            fee = order.fees.get(number)
            in_quote = Decimal(0)
            if fee is not None:
                in_quote = fee[0] * price if fee[1] == inst.base else fee[0]
            row.update(
                exec_id=_trade_txid(number),
                trade_id=number,
                last_qty=Decimal(f"{quantity:.8f}"),
                last_price=Decimal(f"{price:.{places}f}"),
                cost=Decimal(f"{price * quantity:.{places}f}"),
                fees=[{"asset": inst.quote, "qty": Decimal(f"{in_quote:.{places}f}")}],
                liquidity_ind="m" if fee is not None and not fee[2] else "t",
            )
        return row

    def _balances_snapshot(self, subscriber: _Subscriber) -> None:
        account = self.sim.market.accounts[subscriber.account]
        with self.sim.market.lock:
            rows = [
                {"asset": asset, "asset_class": "currency", "balance": free + held}
                for asset, (free, held) in sorted(account.balances.items())
            ]
        frame = {"channel": "balances", "type": "snapshot", "data": rows}
        self._send(subscriber, _dumps(frame), None)

    def _fan_out_balances(self, account: str, frame: str) -> None:
        for user in list(self._users):
            if isinstance(user, _Subscriber) and user.balances and user.account == account:
                if user.muted:
                    continue
                self._send(user, frame, None)

    def _fan_out(self, account: str, text: str, trade_id: str | None) -> None:
        for user in list(self._users):
            if user.account != account or user.muted or not isinstance(user, _Subscriber):
                continue
            if not user.executions:
                continue
            user.sequence += 1
            frame = (f'{{"channel":"executions","type":"update","data":{text},'
                     f'"sequence":{user.sequence}}}')  # fmt: skip
            number = next(self._counter)
            faults = self.faults
            if number in faults.drop:
                continue
            if number in faults.reorder:
                self._held.append((user, frame))
                continue
            for _ in range(2 if number in faults.duplicate else 1):
                self._send(user, frame, trade_id)
            held, self._held = self._held, []
            for other, late in held:
                self._send(other, late, None)


def _changed(before: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """The levels that differ: new or resized ones, and removed ones at quantity zero."""
    changes = {p: q for p, q in now.items() if before.get(p) != q}
    changes.update({p: "0.00000000" for p in before if p not in now})
    return changes


def _ordered(levels: dict[str, str], highest_first: bool) -> list[tuple[str, str]]:
    return sorted(levels.items(), key=lambda pq: Decimal(pq[0]), reverse=highest_first)


def _wire_levels(levels: dict[str, str], highest_first: bool) -> list[dict[str, Decimal]]:
    return [{"price": Decimal(p), "qty": Decimal(q)} for p, q in _ordered(levels, highest_first)]


def _places(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _now() -> str:
    return datetime.fromtimestamp(time.time(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
