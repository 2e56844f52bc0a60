"""A simulated OAuth 2.0 authorization server (and one protected resource), over HTTPS.

It is strict where real servers are lax, so the client is tested against the rules it
must follow anyway:

* ``/authorize`` (GET) demands ``state`` and a PKCE ``S256`` challenge (``plain`` and no
  challenge are refused), and a registered loopback ``redirect_uri``; the resource owner
  approves at once and is redirected (302) with ``code`` and ``state``.
* ``/token`` (POST, form) checks the client (``client_secret_post`` or Basic), and for
  ``authorization_code`` the code's client, redirect URI, expiry (60 s), single use and
  ``code_verifier`` against the stored challenge; for ``refresh_token`` it rotates: every
  refresh token is single-use, and a reused one is ``invalid_grant``.
* ``/v1/me`` answers 200 to a live ``Authorization: Bearer`` token, else 401.

Every grant is for the account of ``resource_owner`` (whoever approves at ``/authorize``),
and the tokens of its refreshes too: a broker's dialect asks :meth:`OAuthServerSim.
account_of` whose a bearer token is (None: unknown, expired or revoked). :meth:`revoke`
plays the account owner withdrawing the app's access token in the broker's dashboard.

``refresh_calls`` counts refresh requests (the oracle of the single-flight test);
``refresh_gate``, when set, holds every refresh until a test opens it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .dialect import SimResponse, json_response
from .server import HttpsServer

__all__ = ["OAuthServerSim"]

_CODE_TTL = 60.0


@dataclass(slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires: float
    account: str
    used: bool = False


@dataclass(slots=True)
class _Refresh:
    client_id: str
    scope: str
    expires: float | None
    account: str
    used: bool = False


@dataclass(slots=True)
class _Access:
    expires: float
    account: str


class OAuthServerSim:
    """The authorization server's state and handler; :meth:`serve` puts it on HTTPS."""

    def __init__(
        self,
        *,
        access_ttl: int = 3600,
        refresh_ttl: int | None = None,
        rotate: bool = True,
        refresh_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.rotate = rotate
        self.refresh_delay = refresh_delay  # a slow server widens the race window
        self.clock = clock
        self._clients: dict[str, bytes] = {}
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}  # token -> expiry and account
        self.resource_owner = "sim-user"  # the account whose owner approves at /authorize
        self.refresh_gate: threading.Event | None = None  # holds refreshes until set
        self.issued: list[str] = []  # every token ever issued (revoked ones too)
        self.held = threading.Event()  # set once a refresh waits at ``refresh_gate``
        self._lock = threading.Lock()
        self.refresh_calls = 0
        self.code_calls = 0
        self.refused: list[str] = []  # OAuth error codes answered, in order

    def register_client(self, client_id: str, client_secret: bytes) -> None:
        with self._lock:
            self._clients[client_id] = client_secret

    def serve(self) -> HttpsServer:
        return HttpsServer(self.handle).start()

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, client: str
    ) -> SimResponse:
        path = urlsplit(target).path
        if path == "/authorize" and method == "GET":
            return self._authorize(dict(parse_qsl(urlsplit(target).query)))
        if path == "/token" and method == "POST":
            return self._token(headers, dict(parse_qsl(body.decode("ascii", "replace"))))
        if path == "/v1/me" and method == "GET":
            return self._me(headers)
        return json_response(404, {"error": "not_found"})

    # --- /authorize -----------------------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> SimResponse:
        client_id, redirect = query.get("client_id", ""), query.get("redirect_uri", "")
        if client_id not in self._clients:
            return self._error(400, "unauthorized_client")
        parts = urlsplit(redirect)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            return self._error(400, "invalid_request")  # loopback redirects only
        if query.get("response_type") != "code" or len(query.get("state", "")) < 16:
            return self._error(400, "invalid_request")
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or len(challenge) != 43:
            return self._error(400, "invalid_request")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Grant(
                client_id,
                redirect,
                challenge,
                query.get("scope", ""),
                self.clock() + _CODE_TTL,
                self.resource_owner,
            )
        location = redirect + "?" + urlencode({"code": code, "state": query["state"]})
        return SimResponse(302, {"location": location}, b"")

    # --- /token ---------------------------------------------------------------------------

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> SimResponse:
        client_id = self._client(headers, form)
        if client_id is None:
            return self._error(401, "invalid_client")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(client_id, form)
        if grant == "refresh_token":
            if self.refresh_delay:
                time.sleep(self.refresh_delay)
            gate = self.refresh_gate
            if gate is not None:
                self.held.set()
            if gate is not None and not gate.wait(timeout=30.0):
                return self._error(503, "temporarily_unavailable")  # nobody opened it
            return self._refresh_grant(client_id, form)
        return self._error(400, "unsupported_grant_type")

    def _client(self, headers: dict[str, str], form: dict[str, str]) -> str | None:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                pair = base64.b64decode(basic[6:], validate=True).decode()
            except ValueError:
                return None
            client_id, _, secret = (unquote(p) for p in pair.partition(":"))
        expected = self._clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected, secret.encode()):
            return None
        return client_id

    def _code_grant(self, client_id: str, form: dict[str, str]) -> SimResponse:
        verifier = form.get("code_verifier", "")
        with self._lock:
            self.code_calls += 1
            grant = self._codes.get(form.get("code", ""))
            if (
                grant is None
                or grant.used
                or grant.expires < self.clock()
                or grant.client_id != client_id
                or grant.redirect_uri != form.get("redirect_uri")
            ):
                return self._error(400, "invalid_grant")
            grant.used = True  # one attempt per code: a thief's failed try burns it too
            digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or not hmac.compare_digest(computed, grant.challenge):
                return self._error(400, "invalid_grant")
            return json_response(200, self._issue(client_id, grant.scope, grant.account))

    def _refresh_grant(self, client_id: str, form: dict[str, str]) -> SimResponse:
        with self._lock:
            self.refresh_calls += 1
            held = self._refresh.get(form.get("refresh_token", ""))
            if (
                held is None
                or held.used
                or held.client_id != client_id
                or (held.expires is not None and held.expires < self.clock())
            ):
                return self._error(400, "invalid_grant")
            if self.rotate:
                held.used = True
            answer = self._issue(client_id, held.scope, held.account, rotate=self.rotate)
            return json_response(200, answer)

    def _issue(
        self, client_id: str, scope: str, account: str, *, rotate: bool = True
    ) -> dict[str, object]:
        """A new access token (and, unless not rotating, a new refresh token); locked."""
        access = secrets.token_urlsafe(32)
        now = self.clock()
        self._access[access] = _Access(now + self.access_ttl, account)
        self.issued.append(access)
        answer: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": scope,
        }
        if rotate:
            refresh = secrets.token_urlsafe(32)
            expires = None if self.refresh_ttl is None else now + self.refresh_ttl
            self._refresh[refresh] = _Refresh(client_id, scope, expires, account)
            self.issued.append(refresh)
            answer["refresh_token"] = refresh
            if self.refresh_ttl is not None:
                answer["refresh_expires_in"] = self.refresh_ttl
        return answer

    def _me(self, headers: dict[str, str]) -> SimResponse:
        value = headers.get("authorization", "")
        token = value[7:] if value.startswith("Bearer ") else ""
        account = self.account_of(token)
        if account is None:
            return json_response(401, {"error": "invalid_token"})
        return json_response(200, {"id": account, "status": "ACTIVE"})

    def account_of(self, token: str) -> str | None:
        """The account a live access token was issued for; None when the token is
        unknown, expired (by this server's clock) or revoked."""
        with self._lock:
            held = self._access.get(token)
        if held is None or held.expires < self.clock():
            return None
        return held.account

    def revoke(self, token: str) -> None:
        """Withdraw an access token (the owner revoking the app's access): from now on
        the resource servers answer 401 to it. Its refresh token stays valid."""
        with self._lock:
            self._access.pop(token, None)

    def revoke_refresh_tokens(self) -> None:
        """The owner removes the app: every refresh token dies (``invalid_grant``)."""
        with self._lock:
            self._refresh.clear()

    def live_tokens(self) -> list[str]:
        """The access tokens that are neither expired nor revoked (for tests)."""
        now = self.clock()
        with self._lock:
            return [t for t, held in self._access.items() if held.expires >= now]

    def _error(self, status: int, code: str) -> SimResponse:
        self.refused.append(code)  # list.append is atomic: callable with or without the lock
        return json_response(status, {"error": code})
