"""Hard pre-trade limits. A denial names the rule and the numbers; nothing is sent.

A :class:`Policy` is one rulebook with its own running usage (open orders, orders in the
last interval, notional spent today). Give each client its own policy for per-key rules,
share one policy between the clients of an account for per-account rules, or nest them
(``Policy(..., within=account_policy)``): an order must then pass both.

Rules are checked in two steps so that nothing is fetched for an order that is refused
anyway: first every rule that needs no market data, then, only if some rule needs it, the
rules that value the order against a reference price read from the venue.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING

from .._checks import LARGEST, instance, shown, text
from ..errors import AmbiguousOutcome, InvalidRequest, PolicyViolation
from ..models import Order, OrderRequest, OrderType, Side, to_decimal
from .killswitch import KillSwitch, MemorySwitchStore

if TYPE_CHECKING:
    from ..mfa import Confirmation, Confirmer

__all__ = ["Admission", "Decision", "Policy", "ReferencePrice"]


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    """The venue's last price of ``symbol``, read at ``at`` (seconds since the epoch)."""

    symbol: str
    price: Decimal
    at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "would this order pass?". ``rule``, ``limit`` and ``value`` explain a no.

    Truthy when the order is allowed, so ``if client.would_pass(order):`` reads naturally.
    """

    allowed: bool
    rule: str | None = None
    reason: str = "allowed"
    limit: Decimal | None = None
    value: Decimal | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def deny(
        cls, rule: str, reason: str, *, limit: object = None, value: object = None
    ) -> Decision:
        """A refusal by ``rule``, with the reason and, when numeric, the limit and the value that
        broke it."""
        return cls(False, rule, reason, _num(limit), _num(value))

    def raise_if_denied(self) -> None:
        """Raise :class:`PolicyViolation` naming the rule when this is a denial."""
        if not self.allowed:
            raise PolicyViolation(self.reason, rule=self.rule or "policy")

    @property
    def label(self) -> str:
        """``allow`` or ``deny:<rule>``: the form telemetry and the audit trail record."""
        return "allow" if self.allowed else f"deny:{self.rule}"


ALLOW = Decision(True)


def _num(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    # An int subclass would write its own str; a 5,000-digit int's str() is a ValueError.
    if type(value) is int and -LARGEST <= value <= LARGEST:
        return Decimal(value)
    if type(value) is float:
        return Decimal(repr(value))
    raise InvalidRequest("a denial's limit and value are numbers (a Decimal) or None")


# Read once, as in models.common: a member read off its enum class is slow in 3.11.
_MARKET = OrderType.MARKET


class Policy:
    """Limits that apply to every order, whatever the key allows.

    ``max_notional`` bounds quantity times price (a market order is valued at the reference
    price); ``max_quantity`` bounds size; ``symbols`` and ``sides`` are allowlists;
    ``price_band`` refuses a limit price further than that fraction from the venue's last
    price, which must be at most ``reference_max_age`` seconds old (the fat-finger guard);
    ``max_open_orders`` bounds resting orders; ``max_orders`` bounds orders per
    ``interval`` seconds (a runaway loop); ``daily_notional`` bounds the notional submitted
    per UTC day. ``kill_switch`` blocks everything while engaged. ``confirmer``
    (:class:`~securetrade.mfa.Confirmer`) makes every withdrawal wait for an operator's
    one-time code. ``extended_hours`` allows orders that ask to trade outside a broker's
    regular session (Alpaca); refused unless allowed, by this policy and every policy it is
    ``within``.
    """

    def __init__(
        self,
        *,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        symbols: Iterable[str] | None = None,
        sides: Iterable[Side | str] | None = None,
        price_band: Decimal | str | None = None,
        reference_max_age: float = 5.0,
        max_open_orders: int | None = None,
        max_orders: int | None = None,
        interval: float = 60.0,
        daily_notional: Decimal | int | str | None = None,
        kill_switch: KillSwitch | None = None,
        within: Policy | None = None,
        clock: Callable[[], float] = time.time,
        confirmer: Confirmer | None = None,
        extended_hours: bool = False,
    ) -> None:
        self.max_notional = _limit("max_notional", max_notional)
        self.max_quantity = _limit("max_quantity", max_quantity)
        self.symbols = None if symbols is None else _names("symbols", symbols)
        self.sides = None if sides is None else frozenset(_side(s) for s in _seq("sides", sides))
        self.price_band = _limit("price_band", price_band)
        if self.price_band is not None and self.price_band >= 1:
            raise InvalidRequest("price_band is a fraction of the reference price, below 1")
        self.reference_max_age = _seconds("reference_max_age", reference_max_age)
        self.max_open_orders = _count("max_open_orders", max_open_orders)
        self.max_orders = _count("max_orders", max_orders)
        self.interval = _seconds("interval", interval)
        self.daily_notional = _limit("daily_notional", daily_notional)
        self.kill_switch = instance("kill_switch", kill_switch, KillSwitch) or KillSwitch()
        self.within = instance("within", within, Policy)
        self.confirmer = confirmer  # when set, a withdrawal needs an operator's code
        if not isinstance(extended_hours, bool):
            raise InvalidRequest("extended_hours must be True or False")
        self.extended_hours = extended_hours
        if not callable(clock):
            raise InvalidRequest("clock must be a function returning epoch seconds")
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, str] = {}  # client order id -> symbol, believed open at the venue
        self._pending: dict[str, Decimal] = {}  # admitted, outcome not known: id -> notional
        self._sent: deque[float] = deque()  # admission times within the last interval
        self._day = ""
        self._spent = Decimal(0)

    # --- asking -----------------------------------------------------------------------------

    def needs_reference(self, order: OrderRequest) -> bool:
        """Whether some rule in the chain must value ``order`` against the venue's price."""
        _request(order)
        for policy in self._chain():
            if policy.price_band is not None and order.price is not None:
                return True
            # The policy's limits first: the order's notional multiplies, and is asked
            # only when a limit would use it.
            if (
                policy.max_notional is not None or policy.daily_notional is not None
            ) and order.notional is None:
                return True
            if policy.max_quantity is not None and order.quantity is None:
                return True  # a quote-quantity order is sized at the reference price
        return False

    def evaluate(
        self, order: OrderRequest, *, reference: ReferencePrice | Decimal | None = None
    ) -> Decision:
        """Would ``order`` pass every rule now? Changes nothing (a dry run)."""
        ref = _reference(_request(order), reference, self._clock())
        for policy in self._chain():
            with policy._lock:
                decision = policy._decide(order, ref, final=True)
            if not decision:
                return decision
        return ALLOW

    def check(
        self,
        order: OrderRequest,
        *,
        reference_price: ReferencePrice | Decimal | None = None,
        final: bool = True,
    ) -> None:
        """Raise :class:`PolicyViolation` unless ``order`` passes.

        With ``final=False`` the rules that need a reference price are skipped when none is
        given: the first of the two steps, taken before anything is fetched.
        """
        ref = _reference(_request(order), reference_price, self._clock())
        for policy in self._chain():
            with policy._lock:
                policy._decide(order, ref, final=final).raise_if_denied()

    def check_withdrawal(self) -> None:
        """Raise :class:`PolicyViolation` while a kill switch in the chain is engaged."""
        for policy in self._chain():
            state = policy.kill_switch.state()
            if state.engaged:
                raise PolicyViolation(
                    f"kill switch engaged: {state.reason}; no withdrawal", rule="kill_switch"
                )

    def confirm_withdrawal(self, confirmation: Confirmation | None, **detail: str) -> None:
        """Raise :class:`~securetrade.errors.ConfirmationRequired` unless ``confirmation``
        holds an unused code, when a policy of the chain has a ``confirmer`` (the nearest
        one checks it: a code is good once). ``detail`` goes into the audit record."""
        confirmer = next((p.confirmer for p in self._chain() if p.confirmer is not None), None)
        if confirmer is not None:
            confirmer.confirm(confirmation, "withdraw", **detail)

    @property
    def blocking(self) -> bool:
        """Whether a check may wait on a file or the network (a kill switch shared through
        SQLite or Redis): the async client then makes it off its event loop."""
        return any(
            not isinstance(p.kill_switch.store, MemorySwitchStore) or p.confirmer is not None
            for p in self._chain()
        )

    def kill_switches(self) -> list[KillSwitch]:
        """Every kill switch this policy obeys (its own and its parents')."""
        return [p.kill_switch for p in self._chain()]

    def admit(
        self,
        order: OrderRequest,
        client_order_id: str,
        *,
        reference: ReferencePrice | Decimal | None = None,
    ) -> Admission:
        """Check ``order`` and reserve its share of every running limit, atomically.

        Use the returned :class:`Admission` as a context manager around sending: it gives
        the reservation back when the order certainly did not reach the book.
        """
        text("client_order_id", client_order_id)
        ref = _reference(_request(order), reference, self._clock())
        chain = self._chain()
        for policy in chain:  # always child before parent: no lock-order inversion
            policy._lock.acquire()
        try:
            for policy in chain:
                policy._decide(order, ref, final=True).raise_if_denied()
            notional = _notional(order, ref) or Decimal(0)
            now = self._clock()
            for policy in chain:
                policy._sent.append(now)
                policy._pending[client_order_id] = notional
                policy._spent += notional
        finally:
            for policy in reversed(chain):
                policy._lock.release()
        return Admission(chain, client_order_id, order.symbol, notional, at=now)

    def check_kill_switch(self) -> None:
        """Raise :class:`PolicyViolation` when the kill switch of this policy, or of one it
        sits within, is engaged. The order path asks again right before an admitted order
        leaves, when its claim was written after its admission."""
        for policy in self._chain():
            state = policy.kill_switch.state()
            if state.engaged:
                Decision.deny(
                    "kill_switch", f"kill switch engaged: {state.reason}"
                ).raise_if_denied()

    # --- what the venue says ---------------------------------------------------------------

    def observe(self, order: Order) -> None:
        """Learn an order's state from the venue (a lookup, a cancel, a fill)."""
        _venue_order(order)
        for policy in self._chain():
            with policy._lock:
                if order.is_open:
                    policy._open[order.client_order_id] = order.symbol
                else:
                    policy._open.pop(order.client_order_id, None)

    def observe_open_orders(self, orders: Iterable[Order], *, symbol: str | None = None) -> None:
        """Replace what is believed open (for ``symbol``, or all) with the venue's list."""
        if symbol is not None:
            text("symbol", symbol)
        if isinstance(orders, (str, bytes)) or not isinstance(orders, Iterable):
            raise InvalidRequest("orders must be a list of Order (as the venue listed them)")
        listed = {o.client_order_id: o.symbol for o in map(_venue_order, orders) if o.is_open}
        for policy in self._chain():
            with policy._lock:
                if symbol is None:
                    policy._open = dict(listed)
                else:
                    kept = {c: s for c, s in policy._open.items() if s != symbol}
                    policy._open = {**kept, **listed}

    @property
    def open_orders(self) -> int:
        """Orders believed open at the venue, plus those admitted and not yet answered."""
        with self._lock:
            return len(self._open) + len(self._pending)

    @property
    def spent_today(self) -> Decimal:
        """Notional submitted this UTC day (market orders valued at their reference price)."""
        with self._lock:
            self._roll_day(self._clock())
            return self._spent

    # --- the rules --------------------------------------------------------------------------

    def _chain(self) -> list[Policy]:
        if self.within is None:  # the usual case: one policy
            return [self]
        chain: list[Policy] = []
        policy: Policy | None = self
        while policy is not None:
            if any(p is policy for p in chain):
                raise InvalidRequest("policies nest in a loop (within=)")
            chain.append(policy)
            policy = policy.within
        return chain

    def _decide(self, order: OrderRequest, ref: ReferencePrice | None, *, final: bool) -> Decision:
        """Every rule, cheapest first. Called with ``_lock`` held."""
        state = self.kill_switch.state()
        if state.engaged:
            return Decision.deny("kill_switch", f"kill switch engaged: {state.reason}")
        if self.symbols is not None and order.symbol not in self.symbols:
            return Decision.deny("symbols", f"{order.symbol} is not on the allowlist")
        if order.extended_hours and not self.extended_hours:
            return Decision.deny(
                "extended_hours",
                "orders outside regular hours are not allowed: Policy(extended_hours=True)",
            )
        if self.sides is not None and order.side not in self.sides:
            allowed = ", ".join(sorted(s.value for s in self.sides))
            return Decision.deny("sides", f"{order.side.value} orders are not allowed ({allowed})")
        if self.max_quantity is not None:
            size = _size(order, ref, self.price_band)
            if size is None and final:
                return Decision.deny(
                    "reference_price",
                    f"no reference price for {order.symbol}: cannot size a quote_quantity "
                    "order against max_quantity",
                )
            if size is not None and size > self.max_quantity:
                estimated = "" if order.quantity is not None else "estimated "
                return Decision.deny(
                    "max_quantity",
                    f"{estimated}quantity {size} exceeds max_quantity {self.max_quantity}",
                    limit=self.max_quantity,
                    value=size,
                )
        # Valued only when a limit needs the value (the order's notional multiplies; this
        # runs twice per order): without one, _decide_on_price has no use for it either.
        valued = self.max_notional is not None or self.daily_notional is not None
        notional = _notional(order, ref) if valued else None
        if self.max_notional is not None and notional is not None and notional > self.max_notional:
            return Decision.deny(
                "max_notional",
                f"notional {notional} exceeds max_notional {self.max_notional}",
                limit=self.max_notional,
                value=notional,
            )
        if self.max_open_orders is not None:
            resting = len(self._open) + len(self._pending)
            if resting >= self.max_open_orders:
                return Decision.deny(
                    "max_open_orders",
                    f"{resting} orders are open or in flight; max_open_orders is "
                    f"{self.max_open_orders}",
                    limit=self.max_open_orders,
                    value=resting,
                )
        now = self._clock()
        if self.max_orders is not None:
            while self._sent and self._sent[0] <= now - self.interval:
                self._sent.popleft()
            if len(self._sent) >= self.max_orders:
                return Decision.deny(
                    "max_orders",
                    f"{len(self._sent)} orders in the last {self.interval:g} s; max_orders is "
                    f"{self.max_orders}",
                    limit=self.max_orders,
                    value=len(self._sent),
                )
        if self.daily_notional is not None and notional is not None:
            self._roll_day(now)
            if self._spent + notional > self.daily_notional:
                return Decision.deny(
                    "daily_notional",
                    f"notional {notional} on top of {self._spent} spent today exceeds "
                    f"daily_notional {self.daily_notional}",
                    limit=self.daily_notional,
                    value=self._spent + notional,
                )
        return self._decide_on_price(order, ref, notional, now, final=final)

    def _decide_on_price(
        self,
        order: OrderRequest,
        ref: ReferencePrice | None,
        notional: Decimal | None,
        now: float,
        *,
        final: bool,
    ) -> Decision:
        wants_price = (
            (self.price_band is not None and order.price is not None)
            or (
                notional is None
                and (self.max_notional is not None or self.daily_notional is not None)
            )
            or (self.max_quantity is not None and order.quantity is None)
        )
        if not wants_price:
            return ALLOW
        if ref is None:
            if not final:
                return ALLOW  # step one: decided again once the reference price is known
            return Decision.deny(
                "reference_price", f"no reference price for {order.symbol}: cannot value it"
            )
        age = now - ref.at
        if age > self.reference_max_age:
            return Decision.deny(
                "reference_price",
                f"the reference price of {order.symbol} is {age:.1f} s old; "
                f"reference_max_age is {self.reference_max_age:g} s",
                limit=self.reference_max_age,
                value=round(age, 3),
            )
        if self.price_band is not None and order.price is not None and ref.price > 0:
            distance = abs(order.price - ref.price) / ref.price
            if distance > self.price_band:
                return Decision.deny(
                    "price_band",
                    f"price {order.price} is {distance:.2%} from the reference {ref.price}, "
                    f"beyond the band of {self.price_band:.2%}",
                    limit=self.price_band,
                    value=distance.quantize(Decimal("0.0001")),
                )
        return ALLOW

    def _roll_day(self, now: float) -> None:
        day = datetime.fromtimestamp(now, tz=timezone.utc).date().isoformat()
        if day != self._day:
            self._day, self._spent = day, Decimal(0)


class Admission:
    """One order's reservation against the running limits, from admission to outcome.

    Used as a context manager around sending: leaving it because of an error that proves
    the order never reached the book gives the reservation back; an ambiguous outcome keeps
    it (the order may be live), and :meth:`placed` turns it into what the venue reports.
    """

    def __init__(
        self,
        chain: list[Policy],
        client_order_id: str,
        symbol: str,
        notional: Decimal,
        *,
        at: float | None = None,
    ) -> None:
        self._chain = chain
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.notional = notional
        self._at = at  # when it was counted against max_orders
        self._done = False

    def placed(self, order: Order) -> None:
        """The venue accepted the order: it is now open, or already done."""
        instance("order", order, Order, optional=False)  # before anything is counted
        if self._done:
            return
        self._done = True
        fields = order.__dict__  # one read of the model (pydantic's attribute hook is slow)
        quote = fields["quote_quantity"]
        filled = fields["type"] is _MARKET and quote > 0
        spent = quote if filled else self.notional
        is_open = fields["status"].is_open
        for policy in self._chain:
            with policy._lock:
                policy._pending.pop(self.client_order_id, None)
                policy._spent += spent - self.notional
                if is_open:
                    policy._open[fields["client_order_id"]] = fields["symbol"]

    def release(self) -> None:
        """The order certainly never reached the book: give back its notional and slot."""
        if self._done:
            return
        self._done = True
        for policy in self._chain:
            with policy._lock:
                if policy._pending.pop(self.client_order_id, None) is not None:
                    policy._spent -= self.notional

    def withdraw(self) -> None:
        """The order was not this caller's to send after all (its idempotency key was
        claimed already): give back its reservation and its place in the order count, as
        if it had never been admitted. Whoever sends under that key is admitted anew."""
        self.release()
        at = self._at
        self._at = None
        if at is None:
            return
        for policy in self._chain:
            with policy._lock, contextlib.suppress(ValueError):
                policy._sent.remove(at)

    def _keep_open(self) -> None:
        """Outcome unknown: count it as open until the venue says otherwise."""
        if self._done:
            return
        self._done = True
        for policy in self._chain:
            with policy._lock:
                policy._pending.pop(self.client_order_id, None)
                policy._open[self.client_order_id] = self.symbol

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, AmbiguousOutcome):
            self._keep_open()
        else:
            self.release()


def _reference(
    order: OrderRequest, given: ReferencePrice | Decimal | None, now: float
) -> ReferencePrice | None:
    if given is None or isinstance(given, ReferencePrice):
        return given
    return ReferencePrice(order.symbol, to_decimal(given, field="reference_price"), now)


def _notional(order: OrderRequest, ref: ReferencePrice | None) -> Decimal | None:
    notional = order.notional  # a limit price's, or a quote-quantity order's own amount
    if notional is not None:
        return notional
    if ref is not None and order.quantity is not None:
        return order.quantity * ref.price
    return None


def _size(order: OrderRequest, ref: ReferencePrice | None, band: Decimal | None) -> Decimal | None:
    """The base quantity, or a quote-quantity order's conservative estimate: its amount
    over the reference price less the price band (the lowest price the band lets through;
    a lower price buys, or must sell, more), so the estimate errs high. ``None`` while no
    reference price is known."""
    if order.quantity is not None:
        return order.quantity
    if ref is None or ref.price <= 0:
        return None
    floor = ref.price * (1 - band) if band is not None else ref.price
    return order.estimated_quantity(floor)


def _limit(name: str, value: Decimal | int | str | None) -> Decimal | None:
    if value is None:
        return None
    result = to_decimal(value, field=name)
    if result <= 0:
        raise InvalidRequest(f"{name} must be greater than zero, got {result}")
    return result


def _count(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a whole number of at least 1, got {shown(value)}")
    return value


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise InvalidRequest(f"{name} must be a positive number of seconds, got {shown(value)}")
    return float(value)


def _seq(name: str, values: Iterable[object]) -> list[object]:
    if isinstance(values, (str, bytes)):
        raise InvalidRequest(f"{name} must be a list, not one string")
    try:
        return list(values)
    except TypeError:
        raise InvalidRequest(f"{name} must be a list") from None


def _names(name: str, values: Iterable[str]) -> frozenset[str]:
    items = _seq(name, values)
    if not all(isinstance(v, str) and v for v in items):
        raise InvalidRequest(f"{name} must hold non-empty strings")
    return frozenset(str(v) for v in items)


def _side(value: object) -> Side:
    try:
        return Side(str(value).upper() if isinstance(value, str) else value)
    except ValueError:
        raise InvalidRequest(f"{shown(value)} is not a side (BUY, SELL)") from None


def _request(order: object) -> OrderRequest:
    """The order asked about, refused unless it is one (a str or dict has no rules' fields)."""
    if not isinstance(order, OrderRequest):
        raise InvalidRequest("order must be an OrderRequest (LimitOrder, MarketOrder, ...)")
    return order


def _venue_order(order: object) -> Order:
    """An order as the venue reported it: what the open-order count learns from."""
    if not isinstance(order, Order):
        raise InvalidRequest("order must be an Order as the client returned it (get_order, ...)")
    return order
