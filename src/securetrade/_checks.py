"""Argument checks shared by every public constructor: one wording, one error type.

A wrong argument is refused with :class:`~securetrade.errors.InvalidRequest` naming the
argument and what it takes, before anything is built or sent; never a ``TypeError`` or
``AttributeError`` from deep inside.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
import operator
import os
import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from .errors import InvalidRequest

__all__ = [
    "LARGEST",
    "Choice",
    "epoch",
    "flag",
    "plain_decimal",
    "function",
    "instance",
    "number",
    "as_text",
    "own_methods",
    "path",
    "safe_repr",
    "seconds",
    "shown",
    "text",
    "texts",
    "whole",
]

#: The largest whole number any setting takes: what SQLite, ``deque(maxlen=...)`` and the
#: C-level APIs under them hold; a larger one would fail later with an ``OverflowError``.
LARGEST = 2**63 - 1

T = TypeVar("T")


def whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """A whole number from ``low`` to ``high`` (booleans are not numbers); without ``high``,
    at most :data:`LARGEST`, so that no store or buffer sized by it overflows later."""
    top = LARGEST if high is None else high
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (type(value) is not int and not _plain_subclass(value, int))
        or not low <= value <= top
    ):
        raise InvalidRequest(f"{name} must be a whole number from {low} to {top}")
    return value


def number(name: str, value: Any, *, above: float | None = None, least: float | None = None,
           most: float | None = None) -> float:  # fmt: skip
    """A finite number, above ``above`` or at least ``least``, at most ``most``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (
            type(value) in (int, float)  # a subclass kept as given must write itself plainly
            or _plain_subclass(value, int if isinstance(value, int) else float)
        )
        and abs(value) <= sys.float_info.max  # an int past it has no float (OverflowError)
        and math.isfinite(value)
        and (above is None or value > above)
        and (least is None or value >= least)
        and (most is None or value <= most)
    )
    if not ok:
        bounds = []
        if above is not None and above != 0:
            bounds.append(f"above {above:g}")
        if least is not None:
            bounds.append(f"at least {least:g}")
        if most is not None:
            bounds.append(f"at most {most:g}")
        kind = "a positive finite number" if above == 0 else "a finite number"
        raise InvalidRequest(f"{name} must be {kind} {' and '.join(bounds)}".rstrip())
    return float(value)


#: The longest file name and path the usual file systems take (Linux's NAME_MAX and
#: PATH_MAX); a longer one would fail when opened with an ``OSError``.
LONGEST_NAME = 255
LONGEST_PATH = 4096

#: The longest duration any setting takes, in seconds (about 31 years): a longer wait would
#: overflow ``threading``'s and the event loop's timeouts (``OverflowError``) when used.
LONGEST = 1e9


def seconds(name: str, value: Any, *, above: float | None = None, least: float | None = None,
            most: float = LONGEST) -> float:  # fmt: skip
    """A duration in seconds: a finite number within ``most`` (at most :data:`LONGEST`)."""
    return number(f"{name} (seconds)", value, above=above, least=least, most=min(most, LONGEST))


#: The last second a date may name: 9999-12-31T23:59:59Z, where ``datetime`` ends (a later
#: one is an ``OverflowError`` or ``ValueError`` when turned into a date).
LAST_SECOND = 253_402_300_799


def epoch(name: str, value: Any) -> float:
    """A moment as epoch seconds: a finite number from 1970 to the end of year 9999."""
    return number(f"{name} (epoch seconds)", value, least=0, most=LAST_SECOND)


def plain_decimal(value: Decimal) -> str:
    """A Decimal in plain notation, never an exponent: ``format(value, "f")``, which
    ``str`` already is unless it would write one (a positive exponent, or under 1E-6).
    Half the instructions of format's own spec parsing, on every price and size sent."""
    written = str(value)
    return format(value, "f") if "E" in written else written


#: What a ``str`` or ``int`` subclass must not redefine to be taken as one: the value is
#: hashed, compared, written into a message or onto the wire wherever it goes next.
_OWN_DUNDERS = ("__eq__", "__ne__", "__hash__", "__repr__", "__str__", "__format__", "__len__")


def _plain_subclass(value: object, base: type) -> bool:
    """An enum member (its methods are the enum's), or a subclass of ``base`` that keeps
    ``base``'s methods: one whose ``==``, hash or repr may raise is no text or number."""
    if isinstance(value, enum.Enum):
        return True
    kind = type(value)
    return all(getattr(kind, name, None) is getattr(base, name, None) for name in _OWN_DUNDERS)


def is_text(value: object, *, empty: bool = False) -> TypeGuard[str]:
    """Whether :func:`text` accepts ``value``, as a bool: for hot paths that build the
    error only for a value that fails. A ``str`` subclass that redefines how it compares,
    hashes or writes itself is refused (see :func:`_plain_subclass`); another is read with
    ``str``'s own methods."""
    if type(value) is str:
        return (empty or value != "") and value.isprintable()
    return (
        isinstance(value, str)
        and _plain_subclass(value, str)
        and (empty or str.__len__(value) > 0)
        and str.isprintable(value)
    )


def text(name: str, value: Any, *, empty: bool = False) -> str:
    """Printable text (non-empty unless ``empty``), as a plain ``str``: a subclass's
    value is copied out, so that no ``__hash__``, ``__eq__`` or ``__repr__`` of the
    caller's class runs where it is used (a dict key, a message)."""
    if is_text(value, empty=empty):
        return value if type(value) is str else str.__str__(value)
    kind = "" if empty else "non-empty "
    raise InvalidRequest(f"{name} must be {kind}printable text{own_methods(value)}")


def as_text(value: object) -> str | None:
    """``value`` as a plain ``str`` when it is a ``str`` or a subclass keeping ``str``'s
    own ``==``, hash and repr (copied out, as :func:`text` does); else None. For a check
    that writes its own refusal (add :func:`own_methods` to it): the copy, not the
    caller's object, is then looked up, compared and stored."""
    if type(value) is str:
        return value
    if isinstance(value, str) and _plain_subclass(value, str):
        return str.__str__(value)
    return None


def own_methods(value: object) -> str:
    """What to add to a refusal of ``value`` when it is a ``str`` subclass that
    redefines how it compares, hashes or shows itself: that it is the reason, and what to
    give instead ("" for any other value)."""
    if isinstance(value, str) and not _plain_subclass(value, str):
        try:
            kind = type(value).__name__
        except Exception:  # a metaclass's own __getattribute__
            kind = "str subclass"
        return (
            f" (a {kind:.40} redefines how it compares, hashes or shows itself: pass a plain str)"
        )
    return ""


def path(name: str, value: Any) -> str | os.PathLike[str]:
    """A file system path: a non-empty ``str`` or ``os.PathLike`` naming a ``str`` path."""
    named = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(named, str) or not named or "\x00" in named:
        raise InvalidRequest(f"{name} must be a file path (a non-empty str or pathlib.Path)")
    if len(named) > LONGEST_PATH or any(
        len(part.encode("utf-8", "surrogateescape")) > LONGEST_NAME for part in named.split(os.sep)
    ):
        raise InvalidRequest(
            f"{name} is too long for a file system (at most {LONGEST_NAME} bytes a name, "
            f"{LONGEST_PATH} characters in all): give a shorter path"
        )
    return value  # type: ignore[no-any-return]


def texts(name: str, values: Any) -> list[str]:
    """A list (any iterable) of printable texts; one bare string would otherwise become a
    list of its characters, so it is refused."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        one = " (not one string)" if isinstance(values, (str, bytes)) else ""
        raise InvalidRequest(f"{name} must be a list of strings{one}")
    return [text(f"each of {name}", value) for value in values]


def function(name: str, value: Any, *, optional: bool = False) -> Any:
    """A callable (or None when ``optional``): refused here, not when first called."""
    if (value is None and optional) or callable(value):
        return value
    raise InvalidRequest(f"{name} must be a function" + (" (or None)" if optional else ""))


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be True or False")
    return value


def instance(name: str, value: Any, kind: type | tuple[type, ...], *, optional: bool = True) -> Any:
    """``value`` of ``kind`` (or None when ``optional``)."""
    if value is None and optional:
        return value
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidRequest(f"{name} must be a {names}" + (" (or None)" if optional else ""))
    return value


def safe_repr(method: Callable[[T], str]) -> Callable[[T], str]:
    """Wrap a ``__repr__`` so that an object whose ``__init__`` refused an argument still
    has one: a traceback renderer or logger showing ``self`` of the failed ``__init__``
    would otherwise raise ``AttributeError`` on the attribute never set (or the error of a
    property computed from a refused one)."""

    @functools.wraps(method)
    def wrapper(self: T) -> str:
        try:
            return method(self)
        except Exception:  # an attribute never set, or a check on one: repr must not raise
            return f"<{type(self).__name__}, refused while being built>"

    return wrapper


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for an error message about a value the
    caller gave: never raises, whatever the value's ``__repr__`` does (raises, returns no
    str, or is an int too long to write, a ``ValueError`` past 4,300 digits)."""
    try:
        written = repr(value)
    except Exception:  # the caller's own object: its failure must not become ours
        try:
            kind = type(value).__name__
        except Exception:
            kind = "value"
        return f"<a {kind:.{limit}} that cannot be shown>"
    return written[:limit]


class _ChoiceType(enum.EnumMeta):
    """The class of :class:`Choice`: a lookup ``Side(value)`` that fails for any reason,
    a value whose ``__hash__``, ``__eq__`` or ``__repr__`` raises included, is refused
    with :class:`~securetrade.errors.InvalidRequest` (``Enum.__new__`` would let the
    value's own error out, or raise its own while writing the value into its message).

    A found value is one dict lookup here, as ``Enum.__new__`` does after one more frame."""

    def __call__(cls, value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:  # the functional API (a new enum class): Enum's own
            return super().__call__(value, *args, **kwargs)
        if type(value) is cls:
            return value
        try:
            return cls._value2member_map_[value]
        except Exception:  # a miss, an unhashable value, or a hash or == that raises
            return cls._lookup(value)  # type: ignore[attr-defined]


class Choice(enum.Enum, metaclass=_ChoiceType):
    """Base of every exported enum: an unknown value is refused with
    :class:`~securetrade.errors.InvalidRequest` listing the accepted ones (a ``ValueError``
    still, as Python's own enums raise, so pydantic still turns it into its own
    ``ValidationError`` for a model field of the enum's type). Whatever the value's own
    methods do: see :class:`_ChoiceType`."""

    # Enum's own ``value`` is a Python-level descriptor: two Python calls per read. This one
    # reads the member's value in C; pydantic reads it for every enum field it serialises
    # (an order's side, type, status and time in force, journaled with every order).
    if not TYPE_CHECKING:  # typed as Enum's own (mypy would take it for a member)
        value = property(operator.attrgetter("_value_"))

    def __str__(self) -> str:
        """The value, as the venue and the docs spell it: ``print(order.status)`` shows
        ``CANCELED``, not ``OrderStatus.CANCELED`` (``repr`` still names the class)."""
        return str(self.value)

    def __format__(self, spec: str) -> str:
        """f-strings show the value too; a format spec applies to it (``f"{p:>3d}"``)."""
        return format(self.value, spec)

    @classmethod
    def _lookup(cls, value: object) -> Any:
        """The member ``value`` names when the dict missed it (an unhashable value equal
        to a member's, as ``Enum.__new__`` searches), or the refusal."""
        with contextlib.suppress(Exception):  # an __eq__ (or its answer's __bool__) raising
            for member in cls._member_map_.values():
                if member._value_ == value:
                    return member
        return cls._missing_(value)

    @classmethod
    def _missing_(cls, value: object) -> Any:
        allowed = ", ".join(str(member.value) for member in cls)
        # Cut short: a 100,000-character value would otherwise be the whole message.
        raise InvalidRequest(f"{shown(value)} is not a {cls.__name__}: give one of {allowed}")
