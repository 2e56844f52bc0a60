"""Argument checks shared by every public constructor: one wording, one error type.

A wrong argument is refused with :class:`~securetrade.errors.InvalidRequest` naming the
argument and what it takes, before anything is built or sent; never a ``TypeError`` or
``AttributeError`` from deep inside.
"""

from __future__ import annotations

import enum
import math
from typing import Any

from .errors import InvalidRequest

__all__ = ["Choice", "flag", "instance", "number", "text", "whole"]


def whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """A whole number from ``low`` to ``high`` (booleans are not numbers)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        upper = f" to {high}" if high is not None else " or more"
        raise InvalidRequest(f"{name} must be a whole number from {low}{upper}")
    return value


def number(name: str, value: Any, *, above: float | None = None, least: float | None = None,
           most: float | None = None) -> float:  # fmt: skip
    """A finite number, above ``above`` or at least ``least``, at most ``most``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (isinstance(value, int) or math.isfinite(value))  # a huge int overflows isfinite
        and (above is None or value > above)
        and (least is None or value >= least)
        and (most is None or value <= most)
    )
    if not ok:
        bounds = []
        if above is not None:
            bounds.append(f"above {above:g}")
        if least is not None:
            bounds.append(f"at least {least:g}")
        if most is not None:
            bounds.append(f"at most {most:g}")
        raise InvalidRequest(f"{name} must be a finite number {' and '.join(bounds)}".rstrip())
    return float(value)


def text(name: str, value: Any, *, empty: bool = False) -> str:
    """Printable text (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value) or not value.isprintable():
        raise InvalidRequest(f"{name} must be {'' if empty else 'non-empty '}printable text")
    return value


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


class Choice(enum.Enum):
    """Base of the public enums: an unknown value is refused with
    :class:`~securetrade.errors.InvalidRequest` listing the accepted ones (a ``ValueError``
    still, as Python's own enums raise)."""

    def __str__(self) -> str:
        """The value, as the venue and the docs spell it: ``print(order.status)`` shows
        ``CANCELED``, not ``OrderStatus.CANCELED`` (``repr`` still names the class)."""
        return str(self.value)

    def __format__(self, spec: str) -> str:
        """f-strings show the value too; a format spec applies to it (``f"{p:>3d}"``)."""
        return format(self.value, spec)

    @classmethod
    def _missing_(cls, value: object) -> Any:
        allowed = ", ".join(str(member.value) for member in cls)
        raise InvalidRequest(f"{value!r} is not a {cls.__name__} ({allowed})")
