"""The built-in exchange simulator: a real exchange you can run anywhere, offline.

It speaks Binance spot REST (``/api/...``) and Kraken spot REST (``/0/...``) over one
engine, checks signatures, timestamps, nonces and rate limits as each venue does, keeps
balances and orders, fills them along a deterministic price path, and injects faults on
request. Serve it in-process (``transport()``, no sockets) or as a real HTTPS
server on loopback (``serve()``); both run the same request handler.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._checks import flag, instance, is_text, shown, text, whole
from ..errors import InvalidRequest
from ..keys import ApiKey, Environment, KeyKind, Scope, Secret
from ..keys.otp import StaticOtp, TotpOtp
from ..transport.base import HttpRequest, HttpResponse, TransportFailure
from .binance import BINANCE_FEES, BinanceDialect, SimKey, SimLimits, SimResponse
from .engine import Market, SimInstrument, opening_balances
from .faults import Fault, Faults
from .kraken import KRAKEN_FEES, KRAKEN_STARTER, KrakenDialect, KrakenLimits, kraken_secret
from .server import HttpsServer

if TYPE_CHECKING:
    from .fast_server import FastHttpsServer
    from .kraken_ws import KrakenWebSockets
    from .ws import SimWebSockets

__all__ = [
    "AsyncSimTransport",
    "Fault",
    "Faults",
    "HttpsServer",
    "KrakenLimits",
    "BROKER_VENUES",
    "SIMULATED_VENUES",
    "SimLimits",
    "SimTransport",
    "Simulator",
]

DEFAULT_INSTRUMENTS = (
    SimInstrument(
        "BTCUSDT",
        "BTC",
        "USDT",
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("0.00001"),
        Decimal("5"),
        Decimal("65000.00"),
    ),
    SimInstrument(
        "ETHUSDT",
        "ETH",
        "USDT",
        Decimal("0.01"),
        Decimal("0.0001"),
        Decimal("0.0001"),
        Decimal("5"),
        Decimal("3200.00"),
    ),
)
DEFAULT_BALANCES = {"USDT": Decimal("100000"), "BTC": Decimal("2"), "ETH": Decimal("20")}

#: The venues one ``Simulator`` speaks, each with the key kinds its dialect verifies. A new
#: dialect adds itself here; ``Simulator.create_key`` and ``securetrade sim --venue`` read it.
SIMULATED_VENUES: dict[str, tuple[KeyKind, ...]] = {
    "binance": (KeyKind.HMAC, KeyKind.ED25519),
    "kraken": (KeyKind.HMAC,),
    "alpaca": (KeyKind.HMAC,),  # served by BrokerSimulator (sim.brokers)
    "oanda": (KeyKind.HMAC,),
}
# The venues a BrokerSimulator serves rather than Simulator.
BROKER_VENUES = frozenset({"alpaca", "oanda"})


class Simulator:
    """One simulated Binance spot exchange with its accounts, keys and fault schedule."""

    venue = "binance"

    def __init__(
        self,
        *,
        instruments: Iterable[SimInstrument] = DEFAULT_INSTRUMENTS,
        limits: SimLimits | None = None,
        clock_offset_ms: int = 0,
        dedupe: str = "open_only",
        visibility_lag_ms: int = 0,
        deadline: str = "recv_window",
        history_ttl_ms: int | None = None,
        strict: bool = True,
        fees: bool = True,
        kraken_limits: KrakenLimits | None = KRAKEN_STARTER,
    ) -> None:
        """``dedupe``, ``visibility_lag_ms``, ``deadline`` and ``history_ttl_ms`` set the
        venue's profile: see :class:`Market`.

        The venue is strict by default, as the live ones are (docs/simulator.md lists the
        checks). ``strict=False`` is the lenient mode: unknown parameters, number and id
        grammars and parameter combinations go unchecked. ``fees=False`` fills without
        commission; ``kraken_limits=None`` turns Kraken's call counters off.
        """
        if isinstance(instruments, (str, bytes)) or not isinstance(instruments, Iterable):
            raise InvalidRequest("instruments must be a list of SimInstrument")
        instance("limits", limits, SimLimits)
        instance("kraken_limits", kraken_limits, KrakenLimits)
        whole("clock_offset_ms", clock_offset_ms, -86_400_000, 86_400_000)
        flag("strict", strict)
        flag("fees", fees)
        self.faults = Faults()
        self.market = Market(
            list(instruments),
            dedupe=dedupe,
            visibility_lag_ms=visibility_lag_ms,
            deadline=deadline,
            history_ttl_ms=history_ttl_ms,
        )
        self.dialect = BinanceDialect(
            self.market,
            limits=limits,
            faults=self.faults,
            clock_offset_ms=clock_offset_ms,
            strict=strict,
            fees=BINANCE_FEES if fees else None,
        )
        self.market._now_ms = self.dialect.now_ms
        # Kraken's dialect on the same engine: its paths (/0/...) never meet Binance's.
        self.kraken = KrakenDialect(
            self.market,
            faults=self.faults,
            clock_offset_ms=clock_offset_ms,
            limits=kraken_limits,
            fees=KRAKEN_FEES if fees else None,
        )
        self._servers: list[HttpsServer | FastHttpsServer] = []
        self._streams: list[SimWebSockets] = []

    def create_key(
        self,
        *,
        kind: KeyKind | str = KeyKind.HMAC,
        scopes: Iterable[Scope | str] = (Scope.READ, Scope.TRADE, Scope.CANCEL),
        account: str | None = None,
        balances: dict[str, Decimal] | None = None,
        can_withdraw: bool = False,
        withdraw_addresses: Iterable[str] = (),
        ip_restricted: bool = True,
        venue: str = "binance",
        otp: str | None = None,
    ) -> ApiKey:
        """A new key (and account, unless ``account`` names an existing one) for this run.

        ``can_withdraw`` and ``ip_restricted`` set what the venue side allows, whatever
        ``scopes`` the returned key declares: a test can make an over-permissioned key.
        ``venue="kraken"`` makes a Kraken key (HMAC, base64 secret) for the Kraken dialect;
        ``otp="static"`` or ``otp="totp"`` turns 2FA on for it, and the key carries the
        password or the seed.
        """
        text("venue", venue)
        if account is not None:  # a plain str: the accounts table hashes and compares it
            account = text("account (an account name, or None for a new one)", account)
        if balances is not None:
            balances = opening_balances(balances)
        if venue in BROKER_VENUES:
            raise InvalidRequest(
                f"{venue} is served by securetrade.sim.brokers.BrokerSimulator({shown(venue)}); "
                "make its keys there"
            )
        if venue not in SIMULATED_VENUES or KeyKind(kind) not in SIMULATED_VENUES[venue]:
            kinds = {name: [k.value for k in ks] for name, ks in SIMULATED_VENUES.items()}
            raise InvalidRequest(
                f"the simulator has no {shown(venue)} key of kind {KeyKind(kind).value!r}; "
                f"pick a venue and kind from {kinds}"
            )
        if venue == "kraken":
            key = self._kraken_key(scopes, account, balances, can_withdraw, withdraw_addresses)
            return key if otp is None else self._kraken_otp(key, otp)
        if otp is not None:
            raise InvalidRequest("otp= is for Kraken keys (venue='kraken')")
        key_id = secrets.token_hex(32)
        account = account or f"acct-{key_id[:8]}"
        if account not in self.market.accounts:
            self.market.open_account(account, dict(balances or DEFAULT_BALANCES))
        kind = KeyKind(kind)
        if kind is KeyKind.HMAC:
            hmac_secret = secrets.token_hex(32)
            secret: str | bytes = hmac_secret
            self.dialect.add_key(
                SimKey(
                    key_id,
                    account,
                    hmac_secret=hmac_secret.encode(),
                    can_withdraw=can_withdraw,
                    ip_restricted=ip_restricted,
                )
            )
        else:
            private = Ed25519PrivateKey.generate()
            secret = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.dialect.add_key(
                SimKey(
                    key_id,
                    account,
                    ed25519_public=private.public_key(),
                    can_withdraw=can_withdraw,
                    ip_restricted=ip_restricted,
                )
            )
        return ApiKey(
            self.venue,
            key_id,
            secret,
            kind=kind,
            scopes=scopes,
            environment=Environment.SIMULATED,
            withdraw_addresses=withdraw_addresses,
        )

    def account_of(self, key_id: str) -> str:
        """The account a key belongs to (a rotated-in key is created on the same one)."""
        key = self.dialect.keys.get(text("key_id", key_id))
        if key is None:
            raise InvalidRequest("key_id names no key of this simulator (see create_key)")
        return key.account

    def revoke_key(self, key_id: str) -> None:
        """Delete a key at the venue: every later request signed with it fails with -2015."""
        self.dialect.revoke(key_id)

    def _kraken_key(
        self,
        scopes: Iterable[Scope | str],
        account: str | None,
        balances: dict[str, Decimal] | None,
        can_withdraw: bool,
        withdraw_addresses: Iterable[str],
    ) -> ApiKey:
        key_id = base64.b64encode(secrets.token_bytes(42)).decode("ascii")  # 56 characters
        raw = secrets.token_bytes(64)
        account = account or f"acct-{secrets.token_hex(4)}"
        if account not in self.market.accounts:
            self.market.open_account(account, dict(balances or DEFAULT_BALANCES))
        self.kraken.add_key(SimKey(key_id, account, hmac_secret=raw, can_withdraw=can_withdraw))
        return ApiKey(
            "kraken",
            key_id,
            kraken_secret(raw),
            scopes=scopes,
            environment=Environment.SIMULATED,
            withdraw_addresses=withdraw_addresses,
        )

    def _kraken_otp(self, key: ApiKey, otp: str) -> ApiKey:
        """``key`` with 2FA enrolled at the simulated venue, and its second factor."""
        source: StaticOtp | TotpOtp
        if otp == "static":
            password = secrets.token_urlsafe(16)
            self.kraken.enroll_otp(key.key_id, static=password.encode())
            source = StaticOtp(Secret(password))
        elif otp == "totp":
            import pyotp

            seed = pyotp.random_base32()
            self.kraken.enroll_otp(key.key_id, totp_seed=seed)
            source = TotpOtp(Secret(seed), seed_name=f"kraken-otp-{secrets.token_hex(4)}")
        else:
            raise InvalidRequest("otp= is 'static' or 'totp'")
        return ApiKey(
            key.venue,
            key.key_id,
            key.secret,
            scopes=key.scopes,
            environment=key.environment,
            withdraw_addresses=key.withdraw_addresses,
            otp=source,
        )

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        client: str = "127.0.0.1",
    ) -> SimResponse:
        """Answer one request (the shared handler behind every way of serving)."""
        _request_parts(method, target, headers, body, client)
        if target.startswith("/0/"):
            return self.kraken.handle(method, target, headers, body, client)
        return self.dialect.handle(method, target, headers, body, client)

    def transport(self) -> SimTransport:
        """A transport for ``Client(transport=...)`` that calls the handler directly."""
        return SimTransport(self)

    def async_transport(self) -> AsyncSimTransport:
        """The same, for ``AsyncClient(transport=...)``."""
        return AsyncSimTransport(self)

    def serve(self, *, port: int = 0) -> HttpsServer:
        """Start an HTTPS server on 127.0.0.1 with a fresh certificate; returns it running."""
        server = HttpsServer(self.handle, port=port).start()
        self._servers.append(server)
        return server

    def serve_fast(self, *, port: int = 0) -> FastHttpsServer:
        """The same on one asyncio loop: for throughput, not for faults that sleep."""
        from .fast_server import FastHttpsServer

        server = FastHttpsServer(self.handle, port=port).start()
        self._servers.append(server)
        return server

    def serve_ws(self, server: HttpsServer | None = None, *, port: int = 0) -> SimWebSockets:
        """Start the WebSocket streams on 127.0.0.1, with ``server``'s certificates (so the
        same pins pass) when given; returns them running. See :mod:`securetrade.sim.ws`."""
        from .ws import SimWebSockets

        streams = SimWebSockets(
            self, certificates=None if server is None else server.certificates, port=port
        ).start()
        self._streams.append(streams)
        return streams

    def serve_kraken_ws(
        self, server: HttpsServer | None = None, *, port: int = 0
    ) -> KrakenWebSockets:
        """Start Kraken's WebSocket API v2 on 127.0.0.1, with ``server``'s certificates when
        given; returns it running. See :mod:`securetrade.sim.kraken_ws`."""
        from .kraken_ws import KrakenWebSockets

        streams = KrakenWebSockets(
            self, certificates=None if server is None else server.certificates, port=port
        )
        streams.start()
        self._streams.append(streams)
        return streams

    def close(self) -> None:
        """Stop every server this simulator started; ``with`` calls it."""
        for streams in self._streams:
            streams.stop()
        self._streams.clear()
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _request_parts(method: object, target: object, headers: object, body: object,
                   client: object) -> None:  # fmt: skip
    """What :meth:`Simulator.handle` takes, refused here rather than deep in a dialect."""
    text("method", method)
    if not is_text(target) or not target.startswith("/"):
        raise InvalidRequest("target must be the request target: text starting with '/'")
    if not isinstance(headers, dict) or not all(
        type(k) is str and type(v) is str for k, v in headers.items()
    ):
        raise InvalidRequest("headers must be a dict of lower-case header names to values")
    if type(body) is not bytes:
        raise InvalidRequest("body must be the request body as bytes")
    text("client (the caller's address)", client)


def _answer(sim: Simulator, request: HttpRequest) -> HttpResponse:
    instance("request", request, HttpRequest, optional=False)
    headers = {k.lower(): v for k, v in request.headers}
    response = sim.handle(request.method, request.target, headers, request.body)
    if response.drop or response.reset:
        raise TransportFailure("simulated connection loss", sent=True)
    return HttpResponse(response.status, response.headers, response.body)


class SimTransport:
    """In-process: no sockets, same handler."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def send(self, request: HttpRequest) -> HttpResponse:
        """Hand the request to the simulator in this process (no socket); its answer."""
        return _answer(self._sim, request)

    def close(self) -> None:
        """Nothing to release: the simulator runs in this process."""
        pass


class AsyncSimTransport:
    """In-process for asyncio: no sockets, same handler."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Hand the request to the simulator in this process (no socket); its answer."""
        return _answer(self._sim, request)

    async def aclose(self) -> None:
        """Nothing to release: the simulator runs in this process."""
        pass
