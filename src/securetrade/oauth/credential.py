"""``OAuthCredential``: an OAuth 2.0 client and its tokens, as the keystore keeps them.

The client secret and both tokens are :class:`~securetrade.keys.Secret` from the moment
they are read (a token response, the keystore), so no repr, log line, span or traceback
with its locals shows them. The record written into the keystore is a ``_Plain``-style
dict inside the encrypted document: tokens are never written in plain anywhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from urllib.parse import urlsplit

from ..errors import InvalidRequest
from ..keys.secret import Secret

__all__ = ["OAuthCredential", "credential_from_record", "credential_record"]


@dataclass(frozen=True, slots=True)
class OAuthCredential:
    """One OAuth client registration at one authorization server, and its current tokens.

    ``expires_at`` is the access token's expiry; ``refresh_expires_at`` the refresh
    token's hard expiry when the server states one (Schwab's 7 days, Coinbase's 1.5
    years): past it, a person must log in again.
    """

    venue: str
    client_id: str
    token_url: str
    authorize_url: str
    client_secret: Secret | None = None
    access_token: Secret | None = None
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    scope: str = ""
    obtained_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.venue, str) or not self.venue or not self.venue.isprintable():
            raise InvalidRequest("an OAuth credential needs a venue name")
        if not isinstance(self.client_id, str) or not self.client_id.isprintable():
            raise InvalidRequest("an OAuth credential needs the client id its server issued")
        for name in ("token_url", "authorize_url"):
            _check_https(name, getattr(self, name))
        for name in ("client_secret", "access_token", "refresh_token"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Secret):
                raise InvalidRequest(f"{name} must be a securetrade.keys.Secret")
        for name in ("expires_at", "refresh_expires_at", "obtained_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidRequest(f"{name} must be a timezone-aware datetime")

    def stale(self, now: datetime, margin: timedelta) -> bool:
        """Whether the access token is missing or expires within ``margin`` of ``now``."""
        if self.access_token is None:
            return True
        return self.expires_at is not None and self.expires_at - margin <= now

    def with_tokens(self, tokens: Mapping[str, Any], now: datetime) -> OAuthCredential:
        """This credential after a token response (already parsed: tokens are Secrets).

        A server that does not rotate the refresh token leaves the old one in place; one
        that states no expiry leaves ``expires_at`` unknown (None)."""
        if not isinstance(tokens, Mapping) or not isinstance(tokens.get("access_token"), Secret):
            raise InvalidRequest(
                "tokens must be a parsed token response: a mapping whose access_token is a "
                "Secret (as TokenEndpoint returns it)"
            )
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise InvalidRequest("now must be a timezone-aware datetime (UTC)")
        for field in ("expires_in", "refresh_expires_in"):
            seconds = tokens.get(field)
            if seconds is not None and not (
                type(seconds) in (int, float) and 0 <= seconds <= 10**9  # a float NaN fails too
            ):
                raise InvalidRequest(f"{field} must be a number of seconds (or absent)")
        for field in ("refresh_token",):
            if tokens.get(field) is not None and not isinstance(tokens[field], Secret):
                raise InvalidRequest(f"{field} must be a Secret (or absent)")
        expires_in = tokens.get("expires_in")
        refresh_in = tokens.get("refresh_expires_in")
        return replace(
            self,
            access_token=tokens["access_token"],
            refresh_token=tokens.get("refresh_token") or self.refresh_token,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            refresh_expires_at=self.refresh_expires_at
            if refresh_in is None
            else now + timedelta(seconds=refresh_in),
            scope=str(tokens.get("scope") or self.scope),
            obtained_at=now,
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("an OAuthCredential cannot be pickled; it lives in the keystore")


def _check_https(name: str, url: object) -> None:
    """HTTPS only: a token sent over plain HTTP is a token given away."""
    if not isinstance(url, str):
        raise InvalidRequest(f"{name} must be an https:// URL")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise InvalidRequest(f"{name} must be an https:// URL without query or fragment")


# --- the keystore record ---------------------------------------------------------------------


def credential_record(credential: OAuthCredential) -> dict[str, Any]:
    """The fields the keystore encrypts, secrets as base64 of their bytes."""

    def secret(value: Secret | None) -> str | None:
        return None if value is None else base64.b64encode(value.expose()).decode("ascii")

    def moment(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(timezone.utc).isoformat()

    return {
        "venue": credential.venue,
        "client_id": credential.client_id,
        "token_url": credential.token_url,
        "authorize_url": credential.authorize_url,
        "client_secret": secret(credential.client_secret),
        "access_token": secret(credential.access_token),
        "refresh_token": secret(credential.refresh_token),
        "expires_at": moment(credential.expires_at),
        "refresh_expires_at": moment(credential.refresh_expires_at),
        "scope": credential.scope,
        "obtained_at": moment(credential.obtained_at),
    }


def credential_from_record(record: Mapping[str, Any]) -> OAuthCredential | None:
    """The credential a record describes, or None when it is malformed (the caller raises
    :class:`~securetrade.errors.KeystoreTampered` outside any ``except``)."""
    try:
        return OAuthCredential(
            venue=str(record["venue"]),
            client_id=str(record["client_id"]),
            token_url=str(record["token_url"]),
            authorize_url=str(record["authorize_url"]),
            client_secret=_secret(record["client_secret"]),
            access_token=_secret(record["access_token"]),
            refresh_token=_secret(record["refresh_token"]),
            expires_at=_moment(record["expires_at"]),
            refresh_expires_at=_moment(record["refresh_expires_at"]),
            scope=str(record["scope"]),
            obtained_at=_moment(record["obtained_at"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


def _secret(text: Any) -> Secret | None:
    return None if text is None else Secret(base64.b64decode(text, validate=True))


def _moment(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
