"""OAuth 2.0 against the simulated authorization server over real TLS on 127.0.0.1.

Login with PKCE S256 and state through a loopback redirect, tokens encrypted in the
keystore, refresh single-flight across processes, hard-expiry warnings, and no token in
logs, spans, reprs or tracebacks rendered with their locals.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from securetrade.errors import OAuthError, ReauthorizationRequired, SecureTradeError
from securetrade.keys import KdfParams, KeyStore, Secret
from securetrade.oauth import (
    BearerSigner,
    OAuthCredential,
    TokenEndpoint,
    TokenSource,
    authorization_request,
    login,
)
from securetrade.oauth.login import LoopbackListener, read_callback
from securetrade.sim.oauth import OAuthServerSim
from securetrade.sim.server import HttpsServer
from securetrade.transport.base import HttpRequest
from securetrade.transport.http import HttpTransport
from securetrade.transport.redaction import install_log_redaction
from securetrade.transport.tls import PinSet, pinned_ssl_context

CHEAP_KDF = KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)
PASSPHRASE = b"correct horse battery"
CLIENT_SECRET = secrets.token_urlsafe(24).encode()  # made per run: nothing to leak


@pytest.fixture
def auth() -> OAuthServerSim:
    server = OAuthServerSim(access_ttl=3600)
    server.register_client("bot-client", CLIENT_SECRET)
    return server


@pytest.fixture
def served(auth: OAuthServerSim) -> Iterator[HttpsServer]:
    running = auth.serve()
    yield running
    running.stop()


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.create(tmp_path / "keys.json.enc", PASSPHRASE, kdf=CHEAP_KDF)


def _context(served: HttpsServer) -> Any:
    return pinned_ssl_context(PinSet(served.pins), cadata=served.ca_pem)


def _credential(served: HttpsServer) -> OAuthCredential:
    return OAuthCredential(
        venue="simbroker",
        client_id="bot-client",
        client_secret=Secret(CLIENT_SECRET),
        token_url=served.base_url + "/token",
        authorize_url=served.base_url + "/authorize",
        scope="trading",
    )


_OPEN: list[TokenEndpoint] = []


@pytest.fixture(autouse=True)
def _close_endpoints() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _endpoint(served: HttpsServer) -> TokenEndpoint:
    endpoint = TokenEndpoint(
        served.base_url + "/token", ssl_context=_context(served), venue="simbroker"
    )
    _OPEN.append(endpoint)
    return endpoint


def _browser(served: HttpsServer, *, deliver: bool = True) -> Callable[[str], str]:
    """The user agent: asks /authorize (the owner approves), follows the redirect to the
    loopback listener. Returns the redirect location it was given."""

    def open_url(url: str) -> str:
        with httpx.Client(verify=_context(served)) as agent:
            answer = agent.get(url)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        if deliver:
            httpx.get(location)
        return location

    return open_url


def _login(store: KeyStore, served: HttpsServer, name: str = "broker") -> OAuthCredential:
    return login(
        store,
        name,
        _credential(served),
        endpoint=_endpoint(served),
        open_browser=_browser(served),
        timeout=10,
    )


def _me(served: HttpsServer, signer: BearerSigner) -> int:
    transport = HttpTransport(served.base_url, _context(served))
    try:
        return transport.send(HttpRequest("GET", "/v1/me", (signer.header(),))).status
    finally:
        transport.close()


def _issued(auth: OAuthServerSim) -> list[str]:
    """Every token and code the server ever issued."""
    return [*auth._access, *auth._refresh, *auth._codes]


# --- login ---------------------------------------------------------------------------------------


def test_login_stores_tokens_encrypted_and_the_bearer_reaches_the_resource(
    auth: OAuthServerSim, served: HttpsServer, store: KeyStore
) -> None:
    credential = _login(store, served)
    assert credential.access_token is not None
    assert credential.refresh_token is not None
    assert auth.code_calls == 1
    on_disk = store.path.read_bytes()
    for token in _issued(auth):
        assert token.encode() not in on_disk
    assert CLIENT_SECRET not in on_disk
    source = TokenSource(store, "broker", endpoint=_endpoint(served))
    assert _me(served, BearerSigner(source)) == 200
    assert auth.refresh_calls == 0  # the token was fresh: no refresh
    assert store.names() == []  # an OAuth credential is not an API key


def test_the_authorization_url_always_carries_s256_and_state(
    served: HttpsServer,
) -> None:
    request = authorization_request(_credential(served), "http://127.0.0.1:9/callback")
    assert "code_challenge_method=S256" in request.url
    assert "state=" in request.url
    assert len(request.state) >= 32
    assert request.verifier.expose().decode() not in request.url


def test_a_stolen_code_without_the_verifier_is_refused(
    auth: OAuthServerSim, served: HttpsServer
) -> None:
    credential = _credential(served)
    listener = LoopbackListener()
    try:
        request = authorization_request(credential, listener.redirect_uri)
        location = _browser(served, deliver=False)(request.url)  # the thief reads the redirect
    finally:
        listener.close()
    code = read_callback(Secret(location.split("?", 1)[1]), request.state)
    wrong = Secret("x" * 86)  # the thief does not have the verifier
    with _endpoint(served) as endpoint, pytest.raises(OAuthError) as refused:
        endpoint.exchange_code(credential, code, wrong, request.redirect_uri)
    assert refused.value.code == "invalid_grant"
    # The failed attempt burned the code: the verifier's owner cannot be raced with it.
    with _endpoint(served) as endpoint, pytest.raises(OAuthError):
        endpoint.exchange_code(credential, code, request.verifier, request.redirect_uri)
    assert auth.refused == ["invalid_grant", "invalid_grant"]
    assert auth._access == {}  # no token was ever issued


def test_a_forged_callback_with_another_state_is_refused(served: HttpsServer) -> None:
    request = authorization_request(_credential(served), "http://127.0.0.1:9/callback")
    with pytest.raises(OAuthError, match="state"):
        read_callback(Secret("code=abc&state=forged"), request.state)


def test_the_listener_gives_up_after_its_timeout(served: HttpsServer, store: KeyStore) -> None:
    with pytest.raises(OAuthError, match="within"):
        login(
            store,
            "broker",
            _credential(served),
            endpoint=_endpoint(served),
            open_browser=lambda url: None,  # nobody approves
            timeout=0.2,
        )


def test_the_listener_binds_loopback_only() -> None:
    listener = LoopbackListener()
    try:
        assert listener.redirect_uri.startswith("http://127.0.0.1:")
        assert listener._server.server_address[0] == "127.0.0.1"
    finally:
        listener.close()


# --- refresh -------------------------------------------------------------------------------------


def _expire(store: KeyStore, name: str = "broker") -> None:
    credential = store.oauth(name)
    store.put_oauth(
        name, replace(credential, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    )


def test_a_stale_token_is_refreshed_and_the_rotated_pair_is_stored(
    auth: OAuthServerSim, served: HttpsServer, store: KeyStore
) -> None:
    first = _login(store, served)
    _expire(store)
    source = TokenSource(store, "broker", endpoint=_endpoint(served))
    token = source.token()
    assert auth.refresh_calls == 1
    assert token != first.access_token
    stored = store.oauth("broker")
    assert stored.access_token == token
    assert stored.refresh_token != first.refresh_token
    assert source.token() == token
    assert auth.refresh_calls == 1


def test_a_reused_rotated_refresh_token_asks_for_a_new_login(
    auth: OAuthServerSim, served: HttpsServer, store: KeyStore
) -> None:
    old = _login(store, served)
    _expire(store)
    TokenSource(store, "broker", endpoint=_endpoint(served)).token()
    # A backup restored, or a second copy of the keystore: it holds the spent token.
    store.put_oauth("broker", replace(old, expires_at=datetime.now(timezone.utc)))
    source = TokenSource(store, "broker", endpoint=_endpoint(served))
    with pytest.raises(ReauthorizationRequired, match="oauth login"):
        source.token()
    assert auth.refused == ["invalid_grant"]


def test_reauthorization_is_required_ahead_of_the_hard_expiry(
    served: HttpsServer, store: KeyStore, auth: OAuthServerSim
) -> None:
    auth.refresh_ttl = 3600  # the refresh token dies in an hour
    _expire_soon = _login(store, served)
    assert _expire_soon.refresh_expires_at is not None
    early = TokenSource(store, "broker", endpoint=_endpoint(served), warning=timedelta(hours=2))
    with pytest.raises(ReauthorizationRequired) as raised:
        early.token()
    assert raised.value.expires_at == _expire_soon.refresh_expires_at
    relaxed = TokenSource(store, "broker", endpoint=_endpoint(served), warning=timedelta(minutes=5))
    assert relaxed.token() == _expire_soon.access_token
    assert auth.refresh_calls == 0


def test_eight_processes_refreshing_one_credential_make_one_refresh_call(
    auth: OAuthServerSim, served: HttpsServer, store: KeyStore, tmp_path: Path
) -> None:
    _login(store, served)
    _expire(store)
    auth.refresh_delay = 0.3  # every process reaches the lock while the refresh is out
    pass_file = tmp_path / "pass"
    pass_file.write_bytes(PASSPHRASE)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(served.ca_pem)
    go = tmp_path / "go"
    child = Path(__file__).with_name("oauth_child.py")
    argv = [
        sys.executable,
        str(child),
        str(store.path),
        str(pass_file),
        "broker",
        served.base_url,
        str(ca_file),
        ",".join(served.pins[served.host]),
        str(go),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(8)
    ]
    go.touch()
    results = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0] * 8, [r[1][-500:] for r in results]
    assert [r[0].strip() for r in results] == [b"200"] * 8
    assert auth.refresh_calls == 1
    assert auth.refused == []


# --- no token anywhere ---------------------------------------------------------------------------


def _rendered(exc: BaseException) -> str:
    parts: list[str] = []
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        rendering = traceback.TracebackException.from_exception(current, capture_locals=True)
        parts += ["".join(rendering.format()), repr(current), str(current)]
        todo += [current.__cause__, current.__context__]
    return "\n".join(parts)


def test_no_token_in_debug_logs_spans_reprs_or_tracebacks(
    auth: OAuthServerSim,
    served: HttpsServer,
    store: KeyStore,
    caplog: pytest.LogCaptureFixture,
    span_exporter: Any,
) -> None:
    install_log_redaction()
    span_exporter.clear()
    caplog.set_level(logging.DEBUG)
    first = _login(store, served)
    _expire(store)
    source = TokenSource(store, "broker", endpoint=_endpoint(served))
    signer = BearerSigner(source)
    assert _me(served, signer) == 200
    fresh = store.oauth("broker")
    # A refresh with the spent token fails: render that failure with every local.
    store.put_oauth("broker", replace(first, expires_at=datetime.now(timezone.utc)))
    failure: SecureTradeError | None = None
    try:
        TokenSource(store, "broker", endpoint=_endpoint(served)).token()
    except ReauthorizationRequired as exc:
        failure = exc
    assert failure is not None
    spans = span_exporter.get_finished_spans()
    assert any(s.attributes.get("securetrade.operation") == "oauth.token" for s in spans)
    # httpx plays the browser here (the person's user agent, not securetrade): its own
    # log of the redirect it followed is the browser's history, so it is left out.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("securetrade") for r in ours)  # the exchanges were logged
    texts = [
        "\n".join(caplog.handler.format(r) for r in ours),
        "\n".join(f"{s.name} {dict(s.attributes)} {s.events}" for s in spans),
        _rendered(failure),
        repr(first),
        repr(fresh),
        repr(source),
        repr(signer),
        str(vars(store)),
    ]
    secrets_seen = [*_issued(auth), CLIENT_SECRET.decode()]
    assert len(secrets_seen) >= 5
    for text in texts:
        for value in secrets_seen:
            assert value not in text, "a token leaked"


def test_a_credential_refuses_plain_http_and_pickling(served: HttpsServer) -> None:
    import pickle

    with pytest.raises(SecureTradeError, match="https"):
        replace(_credential(served), token_url="http://127.0.0.1/token")
    with pytest.raises(TypeError):
        pickle.dumps(_credential(served))
