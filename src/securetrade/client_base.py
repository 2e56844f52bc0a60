"""What ``Client`` and ``AsyncClient`` share: building the layers from their arguments
(venue, key, journal, TLS context, proxy, transport) and the methods that do not depend on
how the effects are driven. The two drivers live in :mod:`securetrade.client`."""

from __future__ import annotations

import os
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _fork
from ._checks import flag, instance, number, safe_repr, text, whole
from .clock import VenueClock
from .core import (
    Core,
    Journal,
    JournalStore,
    Settings,
)
from .errors import InvalidRequest
from .keys import ApiKey, KeyRing, Secret
from .nonce import NonceSource
from .policy import Policy
from .ratelimit import RateLimiter, Usage
from .ratelimit.chart import Limits
from .record import AuditLog
from .transport import (
    AsyncTransport,
    PinSet,
    Proxy,
    Timeout,
    Transport,
    pinned_ssl_context,
)
from .transport.proxy import parse_proxy
from .transport.redaction import install_log_redaction
from .transport.tls import verified_ssl_context
from .venues import Venue, get_venue
from .venues.base import Capabilities

if TYPE_CHECKING:
    pass

__all__ = ["default_journal_path"]

T = TypeVar("T")


async def _asleep(seconds: float) -> None:
    import asyncio  # only async users load it

    await asyncio.sleep(seconds)


async def _in_thread(call: Callable[[], T]) -> T:
    import asyncio

    return await asyncio.to_thread(call)


def default_journal_path(venue: str) -> Path:
    """Where the order journal lives unless one is given: the user's state directory."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "securetrade" / f"journal-{venue}.sqlite3"


TransportT = TypeVar("TransportT", Transport, AsyncTransport)


class _Base(ABC, Generic[TransportT]):
    """Builds the core, the TLS context and the transport; holds no I/O of its own. The
    arguments are documented on :class:`Client`, the public face of both clients."""

    core: Core
    _asynchronous = False  # the async driver's class sets it: its transports are async

    def __init__(
        self,
        key: ApiKey | KeyRing | None = None,
        *,
        venue: str | Venue | None = None,
        base_url: str | None = None,
        pins: PinSet | Mapping[str, list[str]] | None = None,
        cafile: str | None = None,
        cadata: str | None = None,
        journal: str | Path | JournalStore | None = None,
        policy: Policy | None = None,
        limiter: RateLimiter | None = None,
        settings: Settings | None = None,
        audit: AuditLog | None = None,
        nonces: NonceSource | None = None,
        recv_window_ms: int | None = None,
        clock: VenueClock | None = None,
        timeout: float | Timeout = 10.0,
        proxy: str | Proxy | None = None,
        transport: TransportT | None = None,
        unsafe_disable_pinning: bool = False,
        unsafe_allow_withdraw_scope: bool = False,
        unsafe_allow_plain_http: bool = False,
    ) -> None:
        # The fork this client was built in: in a child os.fork() made it refuses every
        # call (see securetrade._fork), its connections and journal being the parent's.
        self._generation = _fork.generation
        # The proxy URL may carry a password: held as a Proxy (its credentials a Secret)
        # before anything else can fail, so that no frame below this one, and this one
        # from here on, holds it as plain text (a traceback's locals, a debugger).
        proxy_url: Secret | None = None
        if proxy is not None:
            try:
                proxy, proxy_url = _held_proxy(proxy)
            except InvalidRequest:
                del proxy  # the refused URL stays out of this frame's locals
                raise
        _check_arguments(
            key=key,
            journal=journal,
            policy=policy,
            limiter=limiter,
            settings=settings,
            audit=audit,
            clock=clock,
            timeout=timeout,
            recv_window_ms=recv_window_ms,
            flags=(unsafe_disable_pinning, unsafe_allow_withdraw_scope, unsafe_allow_plain_http),
            base_url=base_url,
            proxy=proxy,
            nonces=nonces,
            transport=transport,
            closer="aclose" if self._asynchronous else "close",
        )
        if venue is not None and not isinstance(venue, str) and not hasattr(venue, "endpoints"):
            raise InvalidRequest("venue must be a venue name (e.g. 'binance') or a venue adapter")
        if key is None:  # market data only
            if venue is None:
                raise InvalidRequest(
                    "a client without a key reads market data only; name its venue: "
                    "Client(venue='binance', pins=...)"
                )
            named = get_venue(venue) if isinstance(venue, str) else venue
            key = _market_data_key(named.name)
            if journal is None:
                journal = ":memory:"  # it can place nothing: no orders to keep
        chosen = (
            get_venue(key.venue)
            if venue is None
            else (get_venue(venue) if isinstance(venue, str) else venue)
        )
        bind = getattr(chosen, "bind", None)
        if bind is not None:  # a venue with state per client (ccxt): this client's own copy
            chosen = bind(key.environment, base_url=base_url)
        if recv_window_ms is not None:
            chosen = _with_recv_window(chosen, recv_window_ms)
        if journal is None or isinstance(journal, (str, Path)):
            journal = Journal(journal if journal is not None else default_journal_path(chosen.name))
        install_log_redaction()  # covers loggers of modules imported since securetrade was
        self.core = Core(
            chosen,
            key,
            journal=journal,
            limiter=limiter,
            clock=clock or VenueClock(),
            policy=policy,
            audit=audit,
            settings=settings,
            nonces=nonces,
            unsafe_allow_withdraw_scope=unsafe_allow_withdraw_scope,
        )
        opener = getattr(chosen, "open_transport", None)  # a venue with its own HTTP stack
        if transport is None and opener is not None:
            transport = opener(
                _ssl_context(pins, cafile, cadata, unsafe_disable_pinning),
                asynchronous=self._asynchronous,
                timeout=Timeout.coerce(timeout).response,  # ccxt has one timeout per call
                proxy=_ccxt_proxy(proxy, proxy_url),
                unsafe_allow_plain_http=unsafe_allow_plain_http,
            )
        if transport is None:
            transport = self._https(
                _base_url(chosen, self.core.keys.current, base_url),
                _ssl_context(pins, cafile, cadata, unsafe_disable_pinning),
                timeout=timeout,
                proxy=proxy,
                unsafe_allow_plain_http=unsafe_allow_plain_http,
            )
        self._transport: TransportT = transport
        self.core.base_url = getattr(transport, "base_url", None)  # for traces
        self._tls_args = (pins, cafile, cadata, unsafe_disable_pinning)  # for streams
        self._stream_hub: Any = None

    def _here(self) -> None:
        """Raise :class:`~securetrade.errors.InheritedAcrossFork` in a child forked after
        this client was built (each call's first step; an int compare)."""
        if self._generation != _fork.generation:
            raise _fork.refused(type(self).__name__)

    @property
    def _inherited(self) -> bool:
        """Whether this process is a child forked after the client was built: its
        connections are the parent's, to be left alone (a TLS close_notify sent from here
        would end the parent's sessions)."""
        return self._generation != _fork.generation

    def _stream_tls(self) -> ssl.SSLContext:
        """The same pinned TLS context REST uses, for the WebSocket streams."""
        return _ssl_context(*self._tls_args)

    @abstractmethod
    def _https(
        self,
        base_url: str,
        context: ssl.SSLContext,
        *,
        timeout: float | Timeout,
        proxy: Proxy | None,
        unsafe_allow_plain_http: bool,
    ) -> TransportT:
        """The HTTPS transport this driver uses: blocking or asyncio."""

    @property
    def venue(self) -> Venue:
        return self.core.venue

    @property
    def capabilities(self) -> Capabilities:
        """What this venue supports: ``client.capabilities.supports("candles")``,
        ``supports(OrderType.LIMIT)``, ``supports(TimeInForce.FOK)``, ``supports("1h")``."""
        return self.core.capabilities

    @property
    def policy(self) -> Policy:
        return self.core.policy

    @property
    def limiter(self) -> RateLimiter:
        return self.core.limiter

    @property
    def limits(self) -> Limits:
        """The rate-limit windows for a person: ``usage()`` now, ``history()``, and
        ``plot()`` (a chart of each window's occupancy over the last minutes)."""
        return Limits(self.core.limiter)

    def rate_limit_usage(self) -> list[Usage]:
        """Usage of every rate-limit window per scope right now (read from its backend)."""
        return self.core.limiter.usage()

    @property
    def audit(self) -> AuditLog:
        return self.core.audit

    def unresolved(self) -> list[str]:
        """Client order ids whose outcome the venue has not yet confirmed."""
        return self.core.unresolved()

    @property
    def journal(self) -> JournalStore:
        return self.core.journal

    @safe_repr
    def __repr__(self) -> str:
        key = self.core.keys.current
        return f"{type(self).__name__}(venue={self.core.venue.name!r}, key={key!r})"

    @property
    def keys(self) -> KeyRing:
        """The key ring: ``client.keys.rotate(new_key)`` switches keys while running."""
        return self.core.keys


def _held_proxy(proxy: object) -> tuple[Proxy, Secret | None]:
    """``proxy`` as a :class:`Proxy`, and its URL as a Secret when given as one (only a
    ccxt venue, whose HTTP stack takes a URL, reads it back)."""
    if isinstance(proxy, Proxy):
        return proxy, None
    if not isinstance(proxy, str):
        raise InvalidRequest("proxy: give an http://host:port URL or a securetrade Proxy")
    try:
        held = parse_proxy(proxy)
    except InvalidRequest as exc:
        reason = str(exc)  # raised anew below, without this frame's URL or the parser's
    else:
        return held, Secret(proxy)
    del proxy
    raise InvalidRequest(reason)


def _ccxt_proxy(proxy: Proxy | None, url: Secret | None) -> str | None:
    """The proxy URL for a ccxt venue's own HTTP stack (requests, aiohttp)."""
    if proxy is None:
        return None
    if url is None:
        raise InvalidRequest(
            "a ccxt venue takes its proxy as a URL (http://[user:password@]host:port), "
            "not as a Proxy object"
        )
    return url.expose().decode("utf-8")


def _check_arguments(
    *,
    key: Any,
    journal: Any,
    policy: Any,
    limiter: Any,
    settings: Any,
    audit: Any,
    clock: Any,
    timeout: Any,
    recv_window_ms: Any,
    flags: tuple[Any, ...],
    base_url: Any = None,
    proxy: Any = None,
    nonces: Any = None,
    transport: Any = None,
    closer: str = "close",
) -> None:
    """Refuse a wrong argument with a typed error that says what to pass, before the client
    exists (and so before any request): a journal of ``""`` would otherwise be a private
    temporary database, i.e. no durable journal at all."""
    if key is not None and not isinstance(key, (ApiKey, KeyRing)):
        raise InvalidRequest("key must be an ApiKey or a KeyRing (or None for market data only)")
    if isinstance(journal, str) and not journal.strip():
        raise InvalidRequest(
            "journal must name a file (or ':memory:' for a journal that does not outlive "
            "the process); an empty name would keep no durable journal"
        )
    if journal is not None and not isinstance(journal, (str, Path)):
        needed = ("begin", "sending", "settle", "get", "unfinished", "lease")
        if not all(callable(getattr(journal, name, None)) for name in needed):
            raise InvalidRequest(
                "journal must be a path, a Journal, a RedisJournal, or None for the default"
            )
    for name, value, kind in (
        ("policy", policy, Policy),
        ("limiter", limiter, RateLimiter),
        ("settings", settings, Settings),
        ("audit", audit, AuditLog),
        ("clock", clock, VenueClock),
    ):
        instance(name, value, kind)
    if not isinstance(timeout, Timeout):  # a Timeout checked its phases when it was made
        number("timeout", timeout, above=0, most=600)
    if recv_window_ms is not None:
        whole("recv_window_ms", recv_window_ms, 100, 60_000)
    if base_url is not None:
        text("base_url", base_url)
    if proxy is not None and not isinstance(proxy, (str, Proxy)):
        raise InvalidRequest("proxy must be an http://host:port URL or a Proxy (or None)")
    if nonces is not None and not all(
        callable(getattr(nonces, name, None)) for name in ("next", "advance_to")
    ):
        raise InvalidRequest("nonces must be a NonceSource (MemoryNonceSource, ...) or None")
    if transport is not None and not all(
        callable(getattr(transport, name, None)) for name in ("send", closer)
    ):
        raise InvalidRequest(
            f"transport must have send() and {closer}() (such as sim.transport()), or be None "
            "for HTTPS"
        )
    for name, value in zip(
        ("unsafe_disable_pinning", "unsafe_allow_withdraw_scope", "unsafe_allow_plain_http"),
        flags,
        strict=True,
    ):
        flag(name, value)


_MARKET_DATA_KEY_ID = "market-data-only"


def _market_data_key(venue: str) -> ApiKey:
    """The stand-in for the key a market-data client does not have: no scope at all, so
    every call that needs one (anything signed) is a :class:`ScopeError` before any
    byte is sent. Its secret is random, known to no venue, and never used."""
    import base64
    import secrets

    return ApiKey(
        venue,
        _MARKET_DATA_KEY_ID,
        base64.b64encode(secrets.token_bytes(64)),  # Kraken's signer reads base64
        scopes=(),
    )


def _base_url(venue: Venue, key: ApiKey, base_url: str | None) -> str:
    if base_url is not None:
        return base_url
    try:
        return venue.base_urls[key.environment]
    except KeyError:
        raise InvalidRequest(
            f"{venue.name} has no {key.environment.value} URL; pass base_url="
        ) from None


def _ssl_context(
    pins: PinSet | Mapping[str, list[str]] | None,
    cafile: str | None,
    cadata: str | None,
    unsafe_disable_pinning: bool,
) -> ssl.SSLContext:
    if pins is None:
        if not unsafe_disable_pinning:
            raise InvalidRequest(
                "pins are required: pass pins=PinSet({...}) (see `securetrade pins`), or "
                "unsafe_disable_pinning=True to trust any certificate the CAs accept"
            )
        import logging

        logging.getLogger("securetrade").warning(
            "unsafe_disable_pinning: TLS is verified against CAs only, without pins"
        )
        return verified_ssl_context(cafile=cafile, cadata=cadata)  # no SSL_CERT_*, no key log
    pinset = pins if isinstance(pins, PinSet) else PinSet(pins)
    return pinned_ssl_context(pinset, cafile=cafile, cadata=cadata)


def _with_recv_window(venue: Venue, recv_window_ms: int) -> Venue:
    import copy

    clone = copy.copy(venue)
    clone.recv_window_ms = recv_window_ms
    return clone
