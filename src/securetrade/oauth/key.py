"""``OAuthKey``: an :class:`~securetrade.keys.ApiKey` whose requests carry an OAuth access
token instead of a key's secret.

Everything a key does locally still applies (scopes, symbols, notional and quantity
limits, expiry, rotation in a :class:`~securetrade.keys.KeyRing`); only the request
authentication differs: a venue that takes OAuth (``Alpaca``) signs with ``Authorization:
Bearer <token>`` from the key's :class:`~securetrade.oauth.TokenSource`, which the request
pipeline renews ahead of expiry and after a 401. A venue that does not refuses the key
before anything is sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from ..errors import InvalidRequest
from ..keys.apikey import ApiKey, Environment, KeyKind, Scope
from ..keys.secret import Secret
from .session import TokenSource

__all__ = ["OAuthKey"]


class OAuthKey(ApiKey):
    """The key of an OAuth credential: ``OAuthKey(TokenSource(store, "alpaca"), scopes=...)``.

    ``scopes`` are what this client may do locally (at most what the token was granted at
    the venue: a ``trading`` grant covers read, trade and cancel). The key id is
    ``oauth-<name>``, stable across processes, so client order ids derive the same way
    in every process that shares the credential. The key holds no secret of its own:
    ``secret`` is a random stand-in no venue knows, never sent.
    """

    __slots__ = ("source",)

    source: TokenSource

    def __init__(
        self,
        source: TokenSource,
        *,
        scopes: Iterable[Scope | str] = (Scope.READ,),
        environment: Environment | str | None = None,
        symbols: Iterable[str] | None = None,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        if not isinstance(source, TokenSource):
            raise InvalidRequest("OAuthKey needs a securetrade.oauth.TokenSource")
        object.__setattr__(self, "source", source)
        super().__init__(
            source.venue,
            f"oauth-{source.name}",
            Secret(secrets.token_bytes(32)),
            scopes=scopes,
            kind=KeyKind.HMAC,
            environment=environment,
            symbols=symbols,
            max_notional=max_notional,
            max_quantity=max_quantity,
            expires_at=expires_at,
        )

    def __repr__(self) -> str:
        if not hasattr(self, "environment"):
            return "OAuthKey(<incomplete>)"
        scopes = ",".join(sorted(s.value for s in self.scopes))
        return (
            f"OAuthKey(venue={self.venue!r}, credential={self.source.name!r}, "
            f"environment={self.environment.value}, scopes=[{scopes}])"
        )

    def restrict(
        self,
        *,
        scopes: Iterable[Scope | str] | None = None,
        symbols: Iterable[str] | None = None,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        expires_at: datetime | None = None,
    ) -> OAuthKey:
        """A narrower copy with the same token source (widening raises ScopeError)."""
        narrow = ApiKey.restrict(
            self,
            scopes=scopes,
            symbols=symbols,
            max_notional=max_notional,
            max_quantity=max_quantity,
            expires_at=expires_at,
        )
        return OAuthKey(
            self.source,
            scopes=narrow.scopes,
            environment=narrow.environment,
            symbols=narrow.symbols,
            max_notional=narrow.max_notional,
            max_quantity=narrow.max_quantity,
            expires_at=narrow.expires_at,
        )
