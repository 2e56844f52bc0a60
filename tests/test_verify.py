"""Inbound verification: signed messages are accepted once, from a known key, while fresh.

Replay stores are exercised for real: memory, a SQLite file shared by two verifiers (as two
processes would), and a real redis-server.
"""

from __future__ import annotations

import os
import pickle
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securetrade.errors import InboundRejected, InvalidRequest
from securetrade.keys import KeyKind, Secret
from securetrade.verify import (
    InboundKey,
    MemoryReplayStore,
    MessageSigner,
    RedisReplayStore,
    ReplayStore,
    SqliteReplayStore,
    Verifier,
    canonical_message,
)

NOW = 1_700_000_000_000
BODY = b'{"symbol":"BTCUSDT","side":"BUY","quantity":"0.01"}'


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hmac_pair(clock: Clock) -> tuple[MessageSigner, InboundKey]:
    secret = Secret(secrets.token_bytes(32))
    signer = MessageSigner("leader-1", secret, now_ms=clock)
    key = InboundKey.hmac("leader-1", secret, name="leader bot", scopes=["signal:publish"])
    return signer, key


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Build stores that share state the way the backend shares it (file, server)."""
    made: list[Any] = []
    prefix = f"test-replay:{os.getpid()}:{secrets.token_hex(4)}:"
    shared_memory = MemoryReplayStore()

    def build() -> Any:
        if request.param == "memory":
            return shared_memory
        if request.param == "sqlite":
            store: Any = SqliteReplayStore(tmp_path / "replay.db")
        else:
            store = RedisReplayStore(request.getfixturevalue("redis_url"), prefix=prefix)
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()


def _verifier(key: InboundKey, clock: Clock, store: ReplayStore | None = None) -> Verifier:
    return Verifier([key], replay=store, window_ms=30_000, max_ahead_ms=5_000, now_ms=clock)


def test_hmac_message_is_accepted_once(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, make_store: Callable[[], Any]
) -> None:
    signer, key = hmac_pair
    verifier = _verifier(key, clock, make_store())
    headers = signer.headers("POST", "/signals?room=7", BODY)
    principal = verifier.verify("POST", "/signals?room=7", headers, BODY)
    assert (principal.name, principal.key_id) == ("leader bot", "leader-1")
    assert principal.scopes == frozenset({"signal:publish"})
    with pytest.raises(InboundRejected) as caught:
        verifier.verify("POST", "/signals?room=7", headers, BODY)
    assert caught.value.reason == "replayed"


def test_a_second_verifier_on_the_same_store_rejects_the_replay(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, make_store: Callable[[], Any]
) -> None:
    """Two receivers (processes, hosts) behind one store: a message is taken once in total."""
    signer, key = hmac_pair
    first, second = _verifier(key, clock, make_store()), _verifier(key, clock, make_store())
    headers = signer.headers("POST", "/signals", BODY)
    first.verify("POST", "/signals", headers, BODY)
    with pytest.raises(InboundRejected, match="already used"):
        second.verify("POST", "/signals", headers, BODY)


def test_racing_threads_accept_a_message_exactly_once(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, make_store: Callable[[], Any]
) -> None:
    signer, key = hmac_pair
    verifiers = [_verifier(key, clock, make_store()) for _ in range(8)]
    messages = [signer.headers("POST", "/signals", BODY) for _ in range(50)]
    accepted: list[str] = []
    reasons: list[str] = []
    barrier = threading.Barrier(len(verifiers))

    def run(verifier: Verifier) -> None:
        barrier.wait()
        for headers in messages:
            try:
                verifier.verify("POST", "/signals", headers, BODY)
            except InboundRejected as exc:
                reasons.append(exc.reason)
            else:
                accepted.append(headers["X-ST-Nonce"])

    threads = [threading.Thread(target=run, args=(v,)) for v in verifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == sorted(h["X-ST-Nonce"] for h in messages)
    assert reasons == ["replayed"] * (len(verifiers) - 1) * len(messages)


def test_ed25519_message_verifies_with_the_public_key_only(clock: Clock) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signer = MessageSigner("leader-ed", Secret(pem), KeyKind.ED25519, now_ms=clock)
    headers = signer.headers("POST", "/signals", BODY)
    for public in (public_pem, raw):
        key = InboundKey.ed25519("leader-ed", public, name="ed leader", scopes=["a"])
        assert _verifier(key, clock).verify("POST", "/signals", headers, BODY).name == "ed leader"
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    impostor = InboundKey.ed25519("leader-ed", other, name="x")
    with pytest.raises(InboundRejected, match="signature"):
        _verifier(impostor, clock).verify("POST", "/signals", headers, BODY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: {**m, "method": "PUT"}, "bad_signature"),
        (lambda m: {**m, "target": "/signals?room=8"}, "bad_signature"),
        (lambda m: {**m, "body": m["body"].replace(b"0.01", b"10.0")}, "bad_signature"),
        (lambda m: {**m, "body": m["body"] + b" "}, "bad_signature"),
        (lambda m: _header(m, "X-ST-Timestamp", str(NOW - 1)), "bad_signature"),
        (lambda m: _header(m, "X-ST-Nonce", "A" * 24), "bad_signature"),
        (lambda m: _header(m, "X-ST-Key", "leader-2"), "unknown_key"),
        (lambda m: _header(m, "X-ST-Signature", "not base64!"), "malformed"),
        (lambda m: _header(m, "X-ST-Nonce", "short"), "malformed"),
        (lambda m: _header(m, "X-ST-Timestamp", "-5"), "malformed"),
        (lambda m: _drop(m, "X-ST-Signature"), "malformed"),
        (lambda m: {**m, "target": "signals"}, "malformed"),
        (lambda m: {**m, "headers": [*m["headers"], ("x-st-nonce", "B" * 20)]}, "malformed"),
    ],
)
def test_any_change_is_rejected(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, change: Any, reason: str
) -> None:
    signer, key = hmac_pair
    headers = signer.headers("POST", "/signals?room=7", BODY)
    message = {
        "method": "POST",
        "target": "/signals?room=7",
        "headers": list(headers.items()),
        "body": BODY,
    }
    changed = change(message)
    verifier = _verifier(key, clock)
    with pytest.raises(InboundRejected) as caught:
        verifier.verify(changed["method"], changed["target"], changed["headers"], changed["body"])
    assert caught.value.reason == reason
    # The untouched message still goes through: a forgery did not use up its nonce.
    assert verifier.verify("POST", "/signals?room=7", headers, BODY).key_id == "leader-1"


def _header(message: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    return {**message, "headers": [(k, value if k == name else v) for k, v in message["headers"]]}


def _drop(message: dict[str, Any], name: str) -> dict[str, Any]:
    return {**message, "headers": [(k, v) for k, v in message["headers"] if k != name]}


def test_header_names_are_case_insensitive(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock
) -> None:
    signer, key = hmac_pair
    headers = {k.lower(): v for k, v in signer.headers("GET", "/x", b"").items()}
    assert _verifier(key, clock).verify("GET", "/x", headers, b"").key_id == "leader-1"


# --- freshness: a captured message replayed after its window ------------------------------------


@pytest.mark.parametrize(
    ("age_ms", "accepted"),
    [
        (0, True),
        (30_000, True),
        (30_001, False),
        (3_600_000, False),
        (-5_000, True),
        (-5_001, False),
    ],
)
def test_timestamp_window(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, age_ms: int, accepted: bool
) -> None:
    signer, key = hmac_pair
    headers = signer.headers("POST", "/signals", BODY, timestamp_ms=NOW - age_ms)
    verifier = _verifier(key, clock)
    if accepted:
        verifier.verify("POST", "/signals", headers, BODY)
    else:
        with pytest.raises(InboundRejected) as caught:
            verifier.verify("POST", "/signals", headers, BODY)
        assert caught.value.reason == "stale"


def test_captured_message_replayed_after_its_window_is_rejected_even_by_a_fresh_store(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, make_store: Callable[[], Any]
) -> None:
    """Once the window has passed, the timestamp alone refuses it: no store needed."""
    signer, key = hmac_pair
    headers = signer.headers("POST", "/signals", BODY)
    _verifier(key, clock, make_store()).verify("POST", "/signals", headers, BODY)
    clock.ms += 30_001
    for store in (make_store(), MemoryReplayStore()):  # the same store, and one that forgot
        with pytest.raises(InboundRejected) as caught:
            _verifier(key, clock, store).verify("POST", "/signals", headers, BODY)
        assert caught.value.reason == "stale"


# --- bounded memory -------------------------------------------------------------------------------


def test_memory_store_is_bounded_and_forgets_only_stale_ids(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock
) -> None:
    signer, key = hmac_pair
    store = MemoryReplayStore(max_entries=10)
    verifier = _verifier(key, clock, store)
    for _ in range(10):
        verifier.verify("POST", "/s", signer.headers("POST", "/s", BODY), BODY)
    with pytest.raises(InboundRejected) as caught:  # full of live ids: refuse, never evict
        verifier.verify("POST", "/s", signer.headers("POST", "/s", BODY), BODY)
    assert caught.value.reason == "capacity"
    clock.ms += 30_002  # every id recorded so far is now stale
    verifier.verify("POST", "/s", signer.headers("POST", "/s", BODY), BODY)
    assert len(store) == 1


def test_sqlite_store_purges_expired_ids(
    hmac_pair: tuple[MessageSigner, InboundKey], clock: Clock, tmp_path: Path
) -> None:
    signer, key = hmac_pair
    store = SqliteReplayStore(tmp_path / "r.db")
    verifier = _verifier(key, clock, store)
    for _ in range(2_500):
        clock.ms += 100  # 10 messages a second: about 300 live in a 30 s window
        verifier.verify("POST", "/s", signer.headers("POST", "/s", BODY), BODY)
    assert len(store) < 1_400
    store.close()


def test_redis_store_lets_redis_expire_ids(redis_url: str) -> None:
    import redis

    store = RedisReplayStore(redis_url, prefix=f"ttl:{secrets.token_hex(4)}:")
    assert store.remember("t1", NOW + 40_000, NOW)
    assert not store.remember("t1", NOW + 40_000, NOW)
    client = redis.Redis.from_url(redis_url)
    ttls = [client.pttl(k) for k in client.scan_iter(match="ttl:*")]
    assert ttls
    assert all(0 < t <= 40_000 for t in ttls)
    client.close()
    store.close()


# --- construction and hygiene ---------------------------------------------------------------------


def test_bad_configuration_is_refused(hmac_pair: tuple[MessageSigner, InboundKey]) -> None:
    _, key = hmac_pair
    with pytest.raises(InvalidRequest):
        Verifier([key, key])
    with pytest.raises(InvalidRequest):
        Verifier([key], window_ms=0)
    with pytest.raises(InvalidRequest):
        InboundKey.hmac("bad key id", Secret("s"), name="n")
    with pytest.raises(InvalidRequest):
        InboundKey.hmac("k", Secret("s"), name="n", scopes="trade")
    with pytest.raises(InvalidRequest):
        InboundKey.ed25519("k", b"\x00" * 5, name="n")
    with pytest.raises(InvalidRequest):
        MessageSigner("k", Secret("s"), KeyKind.RSA)
    with pytest.raises(InvalidRequest):
        canonical_message("POST", "/s", NOW, "short", "k", b"")


def test_signer_and_keys_hold_their_secrets() -> None:
    secret_text = secrets.token_hex(24)
    signer = MessageSigner("k-1", Secret(secret_text))
    key = InboundKey.hmac("k-1", Secret(secret_text), name="n")
    for thing in (signer, key):
        assert secret_text not in repr(thing) + str(thing)
        with pytest.raises(TypeError):
            pickle.dumps(thing)


def test_canonical_message_layout() -> None:
    """The documented layout, byte for byte (senders in other languages rely on it)."""
    message = canonical_message("POST", "/signals?a=1", NOW, "n" * 16, "k-1", b"{}")
    assert message == (
        b"ST1\nPOST\n/signals?a=1\n1700000000000\n" + b"n" * 16 + b"\nk-1\n"
        b"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
