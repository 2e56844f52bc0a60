"""Rows 1-2: building and signing one Binance LIMIT order, ours against ccxt and raw stdlib.

All three sides encode the same parameters with a fresh timestamp per call (ccxt reads
its clock inside ``sign()``, so ours and raw do too) and get a fresh copy of the params.
Before timing, each side's output is checked: our signature is the HMAC of our exact
body bytes, and the three bodies carry the same parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securetrade.keys import Secret
from securetrade.signing import Ed25519Signer, HmacSha256Signer, Signer
from securetrade.transport.base import HttpRequest
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE

from ._report import Row, failed_row
from ._timing import Effort, interleaved_us

__all__ = ["ed25519_row", "sign_rows"]

_ENDPOINT = BINANCE.endpoints[Op.PLACE_ORDER]
_RECV_WINDOW = BINANCE.recv_window_ms


def _order_params() -> dict[str, str]:
    return {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "65000",
        "newClientOrderId": "bench" + secrets.token_hex(8),
    }


def _ours(signer: Signer, key_id: str, params: dict[str, str]) -> Callable[[], HttpRequest]:
    pairs = list(params.items())

    def build() -> HttpRequest:
        return BINANCE.prepare(
            _ENDPOINT,
            list(pairs),
            key_id=key_id,
            signer=signer,
            timestamp_ms=int(time.time() * 1000),
        )

    return build


def _ccxt_exchange(key_id: str, secret: str) -> Any:
    ccxt = importlib.import_module("ccxt")
    return ccxt.binance(
        {
            "apiKey": key_id,
            "secret": secret,
            "options": {"timeDifference": 0, "recvWindow": _RECV_WINDOW},
        }
    )


def _ccxt(exchange: Any, params: dict[str, str]) -> Callable[[], Any]:
    def build() -> Any:
        return exchange.sign("order", ["private"], "POST", dict(params))

    return build


def _require(condition: bool, problem: str) -> None:
    """A sanity check that survives ``python -O``: timing a wrong result is worthless."""
    if not condition:
        raise RuntimeError(f"sanity check failed: {problem}")


def _split_signature(body: str) -> tuple[str, str]:
    payload, marker, signature = body.rpartition("&signature=")
    _require(bool(marker), f"no signature in {body!r}")
    return payload, unquote(signature)


def _names_and_values(body: str) -> dict[str, str]:
    """Parameters of a signed body, less those that change per call."""
    pairs = dict(parse_qsl(body, strict_parsing=True))
    for volatile in ("timestamp", "signature"):
        pairs.pop(volatile, None)
    return pairs


def _check_same_parameters(ours: str, *others: str) -> None:
    expected = _names_and_values(ours)
    for other in others:
        got = _names_and_values(other)
        _require(got == expected, f"bodies differ: ours {expected} vs {got}")


def sign_rows(effort: Effort) -> list[Row]:
    """``sign_binance_hmac_vs_ccxt`` and ``sign_binance_hmac_vs_raw``: HMAC-SHA256 hex
    over the form body."""
    key_id = secrets.token_hex(32)  # a fake 64-character API key
    secret = secrets.token_hex(32)
    params = _order_params()
    secret_bytes = secret.encode()

    ours = _ours(HmacSha256Signer(Secret(secret)), key_id, params)

    def raw() -> str:
        query = urlencode(
            {**params, "recvWindow": _RECV_WINDOW, "timestamp": int(time.time() * 1000)}
        )
        return (
            query
            + "&signature="
            + hmac.new(secret_bytes, query.encode(), hashlib.sha256).hexdigest()
        )

    def hmac_of(payload: str) -> str:
        return hmac.new(secret_bytes, payload.encode("ascii"), hashlib.sha256).hexdigest()

    # Sanity: our signature is the HMAC of our exact body bytes; all bodies say the same.
    body = ours().body.decode("ascii")
    payload, signature = _split_signature(body)
    _require(hmac.compare_digest(signature, hmac_of(payload)), "ours is not HMAC(body)")
    raw_body = raw()
    raw_payload, raw_signature = _split_signature(raw_body)
    _require(raw_signature == hmac_of(raw_payload), "raw is not HMAC(body)")

    functions: list[Callable[[], object]] = [ours, raw]
    ccxt_reason: str | None = None
    try:
        exchange = _ccxt_exchange(key_id, secret)
        peer = _ccxt(exchange, params)
        signed = peer()
        ccxt_payload, ccxt_signature = _split_signature(signed["body"])
        _require(ccxt_signature == hmac_of(ccxt_payload), "ccxt's is not HMAC(body)")
        _check_same_parameters(body, raw_body, signed["body"])
        functions.append(peer)
    except ImportError as exc:
        ccxt_reason = f"ccxt is not installed ({exc})"

    timings = interleaved_us(functions, effort)
    ours_us, raw_us = timings[0], timings[1]
    rows = []
    if ccxt_reason is None:
        rows.append(
            Row(
                "sign_binance_hmac_vs_ccxt",
                ours_us,
                timings[2],
                "µs/call",
                peer_name="ccxt binance.sign",
            )
        )
    else:
        rows.append(Row("sign_binance_hmac_vs_ccxt", ours_us, None, "µs/call", reason=ccxt_reason))
    rows.append(
        Row(
            "sign_binance_hmac_vs_raw",
            ours_us,
            raw_us,
            "µs/call",
            peer_name="urlencode+hmac",
            note="median of timeit repeats; ours = BINANCE.prepare + HmacSha256Signer, "
            "checked: signature == HMAC(exact body), same parameters as raw and ccxt",
        )
    )
    return rows


def ed25519_row(effort: Effort) -> Row:
    """``sign_ed25519_vs_ccxt``: our signer holds the parsed key; ccxt re-parses its PEM."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = private.public_key()
    key_id = secrets.token_hex(32)
    params = _order_params()
    ours = _ours(Ed25519Signer(Secret(pem)), key_id, params)
    payload, signature = _split_signature(ours().body.decode("ascii"))
    public.verify(base64.b64decode(signature, validate=True), payload.encode("ascii"))
    try:
        exchange = _ccxt_exchange(key_id, pem)
    except ImportError as exc:
        return failed_row("sign_ed25519_vs_ccxt", "µs/call", f"ccxt is not installed ({exc})")
    # ccxt picks Ed25519 for a PEM secret of at most 120 characters (longer means RSA).
    _require("PRIVATE KEY" in pem and len(pem) <= 120, "ccxt would not take its Ed25519 path")
    peer = _ccxt(exchange, params)
    ccxt_payload, ccxt_signature = _split_signature(peer()["body"])
    public.verify(base64.b64decode(ccxt_signature, validate=True), ccxt_payload.encode())
    payload_bytes = payload.encode("ascii")

    def floor() -> bytes:
        return private.sign(payload_bytes)

    ours_us, ccxt_us, floor_us = interleaved_us([ours, peer, floor], effort)
    return Row(
        "sign_ed25519_vs_ccxt",
        ours_us,
        ccxt_us,
        "µs/call",
        peer_name="ccxt binance.sign (PEM)",
        note=f"both signatures verified with the public key before timing; the Ed25519 "
        f"signature alone (cryptography, key loaded) takes {floor_us:.1f} µs, "
        f"{floor_us / ccxt_us:.2f}x ccxt: the floor for this ratio",
    )
