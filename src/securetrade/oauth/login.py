"""The authorization-code login: PKCE S256 and ``state`` always, a loopback-only redirect.

What it guards against, and how:

* a code intercepted on its way back (another app on the machine, a browser extension,
  a log line): useless without the PKCE verifier, which never leaves this process; S256
  always, never ``plain`` (Coinbase's default);
* a forged callback (login CSRF): ``state`` is 256 random bits, compared in constant
  time, required even where the server calls it optional (Alpaca);
* a redirect listener others can reach: bound to ``127.0.0.1`` only, one port chosen by
  the OS, closed after the first matching callback or after ``timeout`` seconds;
* leaks through logs: the callback URL (it holds the code) is never logged, and the
  code and verifier are :class:`~securetrade.keys.Secret` from the moment they exist.
"""

from __future__ import annotations

import hmac
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._checks import instance, seconds, text, whole
from ..errors import InvalidRequest, OAuthError
from ..keys.keystore import KeyStore
from ..keys.secret import Secret
from .credential import OAuthCredential
from .tokens import TokenEndpoint

__all__ = ["AuthorizationRequest", "LoopbackListener", "authorization_request", "login"]

_CALLBACK = "/callback"
_DONE_PAGE = (
    b"<!doctype html><title>securetrade</title>"
    b"<p>Authorization received. You can close this window.</p>"
)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The URL to open in a browser, and the two values only this process knows."""

    url: str
    redirect_uri: str
    state: Secret
    verifier: Secret


def authorization_request(
    credential: OAuthCredential, redirect_uri: str, scope: str = ""
) -> AuthorizationRequest:
    """A fresh authorization URL (built by Authlib) with ``state`` and an S256 challenge."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    instance("credential", credential, OAuthCredential, optional=False)
    text("redirect_uri", redirect_uri)
    text("scope", scope, empty=True)
    state = Secret(secrets.token_urlsafe(32))  # 256 bits
    verifier = Secret(secrets.token_urlsafe(64))  # 86 characters of [A-Za-z0-9_-]
    url = prepare_grant_uri(
        credential.authorize_url,
        credential.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope or credential.scope or None,
        state=state.expose().decode("ascii"),
        code_challenge=create_s256_code_challenge(verifier.expose().decode("ascii")),
        code_challenge_method="S256",
    )
    return AuthorizationRequest(url, redirect_uri, state, verifier)


class _Callback(BaseHTTPRequestHandler):
    server: _LoopbackServer

    def do_GET(self) -> None:  # the http.server hook name
        parts = urlsplit(self.path)
        if parts.path != _CALLBACK:
            self.send_error(404)
            return
        self.server.answers.put(Secret(parts.query or "-"))
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(_DONE_PAGE)))
        self.end_headers()
        self.wfile.write(_DONE_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        """Never: the request line holds the authorization code."""


class _LoopbackServer(HTTPServer):
    answers: queue.Queue[Secret]


class LoopbackListener:
    """Waits for one redirect on ``http://127.0.0.1:<port>/callback``.

    Plain HTTP on loopback is what RFC 8252 prescribes for native apps: the code it
    carries is bound to our PKCE verifier, and the socket is reachable from this machine
    only.
    """

    def __init__(self, *, port: int = 0) -> None:
        whole("port (0 for any free one)", port, 0, 65535)
        try:
            self._server = _LoopbackServer(("127.0.0.1", port), _Callback)
        except OSError as exc:
            raise InvalidRequest(
                f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pass port=0 for a free one"
            ) from None
        self._server.answers = queue.Queue()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="securetrade-oauth-callback", daemon=True
        )
        self._thread.start()

    @property
    def redirect_uri(self) -> str:
        """The loopback URL the authorization server is told to send the browser back to."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{_CALLBACK}"

    def wait(self, timeout: float) -> Secret:
        """The callback's query string (as a Secret: it holds the code)."""
        timeout = seconds("timeout", timeout, above=0)  # None would wait for ever
        try:
            return self._server.answers.get(timeout=timeout)
        except queue.Empty:
            raise OAuthError(
                f"no authorization came back within {timeout:g} s; run the login again "
                "and approve in the browser"
            ) from None

    def close(self) -> None:
        """Stop listening and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def read_callback(query: Secret, state: Secret) -> Secret:
    """The code from a callback query, after checking ``state`` in constant time."""
    fields = dict(parse_qsl(query.expose().decode("ascii", "replace")))
    given = fields.get("state", "").encode()
    if not hmac.compare_digest(given, state.expose()):
        raise OAuthError("the callback's state does not match this login: refused (CSRF?)")
    error = fields.get("error")
    if error is not None:
        code = error if error.isprintable() and len(error) < 64 else "error"
        raise OAuthError(f"the authorization server refused the login ({code})", code=code)
    code_text = fields.pop("code", "")
    if not code_text:
        raise OAuthError("the callback carries no authorization code")
    return Secret(code_text)


def login(
    store: KeyStore,
    name: str,
    credential: OAuthCredential,
    *,
    endpoint: TokenEndpoint,
    open_browser: Callable[[str], object],
    scope: str = "",
    timeout: float = 120.0,
    port: int = 0,
) -> OAuthCredential:
    """Run the whole login and store the credential with its tokens under ``name``.

    ``open_browser`` receives the authorization URL (``webbrowser.open`` for a person; a
    test drives the simulator with it). ``timeout`` bounds the wait for the callback.
    """
    if not 0 < timeout <= 600:
        raise InvalidRequest("timeout must be above 0 and at most 600 seconds")
    listener = LoopbackListener(port=port)
    try:
        request = authorization_request(credential, listener.redirect_uri, scope)
        open_browser(request.url)
        query = listener.wait(timeout)
    finally:
        listener.close()
    code = read_callback(query, request.state)
    del query
    tokens = endpoint.exchange_code(credential, code, request.verifier, request.redirect_uri)
    now = datetime.now(timezone.utc)
    fresh = credential.with_tokens(tokens, now)
    del tokens
    store.put_oauth(name, fresh)
    return fresh
