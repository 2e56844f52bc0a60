"""The gateway against real clients over real sockets: uvicorn on 127.0.0.1, httpx and raw
sockets as the senders. Each refusal is checked for its status, its fixed body and the
security event it reported; each acceptance for the body reaching the app untouched."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_app import build, key_secret
from gateway_server import ThreadServer
from securetrade.gateway import GatewayAuth, GatewayMonitor, Limit, Lockout, SecurityEvent
from securetrade.keys import KeyKind, Secret
from securetrade.verify import MessageSigner

PROBLEM_401 = b'{"type":"about:blank","title":"Unauthorized","status":401}'


def signal(**changes: Any) -> bytes:
    body = {
        "venue": "binance",
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit",
        "quantity": "0.010",
        "price": "60000.5",
        "signal_id": "sig-" + secrets.token_hex(4),
        "leader": "leader-1",
        "issued_at": "2026-01-02T03:04:05Z",
        **changes,
    }
    return json.dumps(body).encode()


class Gateway:
    """A running gateway, its security events, and signing clients."""

    def __init__(self, server: ThreadServer, master: bytes, monitor: GatewayMonitor) -> None:
        self.server = server
        self.url = server.url
        self.master = master
        self.events: list[SecurityEvent] = []
        monitor.subscribe(self.events.append)

    def signer(self, key_id: str = "acme:leader-1") -> MessageSigner:
        return MessageSigner(key_id, key_secret(self.master, key_id))

    def client(self, key_id: str = "acme:leader-1", **options: Any) -> httpx.Client:
        auth = GatewayAuth(key_id, key_secret(self.master, key_id))
        return httpx.Client(base_url=self.url, auth=auth, timeout=10, **options)

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


@pytest.fixture
def master() -> bytes:
    return secrets.token_bytes(32)


def serve(master: bytes, **options: Any) -> Iterator[Gateway]:
    monitor = GatewayMonitor()
    with ThreadServer(build(master, monitor=monitor, **options)) as server:
        yield Gateway(server, master, monitor)


@pytest.fixture
def gateway(master: bytes) -> Iterator[Gateway]:
    yield from serve(master)


# --- accepted -------------------------------------------------------------------------------


def test_valid_signed_request_reaches_the_app_with_its_principal_and_body_untouched(
    gateway: Gateway,
) -> None:
    body = signal(quantity="0.0100")
    with gateway.client() as client:
        response = client.post("/signals", content=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["key_id"] == "acme:leader-1"
    assert answer["tenant"] == "acme"
    assert answer["quantity"] == "0.0100"  # a Decimal, as the sender wrote it
    assert answer["sha256"] == __import__("hashlib").sha256(body).hexdigest()
    assert response.headers["ratelimit-limit"] == "100"
    assert response.headers["ratelimit-policy"] == "100;w=1"
    assert gateway.events == []


def test_chunked_body_without_content_length_is_verified_and_replayed(gateway: Gateway) -> None:
    body = b"".join(bytes([i % 251]) for i in range(10_000))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    signer = gateway.signer()
    headers = signer.headers("PUT", "/echo?x=1", body)
    with httpx.Client(base_url=gateway.url) as client:
        response = client.put("/echo?x=1", content=chunks(), headers=headers)
    assert response.status_code == 200
    assert response.content == body


def test_async_client_signs_the_same_scheme(gateway: Gateway) -> None:
    import asyncio

    async def main() -> list[int]:
        auth = GatewayAuth("acme:leader-1", key_secret(gateway.master, "acme:leader-1"))
        async with httpx.AsyncClient(base_url=gateway.url, auth=auth) as client:
            answers = await asyncio.gather(
                *(client.post("/echo", content=b"n%d" % i) for i in range(5))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [200] * 5


def test_ed25519_sender_is_verified_with_its_public_key_only(master: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from gateway_app import ROUTES, starlette_app
    from securetrade.gateway import GatewayKey, GatewayMiddleware, KeyRegistry

    def pem(key: Ed25519PrivateKey) -> Secret:
        return Secret(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))

    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keys = KeyRegistry(
        [GatewayKey.ed25519("ed:bot", public, tenant="ed", scopes=["signals:write"])]
    )
    app = GatewayMiddleware(starlette_app(), keys=keys, routes=ROUTES)
    with ThreadServer(app) as server:
        auth = GatewayAuth("ed:bot", pem(private), KeyKind.ED25519)
        with httpx.Client(base_url=server.url, auth=auth) as client:
            assert client.post("/echo", content=b"hello").content == b"hello"
        forged = GatewayAuth("ed:bot", pem(Ed25519PrivateKey.generate()), KeyKind.ED25519)
        with httpx.Client(base_url=server.url, auth=forged) as client:
            assert client.post("/echo", content=b"hello").status_code == 401


# --- replay, tampering, time --------------------------------------------------------------


def test_replay_inside_the_window_is_refused(gateway: Gateway) -> None:
    body = signal()
    headers = gateway.signer().headers("POST", "/signals", body)
    with httpx.Client(base_url=gateway.url) as client:
        first = client.post("/signals", content=body, headers=headers)
        second = client.post("/signals", content=body, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 409
    assert gateway.reasons() == ["replayed"]


def test_body_changed_after_signing_is_refused(gateway: Gateway) -> None:
    body = signal(quantity="0.010")
    headers = gateway.signer().headers("POST", "/signals", body)
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post("/signals", content=signal(quantity="5.000"), headers=headers)
    assert (response.status_code, response.content) == (401, PROBLEM_401)
    assert gateway.reasons() == ["bad_signature"]


@pytest.mark.parametrize(
    ("signed", "sent"),
    [("/echo?amount=1", "/echo?amount=9"), ("/echo?a=1", "/echo"), ("/echo", "/echo/")],
)
def test_path_or_query_changed_after_signing_is_refused(
    gateway: Gateway, signed: str, sent: str
) -> None:
    headers = gateway.signer().headers("POST", signed, b"x")
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post(sent, content=b"x", headers=headers)
    assert response.status_code == 401
    assert gateway.reasons() == ["bad_signature"]


def test_method_changed_after_signing_is_refused(gateway: Gateway) -> None:
    headers = gateway.signer().headers("PUT", "/echo", b"x")
    with httpx.Client(base_url=gateway.url) as client:
        assert client.post("/echo", content=b"x", headers=headers).status_code == 401


# Far past each bound (30 s past, 5 s ahead): a loaded machine delays the request by seconds.
@pytest.mark.parametrize(("offset_ms", "reason"), [(-300_000, "stale"), (300_000, "future")])
def test_stale_and_future_timestamps_are_refused(
    gateway: Gateway, offset_ms: int, reason: str
) -> None:
    stamp = time.time_ns() // 1_000_000 + offset_ms
    headers = gateway.signer().headers("POST", "/echo", b"x", timestamp_ms=stamp)
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post("/echo", content=b"x", headers=headers)
    assert (response.status_code, response.content) == (401, PROBLEM_401)
    assert gateway.reasons() == [reason]


def test_unknown_key_gets_the_same_answer_as_a_bad_signature(gateway: Gateway) -> None:
    stranger = MessageSigner("acme:nobody", Secret(secrets.token_bytes(32)))
    known_wrong = MessageSigner("acme:leader-1", Secret(secrets.token_bytes(32)))
    answers = []
    with httpx.Client(base_url=gateway.url) as client:
        for signer in (stranger, known_wrong):
            headers = signer.headers("POST", "/echo", b"x")
            answers.append(client.post("/echo", content=b"x", headers=headers))
    assert [(a.status_code, a.content) for a in answers] == [(401, PROBLEM_401)] * 2
    assert sorted(answers[0].headers.keys()) == sorted(answers[1].headers.keys())
    assert gateway.reasons() == ["unknown_key", "bad_signature"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-ST-Key": "acme:leader-1"},
        {"X-ST-Key": "acme leader", "X-ST-Timestamp": "1", "X-ST-Nonce": "n" * 20,
         "X-ST-Signature": "AA=="},
        {"X-ST-Key": "acme:leader-1", "X-ST-Timestamp": "soon", "X-ST-Nonce": "n" * 20,
         "X-ST-Signature": "AA=="},
        {"X-ST-Key": "acme:leader-1", "X-ST-Timestamp": "1", "X-ST-Nonce": "short",
         "X-ST-Signature": "AA=="},
        {"X-ST-Key": "acme:leader-1", "X-ST-Timestamp": "1", "X-ST-Nonce": "n" * 20,
         "X-ST-Signature": "not base64!"},
    ],
)  # fmt: skip
def test_missing_or_malformed_headers_are_refused_before_anything_else(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post("/signals", content=b"{}", headers=headers)
    assert (response.status_code, response.content) == (401, PROBLEM_401)
    assert gateway.reasons() == ["malformed"]


def test_a_repeated_signature_header_is_refused(gateway: Gateway) -> None:
    headers = list(gateway.signer().headers("POST", "/echo", b"x").items())
    headers.append(("X-ST-Nonce", "another-nonce-0123456789"))
    with httpx.Client(base_url=gateway.url) as client:
        assert client.post("/echo", content=b"x", headers=headers).status_code == 401
    assert gateway.reasons() == ["malformed"]


# --- scopes, routes, validation --------------------------------------------------------------


def test_a_key_without_the_routes_scope_is_refused(gateway: Gateway) -> None:
    with gateway.client("acme:reader") as client:
        refused = client.post("/signals", content=signal())
        allowed = client.get("/whoami")
    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json() == {"key_id": "acme:reader", "scopes": ["signals:read"]}
    assert gateway.reasons() == ["scope"]


def test_the_starlette_decorator_enforces_the_endpoints_own_scope(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.get("/admin")
    assert response.status_code == 403  # the gateway admitted it; the endpoint did not


def test_an_undeclared_route_is_refused_after_authentication(gateway: Gateway) -> None:
    with gateway.client() as client:
        assert client.get("/health").status_code == 200  # an open path: no signature
        assert client.post("/not-declared", content=b"x").status_code == 404
        assert client.delete("/signals").status_code == 404
    assert gateway.reasons() == ["no_route", "no_route"]


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": "field"},
        {"quantity": 0.01},  # a JSON number: money is a string
        {"quantity": "-1"},
        {"quantity": "1e400"},
        {"quantity": "NaN"},
        {"side": "short"},
        {"type": "stop"},
        {"symbol": "BTC/USDT"},  # Kraken's grammar, not Binance's
        {"venue": "nowhere"},
        {"type": "market"},  # a market order takes no price
    ],
)
def test_invalid_bodies_are_refused_after_authentication(
    gateway: Gateway, changes: dict[str, Any]
) -> None:
    with gateway.client() as client:
        response = client.post("/signals", content=signal(**changes))
    assert response.status_code == 422
    assert response.content == (
        b'{"type":"about:blank","title":"Unprocessable Content","status":422}'
    )
    assert gateway.reasons() == ["invalid_body"]


def test_unauthenticated_callers_never_reach_the_parser(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post("/signals", content=b"{not json")
    assert response.status_code == 401
    assert gateway.reasons() == ["malformed"]


# --- size and slowness ----------------------------------------------------------------------


def test_oversized_body_with_content_length_is_refused_before_it_is_read(master: bytes) -> None:
    for gateway in serve(master, max_body_bytes=1024):
        with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=5) as sock:
            # Headers only: the 413 must come without a byte of the 1 MB body being sent.
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert gateway.reasons() == ["too_large"]


def test_oversized_body_without_content_length_is_refused_while_reading(master: bytes) -> None:
    for gateway in serve(master, max_body_bytes=1024):
        body = b"x" * 5000
        headers = gateway.signer().headers("POST", "/echo", body)

        def chunks(data: bytes) -> Iterator[bytes]:
            for start in range(0, len(data), 500):
                yield data[start : start + 500]

        with httpx.Client(base_url=gateway.url) as client:
            response = client.post("/echo", content=chunks(body), headers=headers)
        assert response.status_code == 413
        assert gateway.reasons() == ["too_large"]


def test_slow_body_is_cut_off(master: bytes) -> None:
    for gateway in serve(master, body_timeout=0.5):
        body = b"0123456789"
        headers = gateway.signer().headers("POST", "/echo", body)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=5) as sock:
            sock.sendall(
                f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n{head}\r\n".encode()
                + body[:3]
            )
            answer = sock.recv(4096)  # the rest never comes
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert gateway.reasons() == ["slow_body"]


# --- addresses, proxies, lock-outs -------------------------------------------------------


def test_spoofed_x_forwarded_for_is_ignored_without_a_trusted_proxy(gateway: Gateway) -> None:
    # The key may only be used from 10.20.0.0/16; the client claims to be there.
    with gateway.client("acme:office-only") as client:
        response = client.post("/echo", content=b"x", headers={"X-Forwarded-For": "10.20.1.1"})
    assert response.status_code == 403
    assert [(e.reason, e.address) for e in gateway.events] == [("network", "127.0.0.1")]


def test_x_forwarded_for_is_read_from_the_right_behind_a_trusted_proxy(master: bytes) -> None:
    for gateway in serve(master, trusted_proxies=["127.0.0.0/8"]):
        with gateway.client("acme:office-only") as client:
            # The proxy (127.0.0.1) appended the client's real address.
            ok = client.post("/echo", content=b"x", headers={"X-Forwarded-For": "10.20.1.1"})
            # The client wrote its own header; the proxy appended its real address.
            spoofed = client.post(
                "/echo", content=b"x", headers={"X-Forwarded-For": "10.20.1.1, 203.0.113.9"}
            )
        assert ok.status_code == 200
        assert spoofed.status_code == 403
        assert [(e.reason, e.address) for e in gateway.events] == [("network", "203.0.113.9")]


def test_repeated_bad_signatures_lock_out_the_address_and_the_key(master: bytes) -> None:
    lockout = Lockout(threshold=5, window=60, duration=60)
    for gateway in serve(master, lockout=lockout):
        wrong = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))
        with httpx.Client(base_url=gateway.url) as client:
            codes = [
                client.post("/echo", content=b"x", headers=wrong.headers("POST", "/echo", b"x"))
                for _ in range(7)
            ]
        assert [c.status_code for c in codes] == [401] * 5 + [429] * 2
        assert codes[-1].headers["retry-after"] == "60"
        assert gateway.reasons() == ["bad_signature"] * 5 + ["locked_out"] * 2
        # A valid request from the locked address is refused too, until the lock ends.
        with gateway.client("acme:leader-1") as client:
            assert client.post("/echo", content=b"x").status_code == 429


# --- limits ----------------------------------------------------------------------------------


def test_per_key_limit_answers_429_with_retry_after_and_others_keep_their_budget(
    master: bytes,
) -> None:
    limits = {"key_limit": Limit(3, 30.0), "tenant_limit": Limit(5, 30.0)}
    for gateway in serve(master, report_remaining=True, **limits):
        with gateway.client("acme:leader-1") as one, gateway.client("acme:leader-2") as two:
            first = [one.post("/echo", content=b"x") for _ in range(4)]
            second = [two.post("/echo", content=b"x") for _ in range(3)]
        with gateway.client("beta:leader") as other_tenant:
            third = other_tenant.post("/echo", content=b"x")
        assert [r.status_code for r in first] == [200, 200, 200, 429]
        assert [r.headers.get("ratelimit-remaining") for r in first[:3]] == ["2", "1", "0"]
        assert 1 <= int(first[3].headers["retry-after"]) <= 30
        # The tenant's limit (5) is shared by both of its keys: 3 + 2 fit, the third does not.
        assert [r.status_code for r in second] == [200, 200, 429]
        assert third.status_code == 200  # another tenant, its own windows
        assert gateway.reasons() == ["rate_limited", "rate_limited"]
