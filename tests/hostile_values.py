"""Values whose own methods fail: an argument a caller built badly (or on purpose).

Every check and every error message must survive them: the caller gets a typed
:class:`~securetrade.errors.SecureTradeError`, never the value's own exception (nor a
``ValueError`` from ``repr`` of a 5,000-digit int).
"""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """What the hostile values raise: no securetrade error, no builtin one a caller
    might catch by accident."""


class BadRepr:
    def __repr__(self) -> str:
        raise Refused("repr")


class BadReprStr(BadRepr):
    def __str__(self) -> str:
        raise Refused("str")


class BadHash(BadRepr):
    def __hash__(self) -> int:
        raise Refused("hash")


class BadEq(BadRepr):
    """Unhashable, so that an enum lookup compares it with each value."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise Refused("eq")


class CollidingEq(BadRepr):
    """Hashes as "BUY", so that a dict lookup compares it with a key."""

    def __hash__(self) -> int:
        return hash("BUY")

    def __eq__(self, other: object) -> bool:
        raise Refused("eq")


class FalseyEq(BadRepr):
    """``==`` answers an object whose truth raises."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> Any:
        return BadBool()


class BadBool(BadRepr):
    def __bool__(self) -> bool:
        raise Refused("bool")


class TextBadRepr(str):
    """Text (a ``str`` subclass passes isinstance checks) whose repr raises."""

    def __repr__(self) -> str:
        raise Refused("repr")


class TextBadEq(str):
    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        raise Refused("eq")

    def __repr__(self) -> str:
        raise Refused("repr")


class TextBadHash(str):
    def __hash__(self) -> int:
        raise Refused("hash")


class NumberBadRepr(int):
    def __repr__(self) -> str:
        raise Refused("repr")

    def __str__(self) -> str:
        raise Refused("str")


#: One of each; a text one both as a known value and as an unknown one.
DUNDER_HOSTILE: list[Any] = [
    BadRepr(),
    BadReprStr(),
    BadHash(),
    BadEq(),
    CollidingEq(),
    FalseyEq(),
    BadBool(),
    TextBadRepr("BUY"),
    TextBadRepr("no such value\n"),
    TextBadEq("BUY"),
    TextBadEq("no such value"),
    TextBadHash("BUY"),
    NumberBadRepr(5),
    10**5000,  # repr raises ValueError: more than 4,300 digits
]
