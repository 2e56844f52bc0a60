"""Every error a caller can catch, sorted by what it means for their money.

::

    SecureTradeError
    ├── LocalRefusal                 nothing was sent: safe to fix the input and call again
    │   ├── InvalidRequest           bad parameters (NaN, too many decimals, bad symbol, ...)
    │   ├── ScopeError               the key was not granted what this call needs
    │   ├── PolicyViolation          a pre-trade rule or the kill switch said no
    │   ├── IdempotencyKeyMismatch   the key was already used with other parameters
    │   ├── IdempotencyKeyExpired    the key's intent was purged; its tombstone refuses it
    │   ├── OverPermissionedKey      the venue says the key can do more than it declares
    │   ├── KeystoreError            keys at rest could not be read or written
    │   │   ├── WrongPassphrase      the passphrase (or keyring key) does not open the file
    │   │   ├── KeystoreTampered     the file was altered or corrupted: nothing is trusted
    │   │   ├── KeystorePermissions  the file is readable by others (mode must be 0600)
    │   │   └── KeyNotFound          no such key in the store or the environment
    │   └── UntrustedServer          the server's certificate failed verification; 0 bytes sent
    │       └── PinMismatch          ... or it verified but holds no pinned key
    ├── VenueRejected                the venue answered "no": certainly not executed
    │   ├── AuthenticationRejected   bad key, bad signature, expired timestamp
    │   │   └── TimestampRejected    only the timestamp or nonce: a clock or a delay, not the key
    │   ├── InsufficientFunds
    │   ├── OrderNotFound
    │   └── DuplicateOrder           the client order id is already in use at the venue
    ├── RetryableError               certainly not executed, may succeed later
    │   ├── RateLimited              429 (and 418 as IpBanned): wait ``retry_after`` seconds
    │   │   └── IpBanned
    │   ├── ConnectFailed            the request never reached the venue
    │   └── OrderStillOpen           an amend's cancel was not done: amend again later
    ├── AmbiguousOutcome             the request may have executed; the idempotency layer
    │   └── UnresolvedOrder          asks the venue, and raises this only when it cannot tell
    ├── InboundRejected              (receiving side) a signed message failed verification
    ├── IntentChanged                an order's journal row moved on since it was read (another
    │                                writer): nothing was overwritten; read it again, decide
    └── JournalError                 the order journal cannot be opened or written: when
                                     opening it, nothing was sent; see the message for the fix

Every error carries the venue, the venue's error code and request id where there is one. No
error ever holds a secret: messages are built from redacted values only.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessTokenRefused",
    "AmbiguousOutcome",
    "AuthenticationRejected",
    "BackupExpired",
    "ConfirmationRequired",
    "ConnectFailed",
    "DuplicateOrder",
    "HedgingNotAllowed",
    "IdempotencyKeyExpired",
    "IdempotencyKeyMismatch",
    "InheritedAcrossFork",
    "InboundRejected",
    "InsufficientFunds",
    "IntentChanged",
    "InvalidOTP",
    "InvalidRequest",
    "IpBanned",
    "JournalError",
    "KeyNotFound",
    "KeystoreError",
    "KeystorePermissions",
    "KeystoreTampered",
    "LocalRefusal",
    "OAuthError",
    "OrderNotFound",
    "OrderStillOpen",
    "OverPermissionedKey",
    "PinMismatch",
    "PolicyViolation",
    "RateLimited",
    "ReauthorizationRequired",
    "RetryableError",
    "ScopeError",
    "SecureTradeError",
    "TimestampRejected",
    "UnresolvedOrder",
    "UntrustedServer",
    "VenueRejected",
    "WrongPassphrase",
]


class SecureTradeError(Exception):
    """Root of every securetrade error.

    ``venue`` names the venue involved, ``code`` is the venue's own error code (or ``None``)
    and ``request_id`` the venue's request identifier when it returned one.
    """

    def __init__(
        self,
        message: str,
        *,
        venue: str | None = None,
        code: int | str | None = None,
        request_id: str | None = None,
    ) -> None:
        from .transport.redaction import redact_text  # late: errors is imported first

        message = redact_text(message)  # venue messages may echo what was sent
        super().__init__(message)
        self.message = message
        self.venue = venue
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.venue is not None:
            parts.append(f"venue={self.venue}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.request_id is not None:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only context when an error crosses a process boundary.
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[SecureTradeError], message: str, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


# --- nothing was sent -------------------------------------------------------------------------


class LocalRefusal(SecureTradeError):
    """Refused locally, before any byte left the process."""


class InheritedAcrossFork(LocalRefusal):
    """An object built before ``os.fork()`` (a :class:`~securetrade.Client`, a journal, a
    SQLite limiter or audit trail) was used in the forked child. Its connections, SQLite
    file handles and locks are its parent's: using them from two processes could mix two
    processes' bytes on one TLS session, hand one an answer meant for the other, or corrupt
    the SQLite file. Refused before anything was sent or written; the parent's object goes
    on working. Build it in the worker, after the fork (with :mod:`multiprocessing`: inside
    the worker's function, or use the ``spawn`` or ``forkserver`` start method)."""


class InvalidRequest(LocalRefusal, ValueError):
    """The parameters are invalid for this venue or instrument.

    It stays a :class:`ValueError`, as callers validating input expect; nothing in
    securetrade catches ``ValueError`` around code that raises it without turning it back
    into an :class:`InvalidRequest` or another error of this tree.
    """


class ScopeError(LocalRefusal):
    """The API key was not granted the scope (or limit) this call needs.

    Not a :class:`PermissionError`: that is an :class:`OSError`, and a bot's
    ``except OSError`` (meant for network failures, retried) would swallow a refusal.
    """


class PolicyViolation(LocalRefusal):
    """A pre-trade policy rule, or the kill switch, refused the order. ``rule`` names it."""

    def __init__(self, message: str, *, rule: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.rule = rule


class IdempotencyKeyMismatch(LocalRefusal):
    """The idempotency key was used before with different parameters; nothing was sent."""


class IdempotencyKeyExpired(LocalRefusal):
    """The key's intent was purged from the journal after its retention period, and its
    tombstone still stands: nothing was sent, because the first order may exist at the
    venue. A new order needs a new key. ``client_order_id`` names the purged intent."""

    def __init__(self, message: str, *, client_order_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.client_order_id = client_order_id


class OverPermissionedKey(LocalRefusal):
    """The venue reports the key can do more than its declared scopes (withdrawals, no IP
    restriction); refused so that a leaked key cannot do more than the bot needs.
    ``report`` is the :class:`~securetrade.keys.KeyCheck` that found it."""

    def __init__(self, message: str, *, report: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.report = report


class KeystoreError(LocalRefusal):
    """Keys at rest could not be read or written; nothing was sent anywhere."""


class WrongPassphrase(KeystoreError):
    """The passphrase (or the key-encryption key from the OS keyring) does not open it."""


class KeystoreTampered(KeystoreError):
    """The keystore failed authentication or is malformed: it was altered or corrupted."""


class KeystorePermissions(KeystoreError):
    """The keystore file is accessible to other users; it must be mode 0600."""


class KeyNotFound(KeystoreError):
    """No key under that name in the keystore, or a variable missing from the environment."""


class UntrustedServer(LocalRefusal):
    """The server failed TLS verification (expired, wrong host, unknown CA); nothing was sent.

    Never retried: it may mean the connection is being intercepted.
    """


class PinMismatch(UntrustedServer):
    """The server's certificate chain holds no pinned public key; no request byte was written.

    Never retried: a pin failure means the connection may be intercepted.
    """


# --- the venue said no ------------------------------------------------------------------------


class VenueRejected(SecureTradeError):
    """The venue answered with a definitive refusal: the request was not executed."""


class AuthenticationRejected(VenueRejected):
    """The venue refused the credentials, the signature or the timestamp."""


class TimestampRejected(AuthenticationRejected):
    """The venue refused the request's timestamp or nonce (outside its receive window, or
    not above the last one): our clock or a delay on the way, not the key. Certainly not
    executed; the clock is resynchronised before the next request, so send it again."""


class InsufficientFunds(VenueRejected):
    """The account does not hold enough of the asset."""


class OrderNotFound(VenueRejected):
    """The venue knows no such order."""


class DuplicateOrder(VenueRejected):
    """The venue already holds an order with this client order id."""


# --- certainly not executed, may work later ---------------------------------------------------


class RetryableError(SecureTradeError):
    """The request was certainly not executed and may succeed if sent again later."""


class RateLimited(RetryableError):
    """The venue (or our own limiter's view of it) asks us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class IpBanned(RateLimited):
    """HTTP 418: the venue has banned this IP until ``retry_after`` seconds from now."""


class ConnectFailed(RetryableError):
    """The connection could not be made, so the request never reached the venue."""


class OrderStillOpen(RetryableError):
    """An amend found the order it replaces still open after its cancel was answered
    "no such order" (a lagging venue, or a replica that has not caught up): nothing was
    placed, so two orders are never live at once. Amend again later; the replacement's
    idempotency key is still unused, so the retry places it at most once."""


# --- may have executed ------------------------------------------------------------------------


class AmbiguousOutcome(SecureTradeError):
    """The request may or may not have been executed (timeout, 5xx, lost response)."""


class UnresolvedOrder(AmbiguousOutcome):
    """The venue could not yet tell whether this order exists; it stays in the journal.

    ``client_order_id`` identifies it; ``Client.unresolved()`` lists every such intent.
    """

    def __init__(self, message: str, *, client_order_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.client_order_id = client_order_id


# --- a message we received was refused --------------------------------------------------------


class InboundRejected(SecureTradeError):
    """A signed inbound message (a trade signal, a webhook) failed verification.

    ``reason`` is one of ``malformed``, ``unknown_key``, ``stale``, ``bad_signature``,
    ``replayed``, ``capacity``: for the receiver's logs. Answer the sender with a generic
    refusal, so that a prober learns nothing about which check failed.
    """

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


# --- another writer moved an order on -------------------------------------------------------


class IntentChanged(SecureTradeError):
    """A guarded step of an order (``Core.conclude``, the UNKNOWN that ``Core.resolve``
    records when the venue cannot tell) found its journal row no longer the one the caller
    read: another thread, task, process or host moved it on meanwhile. Nothing was
    overwritten. Read the intent again (``core.journal.get(client_order_id)``) and decide
    from what it holds now; the order calls of a client do so themselves.
    """

    def __init__(self, message: str, *, client_order_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.client_order_id = client_order_id


# --- the order journal cannot be used ---------------------------------------------------------


class JournalError(SecureTradeError):
    """The order journal could not be opened, or could not record a step of an order.

    Opening a journal (a path that cannot hold one, another program's database, a newer
    schema) raises it before anything is sent; the message says what to change. Raised by
    an order call, a journal write failed: before the send, nothing was sent; after it, the
    order may exist, and its intent, left unfinished in the journal, is resolved with the
    venue by the next recovery. Not a :class:`LocalRefusal` for that second case.
    """


# --- OAuth and second factors (securetrade.oauth, securetrade.mfa) ----------------------------


class ReauthorizationRequired(LocalRefusal):
    """An OAuth credential can no longer be (or soon cannot be) renewed without a person:
    its refresh token expires inside the warning window, was refused, or there is none.
    Nothing was sent. Run ``securetrade oauth login <venue>`` again. ``expires_at`` is the
    hard expiry when known."""

    def __init__(self, message: str, *, expires_at: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.expires_at = expires_at


class OAuthError(SecureTradeError):
    """The authorization server refused or garbled a token exchange (``code`` is its OAuth
    error, such as ``invalid_grant``); no order was involved."""


class AccessTokenRefused(AuthenticationRejected):
    """The venue refused the OAuth access token of an order's create (revoked, or expired
    by the server's clock). Certainly not placed; the token is refreshed before the next
    request. A create is never resent on its own: place the order again (the same
    idempotency key may be used)."""


class HedgingNotAllowed(PolicyViolation):
    """The account nets positions (OANDA ``hedgingEnabled=false``, the FIFO rule of US
    accounts): an order against an open position may reduce or close it, never close it
    and open the opposite one in the same order. Nothing was sent. Close the position
    first (an order of its size), then place the rest as a new order."""


class InvalidOTP(AuthenticationRejected):
    """The venue refused a request signed with a key that has a second factor: almost
    always the one-time password (a wrong static password, a TOTP seed that is not the
    key's, or a clock off by more than one 30 s step), not the signature."""


class ConfirmationRequired(LocalRefusal):
    """A dangerous operation (withdraw, widening a key, releasing the kill switch,
    exporting keys) needs a one-time code from the operator's enrolled authenticator, and
    the code was missing, wrong, or already used. Nothing was done."""


class BackupExpired(KeystoreError):
    """A keystore backup past its expiry: restoring it could bring back shredded keys.

    Restore a newer backup, or re-create the keys; an erasure stays an erasure.
    """
