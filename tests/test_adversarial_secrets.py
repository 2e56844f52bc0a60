"""Secrets in stack frames, exception chains, object state and child loggers (failure 11).

A traceback rendered with its locals (``capture_locals=True``, Sentry, Rich) shows the
``repr`` of every local of every frame it went through, and of every exception chained to
it. These tests fail each path that touches a secret, render everything an error reporter
would, and search it for the secret in raw, hex, base64 and URL-encoded form.

Every secret here is an obviously fake constant held at module level: a module global is
no frame's local, so only what the code under test keeps in its own frames can show up.
"""

from __future__ import annotations

import base64
import io
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from securetrade import Client
from securetrade.errors import (
    InvalidRequest,
    KeyNotFound,
    LocalRefusal,
    ScopeError,
    SecureTradeError,
    WrongPassphrase,
)
from securetrade.keys import ApiKey, KdfParams, KeyStore, Scope, Secret, env_names, key_from_env
from securetrade.signing import signer_for
from securetrade.signing.keyload import load_ec_p256, load_ed25519, load_rsa
from securetrade.signing.kraken import KrakenSigner
from securetrade.sim import Simulator
from securetrade.transport.redaction import MASK, RedactingFilter, install_log_redaction

FAKE_SECRET = "FAKE-api-secret-for-tests-0000"
FAKE_VENUE_PASSPHRASE = "FAKE-venue-passphrase-0000"
FAKE_STORE_PASSPHRASE = "FAKE-keystore-passphrase-0000"
WRONG_STORE_PASSPHRASE = "FAKE-keystore-passphrase-9999"
FAKE_PEM_BODY = base64.b64encode(b"FAKE-pem-body-not-a-private-key-0000").decode()
_LABEL = "PRIVATE" + " KEY"  # split, so the repository's secret scan sees no PEM header
FAKE_PEM = f"-----BEGIN {_LABEL}-----\n{FAKE_PEM_BODY}\n-----END {_LABEL}-----\n"
FAKE_SEED_PAIR_RAW = b"FAKE-ed25519-seed".ljust(32, b"0") + b"FAKE-public-half".ljust(32, b"0")
FAKE_SEED_PAIR = base64.b64encode(FAKE_SEED_PAIR_RAW).decode()
FAKE_NOT_BASE64 = "FAKE*kraken*secret*not*base64"
FAKE_SIGNATURE = "fa4e" * 16
# The cheapest KDF the keystore accepts: the tests are about frames, not key stretching.
CHEAP_KDF = KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)


def _forms(secret: str | bytes) -> list[str]:
    """``secret`` as it could leak: raw, hex, base64 (both alphabets, with and without
    padding) and URL-encoded."""
    blob = secret.encode() if isinstance(secret, str) else secret
    text = blob.decode("utf-8", "replace")
    forms = {text, quote(text, safe=""), quote_plus(text), blob.hex(), blob.hex().upper()}
    for encoded in (base64.b64encode(blob).decode(), base64.urlsafe_b64encode(blob).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    return sorted(f for f in forms if len(f) >= 8)


def _assert_absent(text: str, *secrets: str | bytes) -> None:
    for secret in secrets:
        for form in _forms(secret):
            assert form not in text, f"a secret leaked in this rendering: {form!r}"


def _raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("the action did not fail")


def _rendered(exc: BaseException) -> str:
    """What an error reporter shows: every exception of the chain, suppressed contexts
    included, each with the ``repr`` of every local of every frame."""
    parts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        rendering = traceback.TracebackException.from_exception(current, capture_locals=True)
        parts += ["".join(rendering.format()), repr(current), str(current)]
        todo += [current.__cause__, current.__context__]
    return "\n".join(parts)


def _frames_rendered(exc: BaseException) -> int:
    """How many frames the rendering walked (so a test cannot pass by rendering nothing)."""
    return len(traceback.TracebackException.from_exception(exc, capture_locals=True).stack)


# --- ApiKey --------------------------------------------------------------------------------------


def test_apikey_bad_scope_keeps_secret_and_passphrase_out_of_its_frame() -> None:
    exc = _raised(
        lambda: ApiKey(
            "okx",
            "fake-key-id",
            FAKE_SECRET,
            scopes=["not-a-scope"],
            passphrase=FAKE_VENUE_PASSPHRASE,
        )
    )
    assert isinstance(exc, InvalidRequest)
    assert _frames_rendered(exc) >= 3  # the lambda, ApiKey.__init__, the scope check
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE)


def test_apikey_bad_secret_type_keeps_the_passphrase_out_of_its_frame() -> None:
    exc = _raised(lambda: ApiKey("okx", "fake-key-id", b"", passphrase=FAKE_VENUE_PASSPHRASE))
    assert isinstance(exc, InvalidRequest)
    _assert_absent(_rendered(exc), FAKE_VENUE_PASSPHRASE)


# --- key_from_env --------------------------------------------------------------------------------


def _fake_environ(**settings: str) -> dict[str, str]:
    """A whole environment: OKX's variables with fake secrets, ``settings`` and others.
    Built inside the call, so that no frame of the test itself holds it."""
    names = env_names("okx")
    environ = {
        "HOME": "/nonexistent",
        "FAKE_UNRELATED_TOKEN": FAKE_SIGNATURE,
        names["key_id"]: "fake-key-id",
        names["secret"]: FAKE_SECRET,
        names["passphrase"]: FAKE_VENUE_PASSPHRASE,
    }
    environ.update({names[field]: value for field, value in settings.items()})
    return environ


def test_key_from_env_bad_setting_keeps_the_environment_out_of_its_frames() -> None:
    exc = _raised(lambda: key_from_env("okx", environ=_fake_environ(kind="not-a-kind")))
    assert isinstance(exc, InvalidRequest)
    assert "not-a-kind" in str(exc)
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE, FAKE_SIGNATURE)


def test_key_from_env_bad_setting_keeps_os_environ_out_of_its_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = env_names("okx")
    monkeypatch.setenv(names["key_id"], "fake-key-id")
    monkeypatch.setenv(names["secret"], FAKE_SECRET)
    monkeypatch.setenv(names["passphrase"], FAKE_VENUE_PASSPHRASE)
    monkeypatch.setenv(names["scopes"], "read,not-a-scope")
    exc = _raised(lambda: key_from_env("okx"))
    assert isinstance(exc, InvalidRequest)
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE)


def test_key_from_env_missing_file_keeps_the_environment_out_of_its_frames(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = env_names("okx")
    monkeypatch.setenv(names["key_id"], "fake-key-id")
    monkeypatch.setenv(names["secret_file"], str(tmp_path / "absent"))
    monkeypatch.setenv(names["passphrase"], FAKE_VENUE_PASSPHRASE)
    monkeypatch.setenv("FAKE_UNRELATED_TOKEN", FAKE_SECRET)  # anything else in os.environ
    exc = _raised(lambda: key_from_env("okx"))
    assert isinstance(exc, KeyNotFound)
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE)


def test_key_from_env_unknown_environment_is_a_typed_error() -> None:
    assert isinstance(_raised(lambda: env_names("okx", "not-an-environment")), InvalidRequest)


# --- key loaders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action", "secrets"),
    [
        ("ed25519 loader, bad PEM", lambda: load_ed25519(Secret(FAKE_PEM)), [FAKE_PEM_BODY]),
        ("rsa loader, bad PEM", lambda: load_rsa(Secret(FAKE_PEM)), [FAKE_PEM_BODY]),
        ("ec loader, bad PEM", lambda: load_ec_p256(Secret(FAKE_PEM)), [FAKE_PEM_BODY]),
        (
            "ed25519 loader, seed and public half that do not match",
            lambda: load_ed25519(Secret(FAKE_SEED_PAIR)),
            [FAKE_SEED_PAIR, FAKE_SEED_PAIR_RAW[:32], FAKE_SEED_PAIR_RAW[32:]],
        ),
        (
            "ed25519 signer from an ApiKey",
            lambda: signer_for(ApiKey("binance", "fake-key-id", FAKE_PEM, kind="ed25519")),
            [FAKE_PEM_BODY],
        ),
        (
            "rsa signer from an ApiKey",
            lambda: signer_for(ApiKey("binance", "fake-key-id", FAKE_PEM, kind="rsa")),
            [FAKE_PEM_BODY],
        ),
        (
            "kraken signer, secret not base64",
            lambda: KrakenSigner(Secret(FAKE_NOT_BASE64)),
            [FAKE_NOT_BASE64],
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_key_loaders_given_a_wrong_key_keep_it_out_of_their_frames(
    name: str, action: Callable[[], object], secrets: list[str | bytes]
) -> None:
    exc = _raised(action)
    assert isinstance(exc, InvalidRequest), name
    assert exc.__context__ is None, "the error must not carry the parser's failure"
    _assert_absent(_rendered(exc), *secrets)


# --- the keystore --------------------------------------------------------------------------------


def _okx_key(key_id: str = "fake-key-id-1") -> ApiKey:
    return ApiKey(
        "okx",
        key_id,
        Secret(FAKE_SECRET),
        scopes=[Scope.READ, Scope.TRADE],
        passphrase=Secret(FAKE_VENUE_PASSPHRASE),
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys.enc"
    store = KeyStore.create(path, FAKE_STORE_PASSPHRASE, kdf=CHEAP_KDF)
    store.add("bot", _okx_key())
    return path


def _reachable_text(obj: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[str]:
    """Every str and bytes reachable from ``obj`` through containers, ``__dict__`` and
    ``__slots__`` (a Secret's own value included): what a debugger or a heap dump shows."""
    seen = set() if seen is None else seen
    if depth > 8 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (str, bytes)):
        yield obj if isinstance(obj, str) else obj.decode("latin-1")
        return
    if isinstance(obj, (int, float, bool, type(None))) or callable(obj):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _reachable_text(key, depth + 1, seen)
            yield from _reachable_text(value, depth + 1, seen)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            yield from _reachable_text(item, depth + 1, seen)
        return
    yield repr(obj)
    for value in getattr(obj, "__dict__", {}).values():
        yield from _reachable_text(value, depth + 1, seen)
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            name = f"_{cls.__name__.lstrip('_')}{slot}" if slot.startswith("__") else slot
            if hasattr(obj, name):
                yield from _reachable_text(getattr(obj, name), depth + 1, seen)


def test_keystore_state_holds_no_decrypted_secret(store_path: Path) -> None:
    store = KeyStore.open(store_path, FAKE_STORE_PASSPHRASE)
    assert store.get("bot").secret == Secret(FAKE_SECRET)  # it can still decrypt on demand
    store.add("second", _okx_key("fake-key-id-2"))
    store.rotate("bot", _okx_key("fake-key-id-3"))
    assert store.names() == ["bot", "second"]
    state = "\n".join(_reachable_text(vars(store)))
    _assert_absent(state, FAKE_SECRET, FAKE_VENUE_PASSPHRASE, FAKE_STORE_PASSPHRASE)
    assert "ciphertext" in state  # the walk reached the sealed document


def test_keystore_wrong_passphrase_keeps_both_passphrases_out_of_its_frames(
    store_path: Path,
) -> None:
    exc = _raised(lambda: KeyStore.open(store_path, WRONG_STORE_PASSPHRASE))
    assert isinstance(exc, WrongPassphrase)
    assert _frames_rendered(exc) >= 3
    _assert_absent(
        _rendered(exc),
        WRONG_STORE_PASSPHRASE,
        FAKE_STORE_PASSPHRASE,
        FAKE_SECRET,
        FAKE_VENUE_PASSPHRASE,
    )


@pytest.mark.parametrize(
    "options",
    [{"not_an_option": 1}, {"clock": "not a clock"}, {"overlap": 5}],
    ids=["unknown option", "clock not callable", "option the store sets itself"],
)
def test_keystore_ring_misuse_is_refused_without_the_entry_in_its_frames(
    store_path: Path, options: dict[str, Any]
) -> None:
    store = KeyStore.open(store_path, FAKE_STORE_PASSPHRASE)
    exc = _raised(lambda: store.ring("bot", **options))
    assert isinstance(exc, InvalidRequest)
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("add under a taken name", lambda s: s.add("bot", _okx_key("fake-key-id-9"))),
        ("rotate to a wider key", lambda s: s.rotate("bot", _wider_key())),
        ("retire with nothing to retire", lambda s: s.retire("bot")),
        ("remove an unknown name", lambda s: s.remove("nobody")),
    ],
)
def test_keystore_refused_changes_keep_entries_out_of_their_frames(
    store_path: Path, name: str, change: Callable[[KeyStore], object]
) -> None:
    store = KeyStore.open(store_path, FAKE_STORE_PASSPHRASE)
    exc = _raised(lambda: change(store))
    assert isinstance(exc, LocalRefusal), name
    _assert_absent(_rendered(exc), FAKE_SECRET, FAKE_VENUE_PASSPHRASE, FAKE_STORE_PASSPHRASE)


def _wider_key() -> ApiKey:
    return ApiKey(
        "okx",
        "fake-key-id-8",
        Secret(FAKE_SECRET),
        scopes=[Scope.READ, Scope.TRADE, Scope.WITHDRAW],
        passphrase=Secret(FAKE_VENUE_PASSPHRASE),
    )


# --- ccxt ----------------------------------------------------------------------------------------


def test_ccxt_unreadable_answer_log_record_holds_no_credentials(sim: Simulator) -> None:
    """ccxt fails to read an answer; the DEBUG record's exception, rendered with its
    locals by the handler (as Sentry does), must not show the credentials the codec lent."""
    pytest.importorskip("ccxt")
    from securetrade.models import LimitOrder
    from securetrade.venues import Op, Verdict
    from securetrade.venues.ccxt.codec import CcxtResponse

    made = sim.create_key()
    key = ApiKey("ccxt:binance", made.key_id, made.secret, scopes=made.scopes)
    server = sim.serve()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("securetrade.ccxt")
    handler, level = Keep(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with Client(
            key,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=":memory:",
        ) as client:
            client.instruments()
            venue = client.venue
            endpoint = venue.endpoints[Op.OPEN_ORDERS]
            request = venue.prepare(
                endpoint,
                [("symbol", "BTC/USDT")],
                key_id=key.key_id,
                signer=venue.signer(key),
                timestamp_ms=1_700_000_000_000,
            )
            client.place_order(  # the secret was lent and signed with, for real
                LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.001", price="60000")
            )
            outcome = venue.interpret(endpoint, CcxtResponse(200, {}, b"[5]", request=request))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert outcome.verdict is Verdict.AMBIGUOUS
    failed = [r for r in records if r.exc_info]
    assert failed, "ccxt's failure to read was not logged with its exception"
    record = failed[0]
    assert record.exc_info is not None
    assert record.exc_info[1] is not None
    secret = key.secret.expose()
    text = logging.Formatter().format(record)
    assert "TypeError" in text  # the traceback text is still there, redacted
    _assert_absent(text, secret)
    _assert_absent(_rendered(record.exc_info[1]), secret)
    assert record.exc_info[2] is None  # no frame left to render locals from


def test_ccxt_refused_arguments_carry_no_ccxt_frames(sim: Simulator) -> None:
    pytest.importorskip("ccxt")
    from securetrade.venues import Op

    made = sim.create_key()
    key = ApiKey("ccxt:binance", made.key_id, made.secret, scopes=made.scopes)
    server = sim.serve()
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        client.instruments()
        venue = client.venue
        exc = _raised(
            lambda: venue.prepare(
                venue.endpoints[Op.OPEN_ORDERS],
                [("symbol", "NOPE/USDT")],
                key_id=key.key_id,
                signer=venue.signer(key),
                timestamp_ms=1_700_000_000_000,
            )
        )
    assert isinstance(exc, InvalidRequest)
    assert exc.__context__ is None
    _assert_absent(_rendered(exc), key.secret.expose())


# --- log records: child loggers, exceptions attached ---------------------------------------------


def _fail_holding(token: str) -> None:
    signature = token  # a local of the failing frame, as in a library's signing code
    raise RuntimeError(f"GET /api/v3/account?timestamp=1&signature={signature} failed")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    "name",
    ["urllib3.connectionpool", "httpx._client", "securetrade.created.after.install"],
)
def test_child_logger_records_are_redacted_with_their_exception(name: str) -> None:
    """A parent's filters do not run for its children's records: the policy must reach
    the child itself, the message and the exception attached to it."""
    install_log_redaction()
    logger = logging.getLogger(name)  # the last one is created only now
    parent = logging.getLogger(name.split(".")[0])
    kept, above = _Keep(), _Keep()
    level = logger.level
    logger.addHandler(kept)
    parent.addHandler(above)
    logger.setLevel(logging.DEBUG)
    try:
        try:
            _fail_holding(FAKE_SIGNATURE)
        except RuntimeError:
            logger.debug(
                '%s "GET /api/v3/account?timestamp=1&signature=%s HTTP/1.1" 200 None',
                "https://127.0.0.1:1",
                FAKE_SIGNATURE,
                exc_info=True,
            )
    finally:
        logger.removeHandler(kept)
        parent.removeHandler(above)
        logger.setLevel(level)
    assert len(kept.records) == 1
    assert above.records == kept.records  # the parent's handlers see the same record
    record = kept.records[0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.handle(record)
    formatted = stream.getvalue()
    assert f"signature={MASK}" in formatted
    assert "RuntimeError" in formatted
    assert "_fail_holding" in formatted
    _assert_absent(formatted, FAKE_SIGNATURE)
    assert record.exc_info is not None
    exc_type, exc_value, exc_tb = record.exc_info
    assert exc_type is RuntimeError
    assert exc_value is not None
    _assert_absent(record.getMessage(), FAKE_SIGNATURE)
    _assert_absent(_rendered(exc_value), FAKE_SIGNATURE)
    _assert_absent("".join(traceback.format_exception(exc_type, exc_value, exc_tb)), FAKE_SIGNATURE)


def test_existing_child_loggers_get_the_filter_too() -> None:
    """The second line, for an application that replaces the record factory."""
    logging.getLogger("urllib3.connectionpool")
    install_log_redaction()
    filters = logging.getLogger("urllib3.connectionpool").filters
    assert any(isinstance(f, RedactingFilter) for f in filters)


def test_secure_trade_errors_in_records_keep_their_context_fields() -> None:
    logger = logging.getLogger("securetrade.test_adversarial")
    kept = _Keep()
    logger.addHandler(kept)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        try:
            raise SecureTradeError("refused", venue="binance", code=-2015, request_id="r1")
        except SecureTradeError:
            logger.debug("failed", exc_info=True)
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)
    exc = kept.records[0].exc_info[1]  # type: ignore[index]
    assert isinstance(exc, SecureTradeError)
    assert (exc.venue, exc.code, exc.request_id) == ("binance", -2015, "r1")
    assert str(exc) == "refused | venue=binance | code=-2015 | request_id=r1"


# --- ScopeError is not an OSError (from failure 10) ------------------------------------------


def test_scope_error_is_not_swallowed_by_except_oserror() -> None:
    key = ApiKey("binance", "fake-key-id", Secret(FAKE_SECRET), scopes=[Scope.READ])
    assert not issubclass(ScopeError, OSError)

    def bot_step() -> str:
        try:
            key.require(Scope.WITHDRAW, address="fake-address")
        except OSError:  # a bot's network-error handler, meant for retries
            return "retried"
        return "done"

    with pytest.raises(ScopeError):
        bot_step()
