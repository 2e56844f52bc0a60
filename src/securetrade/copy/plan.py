"""The pure part of copy trading: what one follower should do for one leader event.

:func:`plan` reads nothing and sends nothing: given the event, the follower and what is
known of the follower's account now (:class:`FollowerState`), it returns the orders to
place, each with its idempotency key, or one :class:`~.model.Skip` with its reason. It
is the same function whether it runs in a notebook, in the embedded engine or on one of
several hosts, which is what makes the outcome of an event reproducible.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .._checks import instance, text, whole
from ..errors import InvalidRequest
from ..keys import Secret
from ..models import Instrument, LimitOrder, MarketOrder, OrderRequest, Side, TimeInForce
from ..signing.signers import SecretHolder, held
from .model import CopyIntent, Follower, LeaderEvent, Movement, SizingMode, Skip, SkipReason

__all__ = [
    "CopyKeys",
    "EventKeys",
    "FollowerState",
    "Terms",
    "copy_key",
    "decide",
    "follower_symbol",
    "plan",
]

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class FollowerState:
    """What :func:`plan` needs to know about a follower's account right now.

    ``instrument`` is the mapped symbol's rules on the follower's venue (None: not listed
    there). ``position`` is the base asset the follower holds (what a close sells a share
    of); ``equity`` its value in the quote asset; ``quote_free`` and ``base_free`` what it
    can spend. ``last_price`` (optional) is the venue's price now: an open whose bound it
    has already passed is skipped for slippage instead of being sent to expire.
    ``closed_at_ms`` is when the leader's latest close in the event's symbol happened, as
    far as the engine knows: an open from before it is stale (the leader holds no more of
    it), however young, and is skipped as such (a resumed or late-delivered open).
    """

    instrument: Instrument | None
    now_ms: int
    position: Decimal = Decimal(0)
    equity: Decimal | None = None
    quote_free: Decimal | None = None
    base_free: Decimal | None = None
    last_price: Decimal | None = None
    quarantined: bool = False
    closed_at_ms: int | None = None


def copy_key(secret: Secret, event_id: str, follower_id: str, leg: int) -> str:
    """The follower's idempotency key for one leg of one event: a keyed hash, never time
    or randomness, so a redelivered or replayed event maps to the same key on any host.
    Keyed, so a follower cannot predict another's keys from the public event ids.

    It is ``copy-`` and the first 40 hex digits of HMAC-SHA256 under the secret of the
    event id, NUL, the follower id, NUL, the leg: keys in journals rely on it not changing."""
    text("event_id", event_id)
    text("follower_id", follower_id)
    whole("leg", leg, 0)
    return CopyKeys(secret).event(event_id).key(follower_id, leg)


class CopyKeys(SecretHolder):
    """:func:`copy_key`'s keys under one secret, keyed once: the secret is exposed when this
    is made, not once per follower, and it is never repr'd, pickled nor copied."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: Secret) -> None:
        self._keyed = hmac.new(held(secret).expose(), digestmod=hashlib.sha256)

    def event(self, event_id: str) -> EventKeys:
        """The keys of ``event_id``'s followers (its part of the hash is taken once)."""
        return EventKeys(self._keyed, text("event_id", event_id))


class EventKeys(SecretHolder):
    """One event's followers' keys: :func:`copy_key` with the keyed hash of the event's id
    computed once per event, so a follower costs only its own part of the hash."""

    __slots__ = ("_keyed", "event_id")

    def __init__(self, keyed: hmac.HMAC, event_id: str) -> None:
        mac = keyed.copy()
        mac.update(f"{event_id}\x00".encode())
        self._keyed = mac
        self.event_id = event_id

    def key(self, follower_id: str, leg: int) -> str:
        """The key of ``follower_id``'s leg ``leg`` of this event."""
        if not (  # inlined: this runs once per follower of every event
            type(follower_id) is str
            and follower_id
            and follower_id.isprintable()
            and type(leg) is int
            and 0 <= leg < 1 << 31
        ):
            # Refused, not formatted: None would hash as "None" and key a trade nobody named.
            text("follower_id", follower_id)
            whole("leg", leg, 0, (1 << 31) - 1)
        mac = self._keyed.copy()
        mac.update(f"{follower_id}\x00{leg}".encode())
        return "copy-" + mac.hexdigest()[:40]


def _keys(secret: Secret | EventKeys, event: LeaderEvent) -> EventKeys:
    """``event``'s keys: the engine's, keyed once per event, or made here from a secret."""
    if isinstance(secret, EventKeys):
        if secret.event_id != event.id:
            raise InvalidRequest(
                f"plan() got the keys of event {secret.event_id!r} for event {event.id!r}: "
                "pass the secret, or the keys made for this event"
            )
        return secret
    return CopyKeys(secret).event(event.id)


def follower_symbol(event: LeaderEvent, follower: Follower) -> str | None:
    """The event's symbol on the follower's venue, or None when it has no mapping."""
    instance("event", event, LeaderEvent, optional=False)
    instance("follower", follower, Follower, optional=False)
    return mapped_symbol(event, follower)


def mapped_symbol(event: LeaderEvent, follower: Follower) -> str | None:
    """:func:`follower_symbol` for callers whose event and follower are checked already
    (the engine's own, once per follower and event)."""
    mapped = follower.symbols.get(event.symbol)
    if mapped is not None:
        return mapped
    return event.symbol if follower.venue == event.venue else None


def plan(
    event: LeaderEvent, follower: Follower, state: FollowerState, *, secret: Secret | EventKeys
) -> list[CopyIntent | Skip]:
    """The follower's copy of ``event``: one intent per leg, or a skip with its reason.

    ``secret`` keys the idempotency keys; a fan-out passes the event's :class:`EventKeys`
    instead (the same keys, the secret keyed once per event rather than per follower)."""

    if not (
        type(event) is LeaderEvent and type(follower) is Follower and type(state) is FollowerState
    ):  # the engine's own are (one test each per follower); anything else is checked here
        instance("event", event, LeaderEvent, optional=False)
        instance("follower", follower, Follower, optional=False)
        instance("state", state, FollowerState, optional=False)
    decided = decide(
        event,
        follower,
        mapped_symbol(event, follower),
        state.instrument,
        state.now_ms,
        state.position,
        state.equity,
        state.quote_free,
        state.base_free,
        state.last_price,
        state.quarantined,
        state.closed_at_ms,
    )
    if isinstance(decided, Skip):
        return [decided]
    key = _keys(secret, event).key(follower.id, 0)
    return [CopyIntent(follower.id, event.id, 0, decided, key)]


#: :func:`decide`'s memo of one event's open terms (see there).
Terms = dict[tuple[object, ...], tuple[Instrument, Decimal, Decimal, Decimal, OrderRequest]]


def decide(
    event: LeaderEvent,
    follower: Follower,
    symbol: str | None,
    rules: Instrument | None,
    now_ms: int,
    position: Decimal = Decimal(0),
    equity: Decimal | None = None,
    quote_free: Decimal | None = None,
    base_free: Decimal | None = None,
    last_price: Decimal | None = None,
    quarantined: bool = False,
    closed_at_ms: int | None = None,
    terms: Terms | None = None,
) -> OrderRequest | Skip:
    """:func:`plan`'s decision for one follower, from the fields of its
    :class:`FollowerState` (``symbol``: the event's symbol on the follower's venue, from
    :func:`mapped_symbol`): the order of its one leg, or why it places none. The engine
    calls it as it is, without a state or an intent made per follower.

    ``terms``, a dict kept for one event, memoises what is the same for every follower
    with the same sizing and slippage cap (the open's quantity when it does not depend on
    the follower's equity, its price bound, its order): a fan-out works them out once."""
    if quarantined:
        return Skip(follower.id, event.id, SkipReason.QUARANTINED)
    if symbol is None or rules is None or not rules.trading:
        return Skip(
            follower.id, event.id, SkipReason.UNMAPPED_SYMBOL, f"{event.symbol} on {follower.venue}"
        )
    if event.movement is Movement.CLOSE:
        return _close(event, follower, position, base_free, symbol, rules)
    if closed_at_ms is not None and event.at_ms < closed_at_ms:
        return Skip(
            follower.id,
            event.id,
            SkipReason.TTL,
            f"the leader closed {event.symbol} after this open",
        )
    if now_ms - event.at_ms > follower.ttl_ms:
        return Skip(follower.id, event.id, SkipReason.TTL, f"{now_ms - event.at_ms} ms old")
    if follower.equity_floor is not None and (equity or 0) < follower.equity_floor:
        return Skip(follower.id, event.id, SkipReason.RISK_LIMIT, "equity below the floor")
    sizing = follower.sizing
    fixed = sizing.mode not in _BY_EQUITY  # the quantity is the same for every such follower
    memo = (
        (symbol, id(rules), id(sizing.mode), sizing.value, follower.slippage_bps)
        if terms is not None and fixed
        else None
    )
    known = terms.get(memo) if terms is not None and memo is not None else None
    order: OrderRequest | None = None
    if known is not None and known[0] is rules:
        _, quantity, bound, notional, order = known
    else:
        quantity = _round(_size(event, follower, equity), rules.step_size, ROUND_FLOOR)
        bound = _bound(event, follower, rules)
    if bound <= 0:  # a price under one tick, or a sell capped at zero: no limit order
        return Skip(
            follower.id,
            event.id,
            SkipReason.BELOW_MINIMUM,
            f"price bound {bound} is not above zero",
        )
    if last_price is not None and (
        last_price > bound if event.side is Side.BUY else last_price < bound
    ):
        return Skip(
            follower.id, event.id, SkipReason.SLIPPAGE, f"last price {last_price} beyond {bound}"
        )
    if order is None:
        notional = quantity * bound
    if quantity <= 0 or quantity < rules.min_quantity or notional < rules.min_notional:
        return Skip(follower.id, event.id, SkipReason.BELOW_MINIMUM, f"{quantity} {symbol}")
    if follower.max_notional is not None and notional > follower.max_notional:
        return Skip(
            follower.id,
            event.id,
            SkipReason.RISK_LIMIT,
            f"notional {notional} above {follower.max_notional}",
        )
    if follower.max_position is not None:
        after = position + (quantity if event.side is Side.BUY else -quantity)
        if abs(after) > follower.max_position:
            return Skip(
                follower.id,
                event.id,
                SkipReason.RISK_LIMIT,
                f"position {after} beyond {follower.max_position}",
            )
    spendable = quote_free if event.side is Side.BUY else base_free
    needed = notional if event.side is Side.BUY else quantity
    if spendable is not None and spendable < needed:
        return Skip(follower.id, event.id, SkipReason.BALANCE, f"needs {needed}, has {spendable}")
    # Opens go out as IOC limits at the slippage bound: what cannot fill there, expires.
    if order is None:
        order = _ioc_limit(symbol, event.side, quantity, bound)
        # Shared only where rounding to the step and the tick makes equal terms the same
        # text: without it, a sizing of 1 and one of 1.0 (equal keys) would send either.
        if memo is not None and terms is not None and rules.step_size > 0 < rules.tick_size:
            terms[memo] = (rules, quantity, bound, notional, order)
    return order


#: The sizing modes whose quantity depends on the follower's equity.
_BY_EQUITY = frozenset({SizingMode.PROPORTIONAL, SizingMode.RISK_PERCENT})


def _close(
    event: LeaderEvent,
    follower: Follower,
    position: Decimal,
    base_free: Decimal | None,
    symbol: str,
    rules: Instrument,
) -> OrderRequest | Skip:
    """A close mirrors the share of the position the leader took off, at market: a close
    is never skipped for slippage or age (leaving a position open is the bigger risk)."""

    held = position if event.side is Side.SELL else -position
    if held <= 0:
        return Skip(follower.id, event.id, SkipReason.NO_POSITION)
    quantity = _round(held * event.close_fraction, rules.step_size, ROUND_FLOOR)
    if event.side is Side.SELL and base_free is not None:
        quantity = min(quantity, _round(base_free, rules.step_size, ROUND_FLOOR))
    if quantity <= 0 or quantity < rules.min_quantity:
        return Skip(
            follower.id, event.id, SkipReason.BELOW_MINIMUM, f"{quantity} {symbol} to close"
        )
    return _market(symbol, event.side, quantity)


# The followers of one event mostly place the same order (one sizing, one leader price):
# orders are immutable, so they share one, built and checked once, as a bot placing the
# same order again does (building one is a model validation: ~30 us, a tenth of placing
# it). Keyed by the amounts' text, so 0.0010 and 0.001 stay the orders they were asked as.
@functools.lru_cache(maxsize=256)
def _order(symbol: str, side: Side, quantity: str, price: str | None) -> OrderRequest:
    """A market order (no ``price``), or an IOC limit at ``price``."""
    if price is None:
        return MarketOrder(symbol=symbol, side=side, quantity=Decimal(quantity))
    return LimitOrder(
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        time_in_force=TimeInForce.IOC,
    )


def _ioc_limit(symbol: str, side: Side, quantity: Decimal, price: Decimal) -> OrderRequest:
    """An IOC limit order (shared with the other followers placing the same one)."""
    return _order(symbol, side, str(quantity), str(price))


def _market(symbol: str, side: Side, quantity: Decimal) -> OrderRequest:
    """A market order (shared with the other followers placing the same one)."""
    return _order(symbol, side, str(quantity), None)


def _size(event: LeaderEvent, follower: Follower, equity: Decimal | None) -> Decimal:
    """The open's quantity before rounding, by the follower's sizing mode."""
    mode, value = follower.sizing.mode, follower.sizing.value
    if mode is SizingMode.FIXED_QUANTITY:
        return value
    if mode is SizingMode.FIXED_NOTIONAL:
        return value / event.price
    if mode is SizingMode.MULTIPLIER:
        return event.quantity * value
    equity = equity or Decimal(0)
    if mode is SizingMode.PROPORTIONAL:
        if not event.leader_equity:
            return Decimal(0)  # cannot scale without the leader's equity: below minimum
        return event.quantity * equity / event.leader_equity * value
    return equity * value / 100 / event.price  # RISK_PERCENT of equity, at the leader's price


def _bound(event: LeaderEvent, follower: Follower, rules: Instrument) -> Decimal:
    """The worst price an open accepts: the leader's price moved by the slippage cap,
    rounded to the tick towards the leader's price (never past the cap). A sell whose
    cap reaches zero (a 100 % cap) accepts any price: its bound is the lowest the venue
    takes, one tick. Zero or less (a buy at a price under one tick): nothing to place."""
    move = event.price * follower.slippage_bps / _BPS
    if event.side is Side.BUY:
        return _round(event.price + move, rules.tick_size, ROUND_FLOOR)
    bound = _round(event.price - move, rules.tick_size, ROUND_CEILING)
    return rules.tick_size if bound <= 0 < rules.tick_size else bound


def _round(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=rounding) * step
