"""What every model shares: numbers read as Decimal, the enums, and the base model that
raises :class:`~securetrade.errors.InvalidRequest` instead of pydantic's own error.

The lowest layer of :mod:`securetrade.models`: orders, market data and account history
build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as _PydanticValidationError
from pydantic_core import PydanticUndefined

try:  # pydantic's generic private-attribute initialiser, replaced where it is simple
    from pydantic._internal import _model_construction

    _GENERIC_POST_INIT: object = _model_construction.init_private_attributes
except (ImportError, AttributeError):  # another pydantic layout: its own way everywhere
    _GENERIC_POST_INIT = None

from .._checks import Choice, shown
from ..errors import InvalidRequest
from ..tables import Tabular

if TYPE_CHECKING:
    from typing_extensions import Self  # pydantic's own dependency; typing.Self is 3.11+

__all__ = [
    "CRYPTO_TIME_IN_FORCE",
    "AssetClass",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "to_decimal",
]


_set = object.__setattr__  # past a frozen model's own __setattr__, as pydantic's copy does
# Immutable defaults a private attribute may share between models, set without a copy.
_PLAIN_DEFAULTS = frozenset({bool, int, str, type(None)})


def to_decimal(value: Any, *, field: str = "value") -> Decimal:
    """Turn a caller's number into a finite Decimal, refusing what cannot be money."""
    if type(value) is str:  # the common case (venue answers): Decimal() strips blanks itself
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise InvalidRequest(f"{field}: {shown(value)} is not a decimal number") from None
    elif isinstance(value, bool):
        raise InvalidRequest(f"{field}: a boolean is not a number")
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))  # shortest repr, never the binary expansion
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidRequest(f"{field}: {shown(value)} is not a decimal number") from None
    else:
        raise InvalidRequest(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidRequest(f"{field}: {shown(value)} is not finite")
    return result


def _positive(field: str) -> Any:
    def check(value: Any) -> Decimal:
        result = to_decimal(value, field=field)
        if result <= 0:
            raise InvalidRequest(f"{field}: must be greater than zero, got {result}")
        return result

    return BeforeValidator(check)


class Side(str, Choice):
    """Buy or sell. Accepted in either case (``"buy"``); prints as its value (``BUY``)."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Choice):
    """MARKET fills now at the best price available; LIMIT at ``price`` or better."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    # Conditional orders: rest unseen until the market reaches ``stop_price``, then become a
    # market order (STOP_LOSS, TAKE_PROFIT) or a limit order at ``price`` (the _LIMIT ones).
    # A stop-loss triggers on a move against the position (a sell at or below its stop, a
    # buy at or above it), a take-profit on a move in its favour.
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    # One-cancels-the-other: a limit order at ``price`` and a stop at ``stop_price`` (a
    # stop-limit at ``stop_limit_price`` if given) on one quantity; when one executes, the
    # venue cancels the other. A SELL's limit is above the market and its stop below; a
    # BUY's the other way round.
    OCO = "OCO"

    @property
    def is_conditional(self) -> bool:
        """Whether this is a type other than MARKET and LIMIT: a stop, a take-profit or an
        OCO, all of which carry a ``stop_price``."""
        return self not in _UNCONDITIONAL

    @property
    def takes_price(self) -> bool:
        """Whether orders of this type carry a limit price (and so a time in force)."""
        return self in _PRICED


# The members these properties test, read once. In Python 3.11 reading a member off its
# class (``OrderType.LIMIT``) goes through the enum metaclass's __getattr__ hook, a slow
# attribute path, and the properties run several times for every order.
_UNCONDITIONAL = (OrderType.MARKET, OrderType.LIMIT)
_PRICED = (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT, OrderType.OCO)


class TimeInForce(str, Choice):
    """How long a LIMIT order stays: GTC until filled or cancelled, IOC fills what it can
    now and cancels the rest, FOK fills whole now or not at all."""

    GTC = "GTC"  # good till cancelled
    IOC = "IOC"  # immediate or cancel
    FOK = "FOK"  # fill or kill
    # Brokers' sessions (stocks, forex): the crypto exchanges offer none of these.
    DAY = "DAY"  # until the end of the trading day (Alpaca ``day``, OANDA ``GFD``)
    OPG = "OPG"  # in the opening auction only (Alpaca)
    CLS = "CLS"  # in the closing auction only (Alpaca)


#: What the crypto exchanges offer: their markets never close, so no day or auction orders.
CRYPTO_TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK})


class AssetClass(str, Choice):
    """What an instrument trades, which decides its sessions and its quantity rules."""

    CRYPTO = "CRYPTO"  # around the clock; quantity in the base asset
    US_EQUITY = "US_EQUITY"  # exchange sessions and a market clock; shares, maybe fractional
    FOREX = "FOREX"  # the week round, Sunday to Friday; whole units, signed at OANDA


class OrderStatus(str, Choice):
    """Where an order stands at the venue. NEW and PARTIALLY_FILLED are open (see
    :attr:`is_open`); the others are final. ``print(order.status)`` shows the value."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """NEW and PARTIALLY_FILLED are open: the order may still fill."""
        return self in _OPEN


_OPEN = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)  # read once, as _PRICED


class _Model(Tabular, BaseModel):
    """Base: immutable, no unknown fields, and our own error type on bad input.

    Every way pydantic offers to make one (the constructor, ``model_validate``, its JSON
    and strings forms, ``model_copy(update=...)``) checks the values the same way and
    raises :class:`~securetrade.errors.InvalidRequest`, never pydantic's own error: a copy
    cannot hold what the constructor refuses, such as a quantity of -5 or a NaN price.
    (``model_construct`` stays pydantic's unchecked path for trusted data.)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, defer_build=True)
    # Prepared per class: the fields model_copy may set to a str without asking pydantic.
    _any_text: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **data: Any) -> None:
        # pydantic's own __init__ is this one call (and a warning for a model validator
        # returning another object, which ours never do); called here, one Python frame
        # less for every model made (the order path makes two per order).
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self)
        except _PydanticValidationError as exc:
            raise InvalidRequest(_summarise(type(self).__name__, exc)) from None

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """The model made from a dict of its fields, checked and refused exactly as the
        constructor does. For parsers that build the dict anyway (a venue's answer, one
        per order): ``cls(**fields)`` turns it into keywords and back into a dict three
        times on the way to the same validator call."""
        model = cls.__new__(cls)
        try:
            cls.__pydantic_validator__.validate_python(fields, self_instance=model)
        except _PydanticValidationError as exc:
            raise InvalidRequest(_summarise(cls.__name__, exc)) from None
        return model

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Private attributes with plain defaults (the marks the core sets: amend's order
        id, replayed) start from a prepared dict: pydantic's generic initialiser costs a
        handful of Python calls per model made (every answer the venue sends)."""
        super().__pydantic_init_subclass__(**kwargs)
        cls._any_text = _any_text_fields(cls)
        private = cls.__private_attributes__
        if not private or _GENERIC_POST_INIT is None:
            return
        if cls.model_post_init is not _GENERIC_POST_INIT:
            return  # none, or a model_post_init of the model's own: pydantic's way
        if any(
            attr.default_factory is not None or type(attr.default) not in _PLAIN_DEFAULTS
            for attr in private.values()
        ):
            return
        defaults = {name: attr.default for name, attr in private.items()}

        def model_post_init(self: _Model, context: Any, /) -> None:
            """Give the new model its private attributes' defaults (pydantic-core sets
            their store to None before this runs, on every path that makes a model)."""
            if self.__pydantic_private__ is None:
                _set(self, "__pydantic_private__", dict(defaults))

        setattr(cls, "model_post_init", model_post_init)  # noqa: B010 a method, replaced

    def __copy__(self) -> Self:
        """A shallow copy, as pydantic's, without its generic ``copy.copy`` per part (the
        order path copies every answer once, to add its idempotency key)."""
        cls = type(self)
        copy = cls.__new__(cls)
        _set(copy, "__dict__", dict(self.__dict__))
        extra = self.__pydantic_extra__
        _set(copy, "__pydantic_extra__", None if extra is None else dict(extra))
        _set(copy, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        private = getattr(self, "__pydantic_private__", None)
        _set(
            copy,
            "__pydantic_private__",
            None
            if private is None
            else {k: v for k, v in private.items() if v is not PydanticUndefined},
        )
        return copy

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    @classmethod
    def model_validate_strings(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_strings(obj, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with ``update`` checked as the constructor checks it.

        One field of a model without model-wide validators (the core's ``idempotency_key``
        on every order) is checked alone, for well under a microsecond; otherwise the copy
        is validated whole, as a new model, so that a rule across fields (a LIMIT order's
        time in force) sees the result and never an intermediate state.
        """
        copy = super().model_copy(deep=True) if deep else self.__copy__()
        if not update:
            return copy
        cls = type(self)
        try:
            if len(update) == 1 and not cls.__pydantic_decorators__.model_validators:
                for name, value in update.items():
                    if type(value) is str and name in cls._any_text:
                        # A field that takes any str (the order path's idempotency key on
                        # every answer): pydantic would only store it, as done here.
                        copy.__dict__[name] = value
                        copy.__pydantic_fields_set__.add(name)
                        return copy
                    cls.__pydantic_validator__.validate_assignment(copy, name, value)
                return copy
            return cls.__pydantic_validator__.validate_python({**copy.__dict__, **update})  # type: ignore[no-any-return]
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None


def _any_text_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields a plain ``str`` is valid for as it is: typed ``str`` or ``str | None``,
    with no constraint, validator or string setting of the model that could refuse or
    change it (see :meth:`_Model.model_copy`)."""
    if any(
        k.startswith("str_") or k in ("strict", "coerce_numbers_to_str") for k in cls.model_config
    ):
        return frozenset()
    checked = {
        name
        for decorator in cls.__pydantic_decorators__.field_validators.values()
        for name in decorator.info.fields
    }
    return frozenset(
        name
        for name, field in cls.model_fields.items()
        if field.annotation in (str, str | None)
        and not field.metadata
        and name not in checked
        and "*" not in checked
    )


def _refusal(model: str, exc: _PydanticValidationError) -> InvalidRequest:
    """Pydantic's error as ours. Validation runs our ``__init__``, whose own refusal comes
    back wrapped: that one is returned as it is."""
    errors = exc.errors(include_url=False, include_input=False)
    if len(errors) == 1 and not errors[0]["loc"]:
        inner = errors[0].get("ctx", {}).get("error")
        if isinstance(inner, InvalidRequest):
            return inner
    return InvalidRequest(_summarise(model, exc))


def _summarise(model: str, exc: _PydanticValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        message = str(err.get("ctx", {}).get("error", err["msg"]))
        if where and not message.startswith(f"{where}: "):
            message = f"{where}: {message}"
        problems.append(message)
    return f"invalid {model}: " + "; ".join(problems)


Quantity = Annotated[Decimal, _positive("quantity")]
Price = Annotated[Decimal, _positive("price")]


# Amounts the venue reports: finite and not negative, checked by pydantic's own decimal
# validator (the caller's input, Quantity and Price, goes through to_decimal for its
# messages). Same answers as to_decimal on every input: a bool, NaN or "0x10" is refused.
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
