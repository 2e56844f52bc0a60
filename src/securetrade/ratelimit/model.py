"""What a limit is: a kind of cost, counted per scope over a window, and who may spend it.

Venues count different things over different keys. Binance counts request weight per IP
and orders per account; Kraken counts calls per API key and trades per pair; OKX counts
orders per user and instrument. A :class:`RateLimit` names the kind of cost it counts, the
:class:`LimitScope` it is counted over, and its window; an endpoint's cost says how many
units of each kind one call spends, possibly depending on its parameters
(:class:`CostRule`). A call is admitted only when every limit it draws on has room for its
:class:`Priority`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._checks import Choice, shown, text, whole
from .._checks import seconds as duration
from ..errors import InvalidRequest

__all__ = [
    "DEFAULT_SHARES",
    "Caller",
    "CostRule",
    "LimitScope",
    "Priority",
    "RateLimit",
    "Usage",
    "cost_of",
    "key_label",
]


class LimitScope(str, Choice):
    """Whose traffic a limit counts together."""

    IP = "ip"  # every key behind one egress address (Binance REQUEST_WEIGHT)
    ACCOUNT = "account"  # every key of one account (Binance ORDERS, Bybit per UID)
    API_KEY = "api_key"  # one key (Kraken's call counter)
    INSTRUMENT = "instrument"  # one account in one instrument (OKX: user ID + instrument ID)
    PAIR = "pair"  # one key in one pair (Kraken's trading limits)


class Priority(int, Choice):
    """Who goes first when a window fills: cancels, then orders, then the rest.

    Each class may fill a window only up to its share (:data:`DEFAULT_SHARES`), so the
    remainder is headroom that bulk market-data calls can never take from a cancel.
    """

    BULK = 0  # market data, history, instrument tables
    NORMAL = 1  # account reads, clock sync
    ORDER = 2  # placing an order, and asking whether one was placed
    CANCEL = 3  # cancels: what limits a loss must never wait


# Share of each window's usable capacity that calls of a class (and below) may fill.
DEFAULT_SHARES: Mapping[Priority, float] = {
    Priority.BULK: 0.7,
    Priority.NORMAL: 0.85,
    Priority.ORDER: 0.95,
    Priority.CANCEL: 1.0,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` units of ``kind`` in any ``seconds``-long window, per ``scope``.

    ``kind`` is what endpoint costs name (``"REQUEST_WEIGHT"``, ``"ORDERS"``); several
    limits may count the same kind over different windows. ``header`` is the response
    header in which the venue reports its own count for this window, if it does.
    """

    kind: str
    seconds: float
    limit: int
    header: str | None = None
    scope: LimitScope = LimitScope.IP

    def __post_init__(self) -> None:
        if ":" in text("rate limit kind", self.kind):
            raise InvalidRequest(f"rate limit kind {self.kind!r} must be printable, without ':'")
        duration("rate limit window", self.seconds, above=0)
        whole("rate limit (requests or weight per window)", self.limit, 1)
        if not isinstance(self.scope, LimitScope):
            object.__setattr__(self, "scope", _scope(self.scope))


def _scope(value: object) -> LimitScope:
    try:
        return LimitScope(value)
    except ValueError:
        names = ", ".join(s.value for s in LimitScope)
        raise InvalidRequest(f"rate limit scope {shown(value)} is not one of {names}") from None


_PARAMS = "params must be (name, value) pairs of text, as a venue's *_params() give"


@dataclass(frozen=True, slots=True)
class CostRule:
    """A parameter-dependent cost: ``cost`` replaces the endpoint's base cost when it applies.

    It applies when ``param`` is absent (``absent=True``), or when it is present and, if
    ``up_to`` is set, a whole number no larger than ``up_to``. Rules are tried in order and
    the first that applies wins, so Binance's ``depth`` table reads ``limit`` up to 100: 5,
    up to 500: 25, up to 1000: 50, with 250 as the base cost.
    """

    param: str
    cost: Mapping[str, int] = field(hash=False)
    absent: bool = False
    up_to: int | None = None

    def applies(self, params: Sequence[tuple[str, str]]) -> bool:
        """Whether this rule's cost applies to a request with ``params``."""
        if isinstance(params, (str, bytes)):
            raise InvalidRequest(_PARAMS)
        try:  # unpacking is the test of a pair; a wrong one is the refusal below
            value = next((v for k, v in params if k == self.param), None)
        except (TypeError, ValueError):
            raise InvalidRequest(_PARAMS) from None
        if value is not None and type(value) is not str:
            raise InvalidRequest(_PARAMS)
        if self.absent or value is None:
            return self.absent and value is None
        if self.up_to is None:
            return True
        # isdecimal: int() takes it ('²' is a digit int() refuses); 4,300+ digits neither
        return value.isdecimal() and len(value) < 20 and int(value) <= self.up_to


def cost_of(
    base: Mapping[str, int], rules: Sequence[CostRule], params: Sequence[tuple[str, str]]
) -> Mapping[str, int]:
    """The cost of one call: the first rule that applies to ``params``, else ``base``.

    The mapping returned is one of the table's own objects, never a new one, so limiters
    can cache their plans by identity.
    """
    try:  # free when nothing raises: this runs for every request
        for rule in rules:
            if rule.applies(params):
                return rule.cost
    except (TypeError, AttributeError, ValueError):
        raise InvalidRequest(
            "cost_of takes a list of CostRule and the request's (name, value) pairs"
        ) from None
    return base


@dataclass(frozen=True, slots=True)
class Usage:
    """One window of one scope right now: ``used`` of ``capacity`` usable units."""

    limit: RateLimit
    scope_id: str
    used: int
    capacity: int


def key_label(key_id: str) -> str:
    """A short, stable name for an API key in shared state and metrics (never the id)."""
    return hashlib.sha256(text("key_id", key_id).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, eq=False, slots=True)
class Caller:
    """Whose key and account a call spends: picks the API key, account and pair windows.

    Both are labels (:func:`key_label`), never a key id. Compared by identity, so a client
    makes one per key and reuses it.
    """

    key: str
    account: str

    @classmethod
    def of(cls, key_id: str, account: str | None = None) -> Caller:
        """The caller for ``key_id`` of ``account`` (by default the key is the account)."""
        return cls(key_label(key_id), key_label(account if account is not None else key_id))
