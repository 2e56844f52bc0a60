"""Guarantee 5: no secret, in any encoding, in reprs, logs, exceptions, traces, pickles or CLI.

One leak test drives the client paths (sync over pinned TLS, async in-process, rotation
with a revoked key, faults, refusals, venue rejections, the key check), the keystore
(round trip, wrong passphrase, tampering) and the ``keys`` CLI (in-process and as a
subprocess), with every logger at DEBUG. It collects everything a user or an operator
could see: each formatted log record with its traceback, each exception's text and
traceback, reprs and strs, span exports, pickles and CLI output. Then it searches all of
it for every secret (API secrets, Ed25519 keys, the venue passphrase, the keystore
passphrase) in raw, hex, base64 and URL-encoded form, and for the key ids: zero hits.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import pickle
import re
import secrets
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from securetrade import (
    ApiKey,
    AsyncClient,
    Client,
    LimitOrder,
    MarketOrder,
    SecureTradeError,
)
from securetrade.cli import main as cli_main
from securetrade.errors import KeystoreError
from securetrade.keys import KeyRing, KeyStore, Scope, Secret, env_names, key_from_env
from securetrade.sim import Simulator
from securetrade.transport.redaction import (
    MASK,
    RedactingFilter,
    redact_headers,
    redact_json,
    redact_text,
)


def _forms(secret: bytes) -> list[str]:
    """The secret as it could leak: raw, hex, base64 (both alphabets), URL-encoded; for a
    PEM key also each base64 line, the DER in hex, and the raw private key bytes."""
    text = secret.decode("utf-8", "replace")
    blobs = [secret]
    forms = {text, quote(text, safe=""), quote_plus(text)}
    if "-----BEGIN" in text:
        body = "".join(line for line in text.splitlines() if "-----" not in line)
        forms |= {line for line in text.splitlines() if len(line) > 16 and "-----" not in line}
        der = base64.b64decode(body)
        blobs.append(der)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        private = load_pem_private_key(secret, password=None)
        if isinstance(private, Ed25519PrivateKey):
            blobs.append(private.private_bytes_raw())
    for blob in blobs:
        forms |= {
            blob.hex(),
            blob.hex().upper(),
            base64.b64encode(blob).decode(),
            base64.urlsafe_b64encode(blob).decode(),
            base64.b64encode(blob).decode().rstrip("="),
        }
    return sorted(f for f in forms if len(f) >= 8)


class Collector(logging.Handler):
    """Every record from every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def collector() -> Iterator[Collector]:
    root = logging.getLogger()
    handler = Collector()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("securetrade", "httpx", "httpcore", "aiohttp"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


class Seen:
    """What a user could see, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors: list[BaseException] = []

    def add(self, *objects: Any) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]

    def error(self, action: Callable[[], Any]) -> None:
        with pytest.raises(SecureTradeError) as info:
            action()
        self.errors.append(info.value)

    def pickles(self, *objects: Any) -> None:
        for obj in objects:
            try:
                self.texts.append(pickle.dumps(obj).decode("latin-1"))
            except Exception as exc:  # refusing is the expected answer for secrets
                self.errors.append(exc)

    def blob(self) -> str:
        parts = list(self.texts)
        for error in self.errors:
            parts += [str(error), repr(error), repr(error.args)]
            parts.append("".join(traceback.format_exception(error)))
            parts.append(pickle.dumps(error).decode("latin-1") if _picklable(error) else "")
        return "\n".join(parts)


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


# --- the paths ---------------------------------------------------------------------------------


def _sync_client_paths(sim: Simulator, key: ApiKey, seen: Seen) -> None:
    server = sim.serve()
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        seen.add(client, key, key.secret, f"{key.secret:>30}", "%s %r" % (key.secret, key))  # noqa: UP031
        # A careless bot logging its key: the Secret masks itself in every formatting path.
        logging.getLogger("bot").debug("key %s secret %s/%r", key, key.secret, key.secret)
        order = client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")
        )
        seen.add(order, client.get_order("BTCUSDT", order_id=order.order_id))
        seen.add(client.open_orders(), client.balances(), client.key_permissions())
        report = client.check_key()
        seen.add(report, *report.lines())
        sim.faults.inject("drop_response", method="POST", path="/api/v3/order")
        seen.add(client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1e-3")))
        seen.error(lambda: client.withdraw("USDT", "1", "addr"))
        seen.error(
            lambda: client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="99", price="60000")
            )
        )
        seen.error(lambda: client.cancel_order("BTCUSDT", order_id="424242"))
        if not report.ok:
            seen.error(lambda: client.check_key(refuse=True))
        seen.add(*client.audit.events())
        seen.pickles(client, client.core._signer_of(key), key, key.secret)
    forged = ApiKey("binance", key.key_id, "not-the-secret-" + "0" * 20, kind="hmac")
    with Client(forged, transport=sim.transport(), journal=":memory:") as bad:
        seen.error(bad.balances)


def _async_and_rotation_paths(sim: Simulator, key: ApiKey, new: ApiKey, seen: Seen) -> None:
    ring = KeyRing(key)

    async def run() -> None:
        async with AsyncClient(ring, transport=sim.async_transport(), journal=":memory:") as c:
            seen.add(c, ring)
            seen.add(await c.place_order(MarketOrder(symbol="ETHUSDT", side="SELL", quantity=1)))
            seen.add(await c.balances(), await c.check_key())
            ring.rotate(new)
            sim.revoke_key(key.key_id)
            seen.add(ring, await c.open_orders())
            with pytest.raises(SecureTradeError) as info:
                await c.cancel_order("ETHUSDT", order_id="777")
            seen.errors.append(info.value)
            seen.add(*c.audit.events())

    asyncio.run(run())
    with Client(key, transport=sim.transport(), journal=":memory:") as revoked:
        seen.error(revoked.balances)  # the old key is refused at the venue now
    seen.pickles(ring)


def _keystore_and_cli_paths(
    tmp: Path, keys: list[ApiKey], passphrase: str, seen: Seen, capsys: Any, sim: Simulator
) -> None:
    path = tmp / "keys.enc"
    store = KeyStore.create(path, passphrase)
    store.add("bot", keys[0])
    store.add("okx", keys[1])
    seen.add(store, store.ring("bot"), store.get("okx"), *store.get("okx").public_parts().items())
    seen.pickles(store)
    for action in (
        lambda: KeyStore.open(path, passphrase + "x"),
        lambda: store.add("bot", keys[0]),
        lambda: store.rotate("bot", keys[0].restrict(scopes=[Scope.READ])),
    ):
        try:
            action()
        except SecureTradeError as exc:
            seen.errors.append(exc)
    tampered = tmp / "tampered.enc"
    tampered.write_bytes(path.read_bytes().replace(b'"ciphertext": "', b'"ciphertext": "AAAA'))
    tampered.chmod(0o600)
    seen.error(lambda: KeyStore.open(tampered, passphrase))
    file_bytes = path.read_bytes().decode("latin-1")
    assert "ciphertext" in file_bytes
    seen.texts.append(file_bytes)  # the file at rest is searched too

    os.environ["SECURETRADE_KEYSTORE"] = str(path)
    os.environ["SECURETRADE_KEYSTORE_PASSPHRASE"] = passphrase
    server = sim.serve()
    ca = tmp / "ca.pem"
    ca.write_text(server.ca_pem)
    pins = [x for pin in server.pins[server.host] for x in ("--pin", pin)]
    check = ["--base-url", server.base_url, "--cafile", str(ca), *pins]
    secret_file = tmp / "new-secret"
    secret_file.write_bytes(keys[2].secret.expose())
    try:
        for argv in (
            ["list"],
            ["show", "bot"],
            ["show", "okx"],
            ["check", "bot", *check],
            ["rotate", "bot", "--key-id", keys[2].key_id, "--secret-file", str(secret_file)],
            ["list"],
            ["show", "bot"],
            ["show", "missing"],
            ["remove", "bot", "--previous"],
        ):
            cli_main(["keys", *argv])
            out, err = capsys.readouterr()
            seen.texts += [out, err]
        result = subprocess.run(
            [sys.executable, "-m", "securetrade", "keys", "show", "okx"],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        seen.texts += [result.stdout, result.stderr]
        os.environ["SECURETRADE_KEYSTORE_PASSPHRASE"] = passphrase + "-wrong"
        cli_main(["keys", "list"])
        seen.texts += list(capsys.readouterr())
    finally:
        del os.environ["SECURETRADE_KEYSTORE"], os.environ["SECURETRADE_KEYSTORE_PASSPHRASE"]
    names = env_names("binance")
    environ = {names["key_id"]: keys[0].key_id, names["secret"]: "x" * 12, names["kind"]: "bad"}
    seen.error(lambda: key_from_env("binance", environ=environ))


def test_no_secret_anywhere(
    tmp_path: Path, collector: Collector, capsys: Any, span_exporter: Any
) -> None:
    span_exporter.clear()
    seen = Seen()
    passphrase = "pw-" + secrets.token_urlsafe(18)
    with Simulator() as sim:
        hmac_key = sim.create_key()
        ed_key = sim.create_key(kind="ed25519", scopes=[Scope.READ, Scope.TRADE], can_withdraw=True)
        rotated = sim.create_key(
            account=sim.account_of(ed_key.key_id), scopes=[Scope.READ, Scope.TRADE]
        )
        okx_like = ApiKey(
            "binance",
            secrets.token_hex(16),
            secrets.token_hex(32),
            scopes=[Scope.READ],
            passphrase="vp-" + secrets.token_urlsafe(12),
        )
        _sync_client_paths(sim, hmac_key, seen)
        _sync_client_paths(sim, ed_key, seen)
        _async_and_rotation_paths(sim, ed_key, rotated, seen)
        _keystore_and_cli_paths(
            tmp_path, [hmac_key, okx_like, rotated], passphrase, seen, capsys, sim
        )

    spans = span_exporter.get_finished_spans()
    assert spans, "tracing produced no spans to check"
    texts = [seen.blob(), *collector.lines, *(s.to_json() for s in spans)]
    blob = "\n".join(texts)
    # The capture worked: requests, warnings and CLI output are all in there.
    assert any("HTTP Request" in line for line in collector.lines)
    assert "withdrawals are enabled" in blob
    assert "verdict" in blob
    assert "wrong passphrase" in blob
    assert "failed authentication" in blob
    assert f"signature={MASK}" in blob  # signed GET URLs were logged, masked
    assert not re.search(r"signature=(?!\*)[A-Za-z0-9%+/=_-]{16,}", blob)  # never in clear
    secrets_used = [k.secret.expose() for k in (hmac_key, ed_key, rotated, okx_like)] + [
        okx_like.passphrase.expose() if okx_like.passphrase else b"",
        passphrase.encode(),
    ]
    for secret in secrets_used:
        for form in _forms(secret):
            assert form not in blob, f"a secret leaked ({len(form)} characters)"
    for key in (hmac_key, ed_key, rotated, okx_like):
        assert key.key_id not in blob  # key ids are shown as hints only


# --- the policy itself -------------------------------------------------------------------------


def test_policy_masks_every_carrier() -> None:
    sig, token = secrets.token_hex(32), secrets.token_hex(20)
    jwt = (
        "eyJhbGciOiJFUzI1NiJ9."
        + base64.urlsafe_b64encode(b'{"sub":"x"}').decode().rstrip("=")
        + ".c2ln"
    )
    samples = {
        f"GET /api/v3/account?timestamp=1&signature={sig}": sig,
        f"symbol=BTCUSDT&apiKey={token}&x=1": token,
        f'{{"passphrase": "{token}", "side": "BUY"}}': token,
        f'{{"api_secret":"{token}"}}': token,
        f"Authorization: Bearer {token}": token,
        f"headers={{'X-MBX-APIKEY': '{token}'}}": token,
        f"OK-ACCESS-SIGN: {sig}": sig,
        f"jwt {jwt} sent": jwt,
        f"https://user:{token}@proxy.example:8080/": token,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"
        + token
        + "\n-----END PRIVATE KEY-----": (token),
    }
    for text, secret in samples.items():
        redacted = redact_text(text)
        assert secret not in redacted, text
        assert MASK in redacted
    assert redact_text("price=60000&side=BUY") == "price=60000&side=BUY"
    assert redact_text("Basic information about the order") == "Basic information about the order"
    headers = redact_headers({"APCA-API-SECRET-KEY": token, "Content-Type": "application/json"})
    assert headers == {"APCA-API-SECRET-KEY": MASK, "Content-Type": "application/json"}
    body = redact_json({"order": {"clientOid": "a1", "sign": sig}, "items": [{"token": token}]})
    assert json.dumps(body).count(MASK) == 2
    assert body["order"]["clientOid"] == "a1"


def test_log_filter_covers_arguments_and_tracebacks() -> None:
    token = secrets.token_hex(24)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("securetrade.test_redaction")
    logger.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"failed GET /x?signature={token}")
        except RuntimeError:
            logger.exception("request %s failed", f"/y?apiKey={token}")
        logger.warning("bad %s %s", "call")  # malformed arguments: still filtered, no crash
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert token not in text
    assert "RuntimeError" in text
    assert text.count(MASK) >= 2


def test_every_securetrade_logger_is_filtered(sim: Simulator) -> None:
    """Loggers created by any module end up filtered once a client exists."""
    with Client(sim.create_key(), transport=sim.transport(), journal=":memory:"):
        pass
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("securetrade")]
    names += ["securetrade", "httpx", "httpcore"]
    for name in names:
        filters = logging.getLogger(name).filters
        assert any(isinstance(f, RedactingFilter) for f in filters), name


def test_errors_redact_what_a_venue_echoes() -> None:
    token = secrets.token_hex(24)
    error = SecureTradeError(f"venue said: bad request ?signature={token}", venue="x")
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in pickle.dumps(error).decode("latin-1")


def test_keys_signers_rings_and_stores_refuse_pickling(tmp_path: Path) -> None:
    with Simulator() as sim:
        key = sim.create_key()
        client = Client(key, transport=sim.transport(), journal=":memory:")
        store = KeyStore.create(tmp_path / "k.enc", "pw-" + secrets.token_hex(8))
        for obj in (key, key.secret, client.core._signer_of(key), KeyRing(key), store):
            with pytest.raises(TypeError):
                pickle.dumps(obj)
        client.close()


def test_errors_pickle_without_losing_context() -> None:
    from securetrade import RateLimited

    error = RateLimited("slow down", venue="binance", code=-1003, retry_after=2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.venue, copy.code, copy.retry_after) == ("binance", -1003, 2.5)
    assert str(copy) == str(error)


def test_secret_never_appears_in_keystore_errors(tmp_path: Path) -> None:
    passphrase = "pw-" + secrets.token_urlsafe(12)
    with pytest.raises(KeystoreError) as info:
        KeyStore.open(tmp_path / "none.enc", Secret(passphrase))
    assert passphrase not in "".join(traceback.format_exception(info.value))
