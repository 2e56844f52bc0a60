"""A simulated broker (Alpaca or OANDA): its own engine, instruments, accounts and faults.

The brokers trade other markets than the crypto exchanges (stocks, forex) and keep their
own dedupe strength (Alpaca strong, OANDA pending orders only), so each runs over a
:class:`Market` of its own rather than the exchanges' shared one. The surface is the
:class:`~securetrade.sim.Simulator`'s: ``market``, ``faults``, ``dialect``,
``create_key()``, ``serve()``, ``transport()``, so the same tests and oracle apply.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._checks import shown
from ..errors import InvalidRequest
from ..keys import ApiKey, Environment, Scope
from ..transport.base import HttpRequest, HttpResponse, TransportFailure
from .alpaca import ALPACA_BALANCES, AlpacaDialect, alpaca_market
from .dialect import Dialect, SimKey, SimResponse
from .engine import opening_balances
from .faults import Faults
from .oanda import OANDA_BALANCES, OandaDialect, oanda_market
from .server import HttpsServer

if TYPE_CHECKING:
    from .alpaca_ws import AlpacaWebSockets
    from .engine import Market
    from .oanda_stream import OandaStreamServer
    from .oauth import OAuthServerSim

__all__ = ["BROKERS", "BrokerSimulator"]

BROKERS = ("alpaca", "oanda")


class BrokerSimulator:
    """One simulated broker: ``BrokerSimulator("alpaca")`` or ``BrokerSimulator("oanda")``."""

    def __init__(self, venue: str, *, clock_offset_ms: int = 0) -> None:
        if venue not in BROKERS:
            raise InvalidRequest(f"venue must be one of {', '.join(BROKERS)}, not {shown(venue)}")
        self.venue = venue
        self.faults = Faults()
        self.dialect: AlpacaDialect | OandaDialect
        if venue == "alpaca":
            self.market: Market = alpaca_market()
            self.dialect = AlpacaDialect(
                self.market, faults=self.faults, clock_offset_ms=clock_offset_ms
            )
        else:
            self.market = oanda_market()
            self.dialect = OandaDialect(
                self.market, faults=self.faults, clock_offset_ms=clock_offset_ms
            )
        self.market._now_ms = self.dialect.now_ms
        self._servers: list[HttpsServer] = []
        self._streams: list[AlpacaWebSockets | OandaStreamServer] = []

    def create_key(
        self,
        *,
        scopes: Iterable[Scope | str] = (Scope.READ, Scope.TRADE, Scope.CANCEL),
        account: str | None = None,
        balances: dict[str, Decimal] | None = None,
    ) -> ApiKey:
        """A new key on a new account (or on ``account``), valid for this run only.

        Alpaca: a key id and secret, presented in headers. OANDA: the key id is the
        account id (``101-...``), the secret a bearer token."""
        if balances is not None:
            balances = opening_balances(balances)
        dialect = self.dialect
        if isinstance(dialect, AlpacaDialect):
            key_id = "PK" + secrets.token_hex(9).upper()
            account = account or f"acct-{key_id[-8:].lower()}"
            opening = ALPACA_BALANCES
        else:
            account = account or dialect.new_account_id()
            key_id = account
            opening = OANDA_BALANCES
        if account not in self.market.accounts:
            self.market.open_account(account, dict(balances or opening))
        secret = secrets.token_hex(32)
        dialect.add_key(SimKey(key_id, account))
        dialect.add_secret(key_id, secret.encode())
        return ApiKey(self.venue, key_id, secret, scopes=scopes, environment=Environment.SIMULATED)

    def authorize(self, server: OAuthServerSim, *, account: str | None = None) -> str:
        """Have this broker accept the access tokens ``server`` issues (Alpaca Connect),
        each for the account whose owner approved the app: ``account``, or a new one
        (opened with the usual balances). Returns that account."""
        dialect = self.dialect
        if not isinstance(dialect, AlpacaDialect):
            raise InvalidRequest("OANDA takes personal access tokens only, not OAuth apps")
        account = account or f"acct-oauth-{secrets.token_hex(4)}"
        if account not in self.market.accounts:
            self.market.open_account(account, dict(ALPACA_BALANCES))
        server.resource_owner = account
        dialect.authorization = server
        return account

    def account_of(self, key_id: str) -> str:
        return self.dialect.keys[key_id].account

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        client: str = "127.0.0.1",
    ) -> SimResponse:
        dialect: Dialect[Any] = self.dialect
        return dialect.handle(method, target, headers, body, client)

    def serve(self, *, port: int = 0) -> HttpsServer:
        """Start an HTTPS server on 127.0.0.1 with a fresh certificate; returns it running."""
        server = HttpsServer(self.handle, port=port).start()
        self._servers.append(server)
        return server

    def serve_stream(
        self, server: HttpsServer | None = None, *, port: int = 0
    ) -> AlpacaWebSockets | OandaStreamServer:
        """Start the broker's live stream on 127.0.0.1 (Alpaca's ``trade_updates``
        WebSocket, OANDA's transaction stream), with ``server``'s certificates (so the
        same pins pass) when given; returns it running. Its ``user_url`` is the
        ``stream_url=`` for ``watch_orders``/``watch_fills``."""
        certificates = None if server is None else server.certificates
        stream: AlpacaWebSockets | OandaStreamServer
        if self.venue == "alpaca":
            from .alpaca_ws import AlpacaWebSockets

            stream = AlpacaWebSockets(self, certificates=certificates, port=port)
            stream.start()
        else:
            from .oanda_stream import OandaStreamServer

            stream = OandaStreamServer(self, certificates=certificates, port=port).start()
        self._streams.append(stream)
        return stream

    def transport(self) -> BrokerTransport:
        """In-process: no sockets, the same handler."""
        return BrokerTransport(self)

    def close(self) -> None:
        for stream in self._streams:
            stream.stop()
        self._streams.clear()
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> BrokerSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BrokerTransport:
    """``Client(transport=sim.transport())``: calls the handler directly."""

    def __init__(self, sim: BrokerSimulator) -> None:
        self._sim = sim

    def send(self, request: HttpRequest) -> HttpResponse:
        headers = {k.lower(): v for k, v in request.headers}
        response = self._sim.handle(request.method, request.target, headers, request.body)
        if response.drop or response.reset:
            raise TransportFailure("simulated connection loss", sent=True)
        return HttpResponse(response.status, response.headers, response.body)

    def close(self) -> None:
        pass
