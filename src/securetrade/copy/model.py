"""What copy trading is made of: a leader's event, a follower, and what the plan decides.

A :class:`LeaderEvent` is one thing the leader did (an open or a close, with a stable id);
a :class:`Follower` is one account that mirrors the leader under its own sizing and limits;
:func:`~securetrade.copy.plan.plan` turns the two into :class:`CopyIntent` orders, or a
:class:`Skip` with a reason. Every amount is a ``Decimal``.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._checks import Choice, instance, safe_repr, text, whole
from ..errors import InvalidRequest
from ..keys import ApiKey, KeyRing
from ..models import OrderRequest, Side, to_decimal
from ..policy import Policy
from ..privacy.tags import Category, Personal, tagged

__all__ = [
    "CopyIntent",
    "Follower",
    "LeaderEvent",
    "Movement",
    "Sizing",
    "SizingMode",
    "Skip",
    "SkipReason",
]


class Movement(str, Choice):
    """What the leader's event does to its position."""

    OPEN = "open"  # adds to (or starts) a position
    CLOSE = "close"  # takes (part of) it off


class SizingMode(str, Choice):
    """How a follower sizes a copy of an open."""

    FIXED_QUANTITY = "fixed_quantity"  # always ``value`` of the base asset
    FIXED_NOTIONAL = "fixed_notional"  # ``value`` of the quote asset at the leader's price
    MULTIPLIER = "multiplier"  # the leader's quantity times ``value``
    PROPORTIONAL = "proportional"  # the leader's quantity scaled by equity, times ``value``
    RISK_PERCENT = "risk_percent"  # ``value`` percent of the follower's equity


class SkipReason(str, Choice):
    """Why a follower does not copy an event: every skip is recorded with one."""

    SLIPPAGE = "slippage"
    TTL = "ttl"
    BELOW_MINIMUM = "below_minimum"
    BALANCE = "balance"
    UNMAPPED_SYMBOL = "unmapped_symbol"
    RISK_LIMIT = "risk_limit"
    QUARANTINED = "quarantined"
    NO_POSITION = "no_position"  # a close with nothing to close


@dataclass(frozen=True, slots=True)
class LeaderEvent:
    """One thing the leader did. ``id`` must be stable: the same event redelivered,
    replayed or processed on two hosts carries the same id (a venue trade id, say).

    ``quantity`` and ``price`` are what the leader filled; ``close_fraction`` is the share
    of its position a close took off (1 for all of it); ``leader_equity`` its equity in the
    quote asset, for proportional sizing; ``at_ms`` when it happened (epoch milliseconds).
    """

    id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    at_ms: int
    movement: Movement = Movement.OPEN
    close_fraction: Decimal = Decimal(1)
    leader_equity: Decimal | None = None
    venue: str = "binance"

    def __post_init__(self) -> None:
        text("LeaderEvent.id", self.id)
        text("LeaderEvent.symbol", self.symbol)
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "movement", Movement(self.movement))
        for name in ("quantity", "price", "close_fraction"):
            value = to_decimal(getattr(self, name), field=f"LeaderEvent.{name}")
            if value <= 0:
                raise InvalidRequest(f"LeaderEvent.{name} must be greater than zero")
            object.__setattr__(self, name, value)
        if self.close_fraction > 1:
            raise InvalidRequest("LeaderEvent.close_fraction is a share of the position: <= 1")
        if self.leader_equity is not None:
            equity = to_decimal(self.leader_equity, field="LeaderEvent.leader_equity")
            object.__setattr__(self, "leader_equity", equity)
        whole("LeaderEvent.at_ms", self.at_ms, 0)


@dataclass(frozen=True, slots=True)
class Sizing:
    """A sizing mode and its number (see :class:`SizingMode`)."""

    mode: SizingMode
    value: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SizingMode(self.mode))
        value = to_decimal(self.value, field="Sizing.value")
        if value <= 0:
            raise InvalidRequest("Sizing.value must be greater than zero")
        if self.mode is SizingMode.RISK_PERCENT and value > 100:
            raise InvalidRequest("Sizing.value is a percentage of equity: at most 100")
        object.__setattr__(self, "value", value)


@tagged
@dataclass(eq=False)
class Follower:
    """One account that copies the leader.

    ``symbols`` maps the leader's symbols to this follower's venue (``{"BTCUSDT":
    "XBTUSDT"}``); a symbol it does not name is used as it is on the leader's venue and
    skipped as unmapped elsewhere. ``slippage_bps`` caps how far from the leader's price an
    open may fill (opens go out as IOC limits at that bound); ``ttl_ms`` is how old an event
    may be for an open to be copied (closes are always copied). The limits refuse a copy
    that would exceed them (``risk_limit``); ``policy`` applies on top, as for any order.
    ``long_only`` (the default) says the account cannot go below zero in a symbol (a spot
    account, or one the platform does not let short): reconciliation then never sells more
    than it holds free, nor mirrors a short leader (see :mod:`.reconcile`).
    ``egress_ip`` pins the follower to one of its venue's ``egress_ips`` (a key
    allowlisted for that address); by default the engine picks one.
    """

    id: str = field(
        metadata={"pii": Personal(Category.FOLLOWER_ID, subject=True, aliases=("follower",))}
    )
    key: ApiKey | KeyRing
    sizing: Sizing
    symbols: dict[str, str] = field(default_factory=dict)
    slippage_bps: Decimal = Decimal(50)
    ttl_ms: int = 5_000
    max_notional: Decimal | None = None  # per copied order, in the quote asset
    max_position: Decimal | None = None  # absolute, in the base asset, after the copy
    equity_floor: Decimal | None = None  # no new opens below this equity
    policy: Policy | None = None
    egress_ip: str | None = None
    long_only: bool = True

    def __post_init__(self) -> None:
        text("Follower.id", self.id)
        instance("Follower.key", self.key, (ApiKey, KeyRing), optional=False)
        instance("Follower.sizing", self.sizing, Sizing, optional=False)
        instance("Follower.policy", self.policy, Policy)
        if not isinstance(self.symbols, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.symbols.items()
        ):
            raise InvalidRequest("Follower.symbols maps leader symbols to this venue's symbols")
        self.slippage_bps = to_decimal(self.slippage_bps, field="Follower.slippage_bps")
        if not 0 <= self.slippage_bps <= 10_000:
            raise InvalidRequest("Follower.slippage_bps must be from 0 to 10000")
        whole("Follower.ttl_ms", self.ttl_ms, 1)
        for name in ("max_notional", "max_position", "equity_floor"):
            value: Any = getattr(self, name)
            if value is not None:
                amount = to_decimal(value, field=f"Follower.{name}")
                if amount < 0:
                    raise InvalidRequest(f"Follower.{name} must not be negative")
                setattr(self, name, amount)
        if not isinstance(self.long_only, bool):
            raise InvalidRequest("Follower.long_only is True or False")
        if self.egress_ip is not None:
            try:
                self.egress_ip = str(ipaddress.ip_address(self.egress_ip))
            except (TypeError, ValueError):
                raise InvalidRequest(
                    f"Follower.egress_ip must be an IP address, not {self.egress_ip!r}"
                ) from None

    @functools.cached_property
    def venue(self) -> str:
        """The venue of the follower's key (a ring's keys all belong to one venue account:
        fixed, so worked out once)."""
        return KeyRing.of(self.key).current.venue

    @functools.cached_property
    def account(self) -> str:
        """The account name the follower's key trades for (journal and limits use it)."""
        return KeyRing.of(self.key).account

    @safe_repr
    def __repr__(self) -> str:
        return f"Follower(id={self.id!r}, venue={self.venue!r}, sizing={self.sizing.mode.value})"


@dataclass(frozen=True, slots=True)
class CopyIntent:
    """One order a follower should place for an event: its leg and idempotency key."""

    follower_id: str
    event_id: str
    leg: int
    order: OrderRequest
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Skip:
    """A follower that does not copy an event, and why."""

    follower_id: str
    event_id: str
    reason: SkipReason
    detail: str = ""
