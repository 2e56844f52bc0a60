"""The token endpoint: Authlib builds the OAuth 2.0 requests, our pinned transport sends them.

Authlib's protocol functions (``prepare_token_request``) give the exact form bodies RFC
6749 and RFC 7636 define; the bytes then go through :class:`~securetrade.transport.http.
HttpTransport`, so a token request has the same pinned TLS, timeouts and redaction as an
order. Every token in an answer becomes a :class:`~securetrade.keys.Secret` before the
function that read it returns, and errors are raised from frames that hold no token.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

from .._checks import instance, is_text, text
from ..errors import ConnectFailed, InvalidRequest, OAuthError, ReauthorizationRequired
from ..keys.secret import Secret
from ..transport.base import HttpRequest, HttpResponse, Timeout, TransportFailure
from ..transport.http import HttpTransport
from .credential import OAuthCredential

__all__ = ["TokenEndpoint"]

_CLIENT_AUTH = ("client_secret_post", "client_secret_basic")


class _Masked(dict[str, Any]):
    """A parsed token answer: a dict whose repr shows its field names, never values."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<token answer: {', '.join(sorted(self))}>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a token answer cannot be pickled")


def _grant_secret(name: str, value: object) -> None:
    """A code or PKCE verifier: a Secret of printable ASCII (a form field, sent as is)."""
    if not isinstance(value, Secret):
        raise InvalidRequest(f"{name} must be a securetrade.keys.Secret (as the login gives it)")
    raw = value.expose()
    if not raw or not raw.isascii() or not raw.decode("ascii").isprintable():
        raise InvalidRequest(f"{name} must hold printable ASCII (as the login gives it)")


class TokenEndpoint:
    """POSTs grants to one authorization server's token URL over pinned TLS.

    ``ssl_context`` is normally :func:`~securetrade.transport.tls.pinned_ssl_context`;
    ``venue`` names it in spans and errors. ``client_auth`` is how the client secret
    travels: in the form body (``client_secret_post``: Alpaca, Coinbase) or as HTTP Basic
    (``client_secret_basic``: Schwab).
    """

    def __init__(
        self,
        token_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: Timeout | float = 10.0,
        client_auth: str = "client_secret_post",
        venue: str = "oauth",
    ) -> None:
        if client_auth not in _CLIENT_AUTH:
            raise OAuthError(f"client_auth must be one of {', '.join(_CLIENT_AUTH)}")
        parts = urlsplit(text("token_url", token_url))
        self.token_url = token_url
        self.client_auth = client_auth
        self.venue = venue  # for spans and errors
        self._path = parts.path or "/"
        self._transport = HttpTransport(
            f"{parts.scheme}://{parts.netloc}", ssl_context, timeout=timeout
        )

    def close(self) -> None:
        """Close the pinned connection to the token endpoint."""
        self._transport.close()

    def __enter__(self) -> TokenEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchange_code(
        self, credential: OAuthCredential, code: Secret, verifier: Secret, redirect_uri: str
    ) -> Mapping[str, Any]:
        """Trade an authorization code and its PKCE verifier for tokens (RFC 7636 4.5)."""
        instance("credential", credential, OAuthCredential, optional=False)
        _grant_secret("code", code)
        _grant_secret("verifier", verifier)
        if not is_text(redirect_uri) or not redirect_uri.startswith(("https://", "http://")):
            raise InvalidRequest("redirect_uri must be the http(s):// URL the login registered")
        request = self._request(
            credential,
            "authorization_code",
            redirect_uri=redirect_uri,
            code=code,
            code_verifier=verifier,
        )
        return self._tokens(request, refreshing=False)

    def refresh(self, credential: OAuthCredential) -> Mapping[str, Any]:
        """Spend the credential's refresh token (single-use where the server rotates it)."""
        instance("credential", credential, OAuthCredential, optional=False)
        if credential.refresh_token is None:
            raise ReauthorizationRequired(
                f"the {credential.venue} credential has no refresh token; "
                f"run `securetrade oauth login {credential.venue}`",
                venue=credential.venue,
            )
        request = self._request(credential, "refresh_token", refresh_token=credential.refresh_token)
        return self._tokens(request, refreshing=True, venue=credential.venue)

    def _request(
        self, credential: OAuthCredential, grant: str, **fields: str | Secret
    ) -> HttpRequest:
        """The form POST, built by Authlib; Secrets are opened only inside this call."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        opened = _Masked(  # a masked repr: this frame holds the grant's secrets
            (k, v.expose().decode("ascii") if isinstance(v, Secret) else v)
            for k, v in fields.items()
        )
        headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ]
        secret = credential.client_secret
        if self.client_auth == "client_secret_basic" and secret is not None:
            pair = (
                f"{quote(credential.client_id, safe='')}:".encode()
                + quote(secret.expose().decode("utf-8"), safe="").encode()
            )
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
        else:
            opened["client_id"] = credential.client_id
            if secret is not None:
                opened["client_secret"] = secret.expose().decode("utf-8")
        redirect = opened.pop("redirect_uri", None)
        body = prepare_token_request(grant, redirect_uri=redirect, **opened)
        return HttpRequest("POST", self._path, tuple(headers), body.encode("ascii"))

    def _tokens(
        self, request: HttpRequest, *, refreshing: bool, venue: str | None = None
    ) -> Mapping[str, Any]:
        status, answer, failure = self._send(request)
        del request
        if failure is not None:
            raise failure
        if status == 200 and answer is not None and isinstance(answer.get("access_token"), Secret):
            return answer
        error = answer.get("error") if answer is not None else None
        code = error if isinstance(error, str) and error.isprintable() else None
        if refreshing and code == "invalid_grant":
            raise ReauthorizationRequired(
                "the authorization server refused the refresh token (invalid_grant: expired, "
                "revoked or already used); run `securetrade oauth login` again",
                venue=venue,
                code=code,
            )
        raise OAuthError(
            f"the token endpoint answered HTTP {status}"
            + (f" with OAuth error {code}" if code else " without a readable token")
            + "; check the client id, secret and redirect URI registered with the server",
            venue=venue,
            code=code,
        )

    def _send(self, request: HttpRequest) -> tuple[int, _Masked | None, Exception | None]:
        """(status, parsed answer, failure to raise): the raw answer dies in this frame."""
        from ..transport.telemetry import venue_call

        call = venue_call(
            request, venue=self.venue, operation="oauth.token", base_url=self._transport.base_url
        )
        try:
            response = self._transport.send(request)
        except TransportFailure as exc:
            call.end(error=exc)
            return 0, None, ConnectFailed(f"token endpoint unreachable: {exc}", venue=self.venue)
        call.end(status=response.status)
        return response.status, _parse(response), None


def _parse(response: HttpResponse) -> _Masked | None:
    """The JSON object of a token answer with every token wrapped in a Secret."""
    try:
        answer = json.loads(response.body, object_hook=_Masked)
    except (ValueError, RecursionError):
        return None
    if not isinstance(answer, _Masked):
        return None
    for name in ("access_token", "refresh_token", "id_token"):
        value = answer.get(name)
        if isinstance(value, str) and value:
            answer[name] = Secret(value)
        elif name in answer:
            del answer[name]
    for name in ("expires_in", "refresh_expires_in"):
        value = answer.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**9:
            answer.pop(name, None)
    return answer
