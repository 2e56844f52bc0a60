"""The simulator's WebSockets: Binance's WebSocket API user data stream and raw market
streams, over TLS with the same certificates (and so the same pins) as its HTTPS server.

User data (``/ws-api/v3``): ``userDataStream.subscribe.signature`` with the key's HMAC or
Ed25519 signature over the sorted parameters, checked as the REST side checks it; then an
``executionReport`` for every order event of the key's account and a ``balanceUpdate`` for
every withdrawal, pushed from the engine's listeners. ``ping`` is answered. Market data
(``/ws/<symbol>@bookTicker``, ``/ws/<symbol>@depth5@100ms``): a frame every 100 ms.

:class:`WsFaults` breaks it on request: mute the open connections (pings still answered,
no data), drop, duplicate or hold back (reorder) user frame number k, close every
connection every N seconds, refuse new connections for a while (HTTP 429 with
Retry-After), and :meth:`SimWebSockets.expire_all` closes every connection as the
venue's 24 h limit does. :class:`Intruder` trades and withdraws on an account through
a session of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import threading
import time
from decimal import Decimal
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .binance import BinanceDialect
from .certs import Certificates, make_certificates
from .engine import Market, SimOrder
from .server import Served, server_context

__all__ = ["Intruder", "SimVenue", "SimWebSockets", "WsFaults"]


class SimVenue(Protocol):
    """What the streams need of the simulator (a :class:`~securetrade.sim.Simulator` is
    one): its matching engine and its Binance dialect, for keys and the venue clock. A
    Protocol, so this module sits below ``securetrade.sim`` and never imports it."""

    @property
    def market(self) -> Market: ...

    @property
    def dialect(self) -> BinanceDialect: ...


class WsFaults:
    """What the WebSocket side does wrong, set by a test while it runs."""

    def __init__(self) -> None:
        self.drop: set[int] = set()
        self.duplicate: set[int] = set()
        self.reorder: set[int] = set()
        self.close_every: float | None = None
        self._refuse_until = 0.0
        self.refuse_status = 429

    def refuse_for(self, seconds: float, *, status: int = 429) -> None:
        """Answer new connections with ``status`` (429, or 406 as Alpaca does to a second
        connection) and ``Retry-After: 1`` for ``seconds``."""
        self._refuse_until = time.monotonic() + seconds
        self.refuse_status = status

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def clear(self) -> None:
        self.drop.clear()
        self.duplicate.clear()
        self.reorder.clear()
        self.close_every = None
        self._refuse_until = 0.0


class _User:
    """One subscribed user-data connection."""

    def __init__(self, socket: ServerConnection, account: str) -> None:
        self.socket = socket
        self.account = account
        self.muted = False
        self.outbox: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()  # stays in order
        #: trade id -> time.perf_counter_ns() just before its frame was written here
        self.sent_ns: dict[str, int] = {}

    async def write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                text, trade_id = await self.outbox.get()
                if trade_id is not None:
                    self.sent_ns[trade_id] = time.perf_counter_ns()
                await self.socket.send(text)


class SimWebSockets(Served):
    """Serves the simulator's streams on 127.0.0.1 in a thread of its own."""

    def __init__(
        self,
        sim: SimVenue,
        *,
        certificates: Certificates | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.sim = sim
        self.certificates = certificates or make_certificates()
        self.host = host
        self.port = port
        self.faults = WsFaults()
        self.frames_sent = 0
        self.connections = 0
        self.refused = 0
        self.requests = 0
        self._users: list[_User] = []
        self._all: set[ServerConnection] = set()
        self._held: list[tuple[_User, str]] = []
        self._counter = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"wss://{self.host}:{self.port}"

    @property
    def user_url(self) -> str:
        return f"{self.url}/ws-api/v3"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> SimWebSockets:
        self._thread = threading.Thread(target=self._run, name="securetrade-sim-ws", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.sim.market.listeners.append(self._on_market)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        self._ready.set()
        self._loop.run_forever()

    async def _open(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=server_context(self.certificates),
            process_request=self._admit,
            compression=None,
            ping_interval=None,  # the client pings; a muted socket still answers
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop.create_task(self._closer())

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.sim.market.listeners.remove(self._on_market)
        if self._thread is None:
            return

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 5)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        if not self._loop.is_running():
            self._loop.close()

    # --- faults that act on connections ---------------------------------------------------

    def mute(self) -> None:
        """The open user connections stay up and answer pings, but send nothing more."""
        for user in list(self._users):
            user.muted = True

    def expire_all(self) -> None:
        """Close every connection, as the venue does when one reaches 24 hours."""
        for socket in list(self._all):
            asyncio.run_coroutine_threadsafe(socket.close(1001, "24h connection limit"), self._loop)

    async def _closer(self) -> None:
        while True:
            every = self.faults.close_every
            await asyncio.sleep(every if every else 0.05)
            if every:
                for socket in list(self._all):
                    await socket.close(1001, "closed by the simulator")

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests += 1  # an HTTP upgrade request arrived (the TLS handshake passed)
        if self.faults.refusing:
            self.refused += 1
            response = connection.respond(self.faults.refuse_status, "Connection refused\n")
            response.headers["Retry-After"] = "1"
            return response
        return None

    # --- connections ---------------------------------------------------------------------

    async def _handle(self, socket: ServerConnection) -> None:
        self.connections += 1
        self._all.add(socket)
        path = socket.request.path if socket.request is not None else ""
        try:
            if path == "/ws-api/v3":
                await self._api(socket)
            elif path.startswith("/ws/"):
                await self._market(socket, path[len("/ws/") :])
            else:
                await socket.close(1008, "unknown stream")
        except ConnectionClosed:
            pass
        finally:
            self._all.discard(socket)
            self._users = [u for u in self._users if u.socket is not socket]

    async def _api(self, socket: ServerConnection) -> None:
        writers: list[asyncio.Task[None]] = []
        try:
            await self._requests(socket, writers)
        finally:
            for task in writers:
                task.cancel()

    async def _requests(self, socket: ServerConnection, writers: list[asyncio.Task[None]]) -> None:
        user: _User | None = None
        async for text in socket:
            if user is not None and user.muted:
                continue
            try:
                request = json.loads(text)
                ident, method = request.get("id"), request["method"]
                params = request.get("params") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                await socket.send(json.dumps({"id": None, "status": 400, "error": {
                    "code": -1100, "msg": "Malformed request."}}))  # fmt: skip
                continue
            if method == "ping":
                await socket.send(json.dumps({"id": ident, "status": 200, "result": {}}))
            elif method == "userDataStream.subscribe.signature":
                account, error = self._check_signature(params)
                if account is None:
                    await socket.send(json.dumps({"id": ident, "status": 400, "error": error}))
                    continue
                await socket.send(
                    json.dumps({"id": ident, "status": 200, "result": {"subscriptionId": 0}})
                )
                user = _User(socket, account)
                self._users.append(user)
                writers.append(asyncio.get_running_loop().create_task(user.write()))
            else:
                await socket.send(json.dumps({"id": ident, "status": 400, "error": {
                    "code": -1020, "msg": "Unsupported operation."}}))  # fmt: skip

    def _check_signature(self, params: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        dialect = self.sim.dialect
        key = dialect.keys.get(str(params.get("apiKey", "")))
        if key is None:
            return None, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        signature = str(params.get("signature", ""))
        signed = {k: str(v) for k, v in params.items() if k != "signature"}
        payload = "&".join(f"{k}={signed[k]}" for k in sorted(signed))
        if not dialect._signature_ok(key, payload.encode("ascii", "replace"), signature):
            return None, {"code": -1022, "msg": "Signature for this request is not valid."}
        try:
            timestamp = int(signed["timestamp"])
            window = int(signed.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            return None, {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent."}
        if abs(dialect.now_ms() - timestamp) > window:
            return None, {"code": -1021, "msg": "Timestamp outside of the recvWindow."}
        return key.account, {}

    async def _market(self, socket: ServerConnection, stream: str) -> None:
        symbol_text, _, channel = stream.partition("@")
        symbol = symbol_text.upper()
        if symbol not in self.sim.market.instruments or channel not in (
            "bookTicker",
            "depth5@100ms",
        ):
            await socket.close(1008, "unknown stream")
            return
        while True:
            bids, asks = self.sim.market.book(symbol, 5)
            if channel == "bookTicker":
                frame: dict[str, Any] = {
                    "u": next(self._update_ids),
                    "s": symbol,
                    "b": str(bids[0][0]),
                    "B": str(bids[0][1]),
                    "a": str(asks[0][0]),
                    "A": str(asks[0][1]),
                }
            else:
                frame = {
                    "lastUpdateId": next(self._update_ids),
                    "bids": [[str(p), str(q)] for p, q in bids],
                    "asks": [[str(p), str(q)] for p, q in asks],
                }
            await socket.send(json.dumps(frame))
            await asyncio.sleep(0.1)

    # --- user data from the engine ---------------------------------------------------------

    def _on_market(
        self, what: str, order: SimOrder | None, detail: tuple[object, ...] | None
    ) -> None:
        """Engine listener (under the market lock, any thread): build the frame now, send it
        on the server's loop."""
        if what == "WITHDRAWAL":
            assert detail is not None
            asset, amount, account = detail
            now = self.sim.dialect.now_ms()
            event: dict[str, Any] = {"e": "balanceUpdate", "E": now, "a": asset,
                                     "d": f"-{amount}", "T": now}  # fmt: skip
            trade_id = None
        else:
            assert order is not None
            account = order.account
            event, trade_id = self._execution_report(what, order, detail)
        text = json.dumps({"subscriptionId": 0, "event": event})
        self._loop.call_soon_threadsafe(self._fan_out, str(account), text, trade_id)

    def _execution_report(
        self, what: str, order: SimOrder, detail: tuple[object, ...] | None
    ) -> tuple[dict[str, Any], str | None]:
        now = self.sim.dialect.now_ms()
        last_price, last_qty, trade_id = (
            (str(detail[0]), str(detail[1]), detail[2]) if detail else ("0", "0", -1)
        )
        cancel = what in ("CANCELED", "EXPIRED")
        fee = order.fees.get(int(str(trade_id))) if detail else None
        return {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": f"sim-cancel-{order.order_id}" if cancel else order.client_order_id,
            "C": order.client_order_id if cancel else "",
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force or "GTC",
            "q": str(order.quantity),
            "p": str(order.price or Decimal(0)),
            "x": "TRADE" if what == "TRADE" else what,
            "X": order.status,
            "i": order.order_id,
            "l": last_qty,
            "z": str(order.filled),
            "L": last_price,
            "n": str(fee[0]) if fee else "0",
            "N": fee[1] if fee else None,
            "T": now,
            "t": trade_id,
        }, (str(trade_id) if detail else None)

    def _fan_out(self, account: str, text: str, trade_id: str | None) -> None:
        for user in list(self._users):
            if user.account != account or user.muted:
                continue
            number = next(self._counter)
            faults = self.faults
            if number in faults.drop:
                continue
            if number in faults.reorder:
                self._held.append((user, text))
                continue
            copies = 2 if number in faults.duplicate else 1
            for _ in range(copies):
                self._send(user, text, trade_id)
            held, self._held = self._held, []
            for other, late in held:
                self._send(other, late, None)

    def _send(self, user: _User, text: str, trade_id: str | None) -> None:
        self.frames_sent += 1
        user.outbox.put_nowait((text, trade_id))

    def send_times(self) -> list[dict[str, int]]:
        """Per subscribed user connection, in subscription order: trade id -> the
        ``time.perf_counter_ns()`` just before its frame was written (for the benchmark)."""
        return [dict(user.sent_ns) for user in self._users]


class Intruder:
    """Someone else with the account's credentials: places orders and withdraws funds
    through a session of its own (not the bot's client, not its journal)."""

    def __init__(self, sim: SimVenue, account: str) -> None:
        self.sim = sim
        self.account = account
        self._ids = itertools.count(1)

    def place(
        self, symbol: str, side: str, quantity: Decimal, price: Decimal | None = None
    ) -> SimOrder:
        return self.sim.market.place(
            self.account,
            symbol=symbol,
            side=side,
            type="LIMIT" if price is not None else "MARKET",
            quantity=quantity,
            price=price,
            time_in_force="GTC" if price is not None else None,
            client_order_id=f"web_{next(self._ids)}_{time.time_ns() % 10**9}",
        )

    def withdraw(self, asset: str, amount: Decimal) -> None:
        self.sim.market.withdraw(self.account, asset, amount)

    def change_key(
        self, key_id: str, *, can_withdraw: bool | None = None, ip_restricted: bool | None = None
    ) -> None:
        """Flip a key's switches at the venue (what a thief with the web login does)."""
        dialect = self.sim.dialect
        with dialect._lock:
            key = dialect.keys[key_id]
            dialect.keys[key_id] = dataclasses.replace(
                key,
                can_withdraw=key.can_withdraw if can_withdraw is None else can_withdraw,
                ip_restricted=key.ip_restricted if ip_restricted is None else ip_restricted,
            )
