"""The simulator's Alpaca trade stream: ``/stream`` with Alpaca's auth and ``listen`` frames.

A client sends ``{"action": "auth", "key": ..., "secret": ...}`` (checked as the REST side
checks its headers) and ``{"action": "listen", "data": {"streams": ["trade_updates"]}}``;
then every order event of the key's account comes as a ``trade_updates`` message with the
order as ``GET /v2/orders/{id}`` shows it, and for fills the execution's ``price`` and
``qty``. A second ``listen`` is answered again (a client's liveness probe).

Faults are :class:`~securetrade.sim.ws.WsFaults`' (drop, duplicate, reorder frame k,
close every N s, refuse new connections with 406 as Alpaca does to a second
connection), plus :meth:`mute` and :meth:`expire_all`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any, Protocol, cast

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .certs import Certificates
from .engine import Market, SimOrder
from .ws import SimVenue, SimWebSockets, _User

if TYPE_CHECKING:
    from .alpaca import AlpacaDialect

__all__ = ["AlpacaWebSockets"]


class Broker(Protocol):
    """What the stream needs of a :class:`~securetrade.sim.brokers.BrokerSimulator` (a
    Protocol, so this module sits below ``securetrade.sim.brokers``)."""

    @property
    def market(self) -> Market: ...

    @property
    def dialect(self) -> Any: ...


_EVENTS = {"NEW": "new", "CANCELED": "canceled", "EXPIRED": "expired"}


class AlpacaWebSockets(SimWebSockets):
    """Serves an Alpaca :class:`~securetrade.sim.brokers.BrokerSimulator`'s trade stream."""

    def __init__(
        self,
        sim: Broker,
        *,
        certificates: Certificates | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(cast(SimVenue, sim), certificates=certificates, host=host, port=port)
        self.alpaca = cast("AlpacaDialect", sim.dialect)

    @property
    def user_url(self) -> str:
        return f"{self.url}/stream"

    async def _handle(self, socket: ServerConnection) -> None:
        self.connections += 1
        self._all.add(socket)
        path = socket.request.path if socket.request is not None else ""
        writers: list[asyncio.Task[None]] = []
        try:
            if path != "/stream":
                await socket.close(1008, "unknown stream")
                return
            user: _User | None = None
            account: str | None = None
            async for text in socket:
                if user is not None and user.muted:
                    continue
                try:
                    request = json.loads(text)
                    action = request["action"]
                except (ValueError, KeyError, TypeError):
                    await socket.send(_error(400, "invalid syntax"))
                    continue
                if action == "auth":
                    account = self._check(request)
                    status = "authorized" if account is not None else "unauthorized"
                    await socket.send(json.dumps({"stream": "authorization", "data": {
                        "action": "authenticate", "status": status}}))  # fmt: skip
                    if account is None:
                        await socket.close(1008, "unauthorized")
                        return
                elif action == "listen" and account is not None:
                    streams = (request.get("data") or {}).get("streams") or []
                    listening = [s for s in streams if s == "trade_updates"]
                    await socket.send(json.dumps({"stream": "listening",
                                                  "data": {"streams": listening}}))  # fmt: skip
                    if listening and user is None:
                        user = _User(socket, account)
                        self._users.append(user)
                        writers.append(asyncio.get_running_loop().create_task(user.write()))
                else:
                    await socket.send(_error(401, "not authenticated"))
        except ConnectionClosed:
            pass
        finally:
            for task in writers:
                task.cancel()
            self._all.discard(socket)
            self._users = [u for u in self._users if u.socket is not socket]

    def _check(self, request: dict[str, Any]) -> str | None:
        key_id = str(request.get("key", ""))
        secret = str(request.get("secret", "")).encode()
        expected = self.alpaca.secrets.get(key_id)
        key = self.alpaca.keys.get(key_id)
        if expected is None or key is None or not hmac.compare_digest(secret, expected):
            return None
        return key.account

    def _on_market(
        self, what: str, order: SimOrder | None, detail: tuple[object, ...] | None
    ) -> None:
        """Engine listener: a ``trade_updates`` message for every order event (Alpaca streams
        no withdrawals here)."""
        if order is None or what == "WITHDRAWAL":
            return
        event: str | None
        if what == "TRADE":
            event = "fill" if order.status == "FILLED" else "partial_fill"
        else:
            event = _EVENTS.get(what)
            if event is None:
                return
        data: dict[str, Any] = {
            "event": event,
            "timestamp": self.alpaca._clock_body()["timestamp"],
            "order": self.alpaca._order(order),
        }
        trade_id = None
        if what == "TRADE" and detail:
            data["price"], data["qty"] = str(detail[0]), str(detail[1])
            data["position_qty"] = "0"
            data["execution_id"] = str(uuid.uuid5(uuid.NAMESPACE_OID, str(detail[2])))
            trade_id = str(detail[2])
        text = json.dumps({"stream": "trade_updates", "data": data})
        self._loop.call_soon_threadsafe(self._fan_out, order.account, text, trade_id)


def _error(code: int, message: str) -> str:
    data = {"action": "error", "status": "error", "code": code, "msg": message}
    return json.dumps({"stream": "authorization", "data": data})
