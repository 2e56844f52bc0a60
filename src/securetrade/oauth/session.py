"""A live access token, refreshed before it expires, once, whatever the number of processes.

Rotating refresh tokens (Coinbase, most OIDC servers) are single-use: two processes that
both refresh with the same one leave one of them holding a dead token. So a refresh is
single-flight per credential across processes: take an exclusive lock on a file beside the
keystore, re-read the credential, refresh only if it is *still* stale, write it back, and
release. The other processes, blocked on the lock, then read the fresh token and make no
call at all.

Inside one process the clients' request pipelines never refresh in the middle of building a
request: they ask :meth:`TokenSource.due` (memory only) and, when it says so, yield a
``Renew`` effect. The sync client calls :meth:`TokenSource.renew`; the async client awaits
:meth:`TokenSource.arenew`, which runs that same refresh in a worker thread, one per
credential at a time (the tasks that also need it await the one in flight), so the event
loop keeps running while the authorization server answers.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, ReauthorizationRequired
from ..keys.keystore import KeyStore
from ..keys.secret import Secret
from ..signing.signers import SecretHolder
from .credential import OAuthCredential
from .tokens import TokenEndpoint

if TYPE_CHECKING:
    import asyncio

__all__ = ["BearerSigner", "TokenSource"]

DEFAULT_MARGIN = timedelta(seconds=60)
DEFAULT_WARNING = timedelta(hours=24)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TokenSource:
    """The access token of the keystore's OAuth credential ``name``, always usable.

    ``margin``: refresh this long before the access token expires. ``warning``: raise
    :class:`~securetrade.errors.ReauthorizationRequired` this long before the refresh
    token's hard expiry (Schwab's weekly login), so a person logs in at a chosen time
    instead of the bot failing at an arbitrary one. ``endpoint`` sends the refresh; by
    default one over the platform's trust store, normally a pinned one.
    """

    def __init__(
        self,
        store: KeyStore,
        name: str,
        *,
        endpoint: TokenEndpoint | None = None,
        margin: timedelta = DEFAULT_MARGIN,
        warning: timedelta = DEFAULT_WARNING,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not isinstance(store, KeyStore):
            raise InvalidRequest("TokenSource needs an open securetrade.keys.KeyStore")
        if margin < timedelta(0) or warning < timedelta(0):
            raise InvalidRequest("margin and warning must not be negative")
        self._store = store
        self._name = name
        self._margin = margin
        self._warning = warning
        self._clock = clock
        credential = store.oauth(name)  # refuses an unknown name now, not at the first order
        self._endpoint = endpoint or TokenEndpoint(credential.token_url, venue=credential.venue)
        self._cached: OAuthCredential | None = credential
        self._lock = threading.Lock()
        self._lock_path = store.path.with_name(f"{store.path.name}.oauth-{name}.lock")
        self._refused: Secret | None = None  # the access token a venue answered 401 to
        self._flights: dict[asyncio.AbstractEventLoop, asyncio.Future[Any]] = {}
        self.venue = credential.venue
        self.name = name

    def __repr__(self) -> str:
        return f"TokenSource({self._name!r}, venue={self.venue!r})"

    def token(self) -> Secret:
        """The current access token, refreshed first if it expires within the margin."""
        now = self._clock()
        credential = self._cached
        if credential is None or self._stale(credential, now):
            credential = self._refresh(now)
        self._check_expiry(credential, now)
        assert credential.access_token is not None  # stale() is False, or _refresh set it
        return credential.access_token

    def due(self) -> bool:
        """Whether the next request needs :meth:`renew` first: the token expires within
        the margin, a venue refused it, or the refresh token's hard expiry is inside the
        warning window (then :meth:`renew` raises ReauthorizationRequired, as
        :meth:`token` does). Reads memory only (no file, no network)."""
        credential = self._cached
        if credential is None:
            return True
        now = self._clock()
        hard = credential.refresh_expires_at
        return self._stale(credential, now) or (hard is not None and now >= hard - self._warning)

    def current(self) -> Secret:
        """The access token as held now, without refreshing (the pipeline renews first,
        when :meth:`due`); refreshed here only when there is none at all."""
        credential = self._cached
        if credential is None or credential.access_token is None:
            return self.token()
        return credential.access_token

    def refused(self, token: Secret) -> None:
        """A venue answered 401 to ``token``: the next request renews first, even though
        its stated expiry has not come (revoked, or the server's clock is ahead)."""
        if not isinstance(token, Secret):  # compared with ours next: no caller's ==
            raise InvalidRequest("token must be the Secret the venue refused")
        credential = self._cached
        if credential is not None and credential.access_token == token:
            self._refused = token

    def renew(self) -> None:
        """Refresh now if still needed, once across threads and processes: under the
        lock, the stored credential is read again, and whoever refreshed first is
        followed (no second call)."""
        self.token()

    async def arenew(self) -> None:
        """:meth:`renew` for an event loop: the refresh runs in a worker thread, and the
        tasks of this loop that need it meanwhile await the same one."""
        import asyncio

        loop = asyncio.get_running_loop()
        flight = self._flights.get(loop)
        if flight is None or flight.done():
            flight = loop.create_task(asyncio.to_thread(self.renew))
            self._flights[loop] = flight
            flight.add_done_callback(lambda done: self._landed(loop, done))
        await asyncio.shield(flight)

    def _landed(self, loop: asyncio.AbstractEventLoop, flight: asyncio.Future[Any]) -> None:
        if self._flights.get(loop) is flight:
            del self._flights[loop]
        if not flight.cancelled():
            flight.exception()  # retrieved: each awaiting task raises it itself

    def _stale(self, credential: OAuthCredential, now: datetime) -> bool:
        refused = self._refused
        if refused is not None and credential.access_token == refused:
            return True
        return credential.stale(now, self._margin)

    def credential(self) -> OAuthCredential:
        """The credential as last read or written by this source."""
        return self._cached or self._store.oauth(self._name)

    def _refresh(self, now: datetime) -> OAuthCredential:
        with self._lock, _exclusive(self._lock_path):
            credential = self._store.oauth(self._name)  # what the last refresher wrote
            if self._stale(credential, now):
                self._check_expiry(credential, now, refreshing=True)
                tokens = self._endpoint.refresh(credential)
                credential = credential.with_tokens(tokens, self._clock())
                del tokens
                self._store.put_oauth(self._name, credential)
            self._cached = credential
            self._refused = None
            return credential

    def _check_expiry(
        self, credential: OAuthCredential, now: datetime, *, refreshing: bool = False
    ) -> None:
        hard = credential.refresh_expires_at
        if hard is not None and now >= hard - self._warning:
            raise ReauthorizationRequired(
                f"the {credential.venue} OAuth credential {self._name!r} can be renewed only "
                f"until {hard.isoformat()} (warning window {self._warning}); run "
                f"`securetrade oauth login {credential.venue} --name {self._name}`",
                venue=credential.venue,
                expires_at=hard,
            )
        if refreshing and credential.refresh_token is None:
            raise ReauthorizationRequired(
                f"the {credential.venue} access token expires and the server gave no refresh "
                f"token; run `securetrade oauth login {credential.venue} --name {self._name}`",
                venue=credential.venue,
                expires_at=credential.expires_at,
            )


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created 0600) for the block."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class BearerSigner(SecretHolder):
    """The signer of a venue whose requests carry ``Authorization: Bearer <token>``.

    A venue's ``signer(key)`` returns one, and its ``prepare`` adds :meth:`header` to the
    request: the token is refreshed there if it is about to expire, so the request that
    goes out always carries a live one.
    """

    __slots__ = ("_source",)

    def __init__(self, source: TokenSource) -> None:
        if not isinstance(source, TokenSource):
            raise InvalidRequest("BearerSigner needs a securetrade.oauth.TokenSource")
        self._source = source

    def sign(self, payload: bytes) -> str:
        """The ``Authorization`` value; the payload is not signed (a bearer token is not a
        signature: TLS protects the request)."""
        return "Bearer " + self._source.token().expose().decode("ascii")

    def header(self) -> tuple[str, str]:
        """``("Authorization", "Bearer <token>")``, for a request's headers."""
        return ("Authorization", self.sign(b""))

    def headers(self, key_id: str) -> tuple[tuple[str, str], ...]:
        """The headers of a venue request (:class:`~securetrade.signing.presented.
        HeaderAuth`): the token as held, never refreshed here (the pipeline renews it
        before it builds the request, off the event loop for the async client)."""
        return (("Authorization", "Bearer " + self._source.current().expose().decode("ascii")),)

    @property
    def renewable(self) -> TokenSource:
        """The source the pipeline renews before a request when it is :meth:`~TokenSource.
        due`, and tells when a venue refused its token."""
        return self._source
