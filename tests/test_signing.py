"""Binance signing: published vectors, the canonical query encoding, prepare(), ccxt parity.

Vectors come from ``signing_vectors`` (outside the repository); the other venues' signers
are tested in test_signing_venues.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import pickle
import secrets
import string
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from securetrade.errors import InvalidRequest
from securetrade.keys import Secret
from securetrade.models import LimitOrder, MarketOrder, OrderRequest
from securetrade.signing import (
    Ed25519Signer,
    HmacSha256Signer,
    Signer,
    encode_query,
)
from securetrade.transport.base import HttpRequest
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE, ENDPOINTS
from signing_vectors import VECTORS, vector_ids

# --- vectors --------------------------------------------------------------------------------------


def _signer_for_vector(v: dict[str, Any]) -> Signer:
    key = v["key"]
    if v["algorithm"] == "hmac-sha256":
        return HmacSha256Signer(Secret(key["secret"]))
    return Ed25519Signer(Secret(key["private_key_pkcs8_der_b64"]))


def _is_binance_rest(v: dict[str, Any]) -> bool:
    return v["venue"] == "binance" and "-rest-" in v["id"]


def _prepare_reproduces(v: dict[str, Any]) -> bool:
    """REST vectors whose parameters end in recvWindow, timestamp: prepare's own order."""
    if not _is_binance_rest(v):
        return False
    tail = [k for k, _ in parse_qsl(v["message"], keep_blank_values=True)[-2:]]
    return tail == ["recvWindow", "timestamp"]


BINANCE_IDS = vector_ids(lambda v: v["venue"] == "binance")
BINANCE_REST_IDS = vector_ids(_is_binance_rest)
PREPARE_IDS = vector_ids(_prepare_reproduces)


def test_vector_file_holds_the_binance_vectors() -> None:
    """An emptied or renamed vector set must not silently turn the vector tests into no-ops."""
    assert len(BINANCE_IDS) >= 4
    assert len(BINANCE_REST_IDS) >= 2
    assert PREPARE_IDS


@pytest.mark.parametrize("vector_id", BINANCE_IDS)
def test_binance_vector(vector_id: str) -> None:
    """Our signers reproduce Binance's published signatures byte for byte."""
    v = VECTORS[vector_id]
    signature = _signer_for_vector(v).sign(v["message"].encode("utf-8"))
    assert signature == v["expected"]


@pytest.mark.parametrize("vector_id", BINANCE_REST_IDS)
def test_encode_query_reproduces_binance_rest_message(vector_id: str) -> None:
    """The venue signs the percent-encoded text; our encoder must emit exactly that text."""
    message = VECTORS[vector_id]["message"]
    pairs = parse_qsl(message, keep_blank_values=True, strict_parsing=True)
    assert encode_query(pairs) == message


@pytest.mark.parametrize("vector_id", PREPARE_IDS)
def test_prepare_reproduces_binance_rest_vector(vector_id: str) -> None:
    """prepare() appends recvWindow, timestamp and the signature exactly as the docs show."""
    v = VECTORS[vector_id]
    pairs = parse_qsl(v["message"], keep_blank_values=True, strict_parsing=True)
    params, fields = pairs[:-2], dict(pairs[-2:])
    assert fields["recvWindow"] == str(BINANCE.recv_window_ms)
    request = BINANCE.prepare(
        ENDPOINTS[Op.PLACE_ORDER],
        params,
        key_id="test-key-id",
        signer=_signer_for_vector(v),
        timestamp_ms=int(fields["timestamp"]),
    )
    signature_param = encode_query([("signature", v["expected"])])
    assert request.body == f"{v['message']}&{signature_param}".encode()


# --- end to end: prepare() ------------------------------------------------------------------------


def _hmac_signer() -> HmacSha256Signer:
    return HmacSha256Signer(Secret(secrets.token_hex(32)))


def _ed25519_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _split_signed(text: str) -> tuple[str, str]:
    """(exact payload before ``&signature=``, decoded signature); signature must be last."""
    payload, sep, signature = text.rpartition("&signature=")
    assert sep, f"no signature in {text!r}"
    assert "&" not in signature
    assert "=" not in signature
    return payload, unquote(signature)


def _header(request: HttpRequest, name: str) -> str | None:
    values = [v for k, v in request.headers if k.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


ORDER_PARAMS = [
    ("symbol", "BTCUSDT"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", "0.01"),
    ("price", "65000.5"),
    ("newClientOrderId", "e2e-test_1"),
]


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_prepare_place_order_signs_exact_body(kind: str) -> None:
    """POST: the signature covers exactly the body bytes before ``&signature=``."""
    signer: Signer = _hmac_signer() if kind == "hmac" else Ed25519Signer(Secret(_ed25519_pem()))
    key_id = secrets.token_hex(32)
    request = BINANCE.prepare(
        ENDPOINTS[Op.PLACE_ORDER],
        ORDER_PARAMS,
        key_id=key_id,
        signer=signer,
        timestamp_ms=1_700_000_000_123,
    )
    assert request.method == "POST"
    assert "?" not in request.target
    assert _header(request, "X-MBX-APIKEY") == key_id
    assert _header(request, "Content-Type") == "application/x-www-form-urlencoded"
    payload, signature = _split_signed(request.body.decode("ascii"))
    assert signature == signer.sign(payload.encode("ascii"))
    pairs = parse_qsl(payload, keep_blank_values=True, strict_parsing=True)
    assert pairs[: len(ORDER_PARAMS)] == ORDER_PARAMS
    assert dict(pairs)["recvWindow"] == str(BINANCE.recv_window_ms)
    assert dict(pairs)["timestamp"] == "1700000000123"


def test_prepare_get_order_signs_exact_query() -> None:
    """GET: the signed text travels in the target's query string and the body stays empty."""
    signer = _hmac_signer()
    params = [("symbol", "ETHUSDT"), ("origClientOrderId", "abc-123")]
    request = BINANCE.prepare(
        ENDPOINTS[Op.GET_ORDER],
        params,
        key_id="key-id-1234567890",
        signer=signer,
        timestamp_ms=1_700_000_000_999,
    )
    assert request.method == "GET"
    assert request.body == b""
    path, _, query = request.target.partition("?")
    assert path == ENDPOINTS[Op.GET_ORDER].path
    assert _header(request, "X-MBX-APIKEY") == "key-id-1234567890"
    payload, signature = _split_signed(query)
    assert signature == signer.sign(payload.encode("ascii"))
    assert parse_qsl(payload, strict_parsing=True) == [
        *params,
        ("recvWindow", str(BINANCE.recv_window_ms)),
        ("timestamp", "1700000000999"),
    ]


def test_prepare_refuses_signed_endpoint_without_signer() -> None:
    """A signed endpoint with no key must fail locally, not go out unsigned."""
    with pytest.raises(InvalidRequest):
        BINANCE.prepare(
            ENDPOINTS[Op.GET_ORDER],
            [("symbol", "BTCUSDT")],
            key_id="k",
            signer=None,
            timestamp_ms=1,
        )


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1), st.text()).filter(
            lambda kv: kv[0] not in {"signature", "recvWindow", "timestamp"}
        ),
        max_size=5,
    )
)
def test_prepare_never_lets_a_value_add_parameters(params: list[tuple[str, str]]) -> None:
    """Whatever the caller's values hold, the venue decodes exactly those params plus ours."""
    signer = _hmac_signer()
    request = BINANCE.prepare(
        ENDPOINTS[Op.GET_ORDER], params, key_id="k" * 64, signer=signer, timestamp_ms=42
    )
    query = request.target.partition("?")[2]
    payload, signature = _split_signed(query)
    assert signature == signer.sign(payload.encode("ascii"))
    decoded = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    assert decoded == [
        *params,
        ("recvWindow", str(BINANCE.recv_window_ms)),
        ("timestamp", "42"),
        ("signature", signature),
    ]


# --- ccxt parity (offline) ------------------------------------------------------------------------

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBBTC", "SOLUSDT", "DOGEUSDT"]
amounts = st.decimals(
    min_value="0.00000001", max_value="1000000", places=8, allow_nan=False, allow_infinity=False
).filter(lambda d: d > 0)


@st.composite
def orders(draw: st.DrawFn) -> tuple[OrderRequest, str]:
    symbol = draw(st.sampled_from(SYMBOLS))
    side = draw(st.sampled_from(["BUY", "SELL"]))
    quantity = str(draw(amounts))
    client_id = draw(st.from_regex(r"[A-Za-z0-9_-]{1,36}", fullmatch=True))
    order: OrderRequest
    if draw(st.booleans()):
        order = LimitOrder(symbol=symbol, side=side, quantity=quantity, price=str(draw(amounts)))
    else:
        order = MarketOrder(symbol=symbol, side=side, quantity=quantity)
    return order, client_id


def _ccxt_exchange(secret: str) -> Any:
    ccxt = pytest.importorskip("ccxt")
    exchange = ccxt.binance({"apiKey": "k" * 64, "secret": secret})
    exchange.options["timeDifference"] = 0
    return exchange


def _ccxt_sign(exchange: Any, params: list[tuple[str, str]], timestamp: int) -> str:
    """ccxt's body for POST /api/v3/order; timestamp and recvWindow are given explicitly."""
    request = dict(params)
    request["timestamp"] = timestamp
    request["recvWindow"] = BINANCE.recv_window_ms
    signed = exchange.sign("order", ["private"], "POST", request)
    assert signed["headers"]["X-MBX-APIKEY"] == "k" * 64
    return str(signed["body"])


@settings(max_examples=50, deadline=None)
@given(order=orders(), timestamp=st.integers(1_500_000_000_000, 2_500_000_000_000))
def test_hmac_matches_ccxt(order: tuple[OrderRequest, str], timestamp: int) -> None:
    """Same order, same secret: ccxt and securetrade send the same params and signatures."""
    secret = secrets.token_hex(32)
    exchange = _ccxt_exchange(secret)
    params = BINANCE.order_params(*order)
    ccxt_payload, ccxt_signature = _split_signed(_ccxt_sign(exchange, params, timestamp))
    signer = HmacSha256Signer(Secret(secret))
    # Our signer over ccxt's exact bytes gives ccxt's signature ...
    assert signer.sign(ccxt_payload.encode("ascii")) == ccxt_signature
    # ... our encoder re-emits ccxt's bytes exactly ...
    ccxt_pairs = parse_qsl(ccxt_payload, keep_blank_values=True, strict_parsing=True)
    assert encode_query(ccxt_pairs) == ccxt_payload
    # ... and our own request carries the same parameters, signed as ccxt's HMAC would sign it.
    ours = BINANCE.prepare(
        ENDPOINTS[Op.PLACE_ORDER], params, key_id="k" * 64, signer=signer, timestamp_ms=timestamp
    )
    payload, signature = _split_signed(ours.body.decode("ascii"))
    assert sorted(parse_qsl(payload, strict_parsing=True)) == sorted(ccxt_pairs)
    expected = exchange.hmac(exchange.encode(payload), exchange.encode(secret), hashlib.sha256)
    assert signature == expected


@settings(max_examples=20, deadline=None)
@given(order=orders(), timestamp=st.integers(1_500_000_000_000, 2_500_000_000_000))
def test_ed25519_matches_ccxt(order: tuple[OrderRequest, str], timestamp: int) -> None:
    """Ed25519 (PEM key) signatures agree with ccxt's, including their percent-encoding."""
    pem = _ed25519_pem()
    exchange = _ccxt_exchange(pem.decode("ascii"))
    body = _ccxt_sign(exchange, BINANCE.order_params(*order), timestamp)
    ccxt_payload, ccxt_signature = _split_signed(body)
    signer = Ed25519Signer(Secret(pem))
    ours = signer.sign(ccxt_payload.encode("ascii"))
    assert ours == ccxt_signature
    assert body.endswith("&" + encode_query([("signature", ours)]))


# --- the canonical encoding -----------------------------------------------------------------------

_ALLOWED = set(string.ascii_letters + string.digits + "-._~%&=")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1), st.text())))
@example([("a&b", "c=d"), ("q", "1&price=0"), ("p", "100%"), ("plus", "+1"), ("frag", "#x")])
@example(
    [
        ("sp ace", " lead and trail "),
        ("é", "\uff11\uff12\uff13"),
        ("emoji", "\N{ROCKET}"),
        ("e", ""),
    ]
)
@example([("%41", "%2B"), ("=", "&"), ("+", "+")])
def test_encode_query_round_trips_exactly(pairs: list[tuple[str, str]]) -> None:
    """No value can split into, or merge with, another parameter: the venue sees our pairs."""
    encoded = encode_query(pairs)
    assert "+" not in encoded  # parse_qsl (and venues) read a raw '+' as a space
    assert set(encoded) <= _ALLOWED
    assert encoded.count("&") == max(0, len(pairs) - 1)
    assert parse_qsl(encoded, keep_blank_values=True, strict_parsing=True) == pairs


def test_encode_query_leaves_unreserved_text_alone() -> None:
    """Plain values are sent verbatim, so the published ASCII vectors stay byte-identical."""
    assert encode_query([("price", "0.1"), ("id", "A-z_9.~")]) == "price=0.1&id=A-z_9.~"
    assert encode_query([("s", "a b+c")]) == "s=a%20b%2Bc"


# --- signers keep their secret --------------------------------------------------------------------


def _signers() -> list[tuple[Signer, bytes]]:
    """Each signer with the secret text it was built from."""
    hmac_secret = secrets.token_hex(32).encode()
    pem = _ed25519_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    der_b64 = base64.b64encode(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return [
        (HmacSha256Signer(Secret(hmac_secret)), hmac_secret),
        (Ed25519Signer(Secret(pem)), pem),
        (Ed25519Signer(Secret(der_b64)), der_b64),
    ]


def test_ed25519_accepts_pem_and_base64_der_alike() -> None:
    """The same key given as PEM or as base64 DER signs identically, and verifiably."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    message = b"symbol=BTCUSDT&timestamp=1"
    from_pem = Ed25519Signer(Secret(pem)).sign(message)
    assert from_pem == Ed25519Signer(Secret(base64.b64encode(der))).sign(message)
    key.public_key().verify(base64.b64decode(from_pem, validate=True), message)


def test_signer_repr_holds_no_secret() -> None:
    """repr/str of a signer may reach logs: no secret material, in any form, may appear."""
    for signer, secret in _signers():
        text = repr(signer) + str(signer) + f"{signer}"
        for fragment in _fragments(secret):
            assert fragment not in text


def _fragments(secret: bytes) -> list[str]:
    """Recognisable pieces of a secret: its text and a slice of its base64 body."""
    text = secret.decode("ascii")
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    return [text, body, body[-16:]]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_signer_refuses_pickling(protocol: int) -> None:
    """A pickled signer would be its secret written out; it must refuse."""
    for signer, _ in _signers():
        with pytest.raises(TypeError):
            pickle.dumps(signer, protocol=protocol)


def test_signer_refuses_copying() -> None:
    """copy goes through the same reduce protocol as pickle, and must also refuse."""
    for signer, _ in _signers():
        with pytest.raises(TypeError):
            copy.deepcopy(signer)
