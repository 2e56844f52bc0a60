"""Arguments whose own ``__repr__``, ``__str__``, ``__eq__``, ``__hash__`` or ``__bool__``
raise: every enum lookup and every message about them ends in a typed error."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
from decimal import Decimal
from typing import Any

import pytest

import securetrade
from hostile_values import DUNDER_HOSTILE
from securetrade import InvalidRequest, LimitOrder, SecureTradeError, Side
from securetrade._checks import Choice


def _choices() -> list[type[Choice]]:
    found: dict[str, type[Choice]] = {}
    for info in pkgutil.walk_packages(securetrade.__path__, "securetrade."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (ccxt, matplotlib) not installed
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Choice) and obj is not Choice:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


CHOICES = _choices()


def test_the_enums_are_found() -> None:
    assert len(CHOICES) >= 20  # 25 when written


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: c.__name__)
def test_an_enum_lookup_refuses_a_hostile_value_with_a_typed_error(choice: type[Choice]) -> None:
    """``Enum.__new__`` let a raising ``__hash__`` or ``__eq__`` out, and wrote the value
    with ``%r`` into its own ValueError (the hostile repr's error came out instead)."""
    escapes = []
    for value in DUNDER_HOSTILE:
        try:
            choice(value)
        except InvalidRequest as exc:
            if f"is not a {choice.__name__}: give one of" not in str(exc):
                escapes.append(f"{type(value).__name__}: the message is {exc}")
        except Exception as exc:
            escapes.append(f"{type(value).__name__}: {type(exc).__name__}: {exc}")
    assert not escapes, "\n".join(escapes)


def test_an_enum_lookup_still_finds_members_and_their_values() -> None:
    assert Side("BUY") is Side.BUY
    assert Side(Side.SELL) is Side.SELL
    assert securetrade.Scope(securetrade.Scope.READ) is securetrade.Scope.READ
    assert securetrade.Priority(1) is securetrade.Priority(1)
    with pytest.raises(InvalidRequest, match="'HOLD' is not a Side: give one of BUY, SELL"):
        Side("HOLD")
    with pytest.raises(InvalidRequest, match="is not a Side"):
        Side(["BUY"])  # unhashable: compared with each value, as Enum does
    # The functional API (a new enum made from names) is Enum's own still.
    made = Choice("Made", ["ONE", "TWO"])  # type: ignore[call-overload]
    assert made.ONE.value == 1


def test_shown_never_raises() -> None:
    from securetrade._checks import shown

    for value in DUNDER_HOSTILE:
        assert isinstance(shown(value), str)
    assert shown("x" * 100) == repr("x" * 100)[:40]
    assert "cannot be shown" in shown(10**5000)


FIELDS = ["symbol", "side", "quantity", "price", "time_in_force", "client_order_id"]


@pytest.mark.parametrize("field", FIELDS)
def test_an_order_refuses_a_hostile_field_with_a_typed_error(field: str) -> None:
    """A text quantity whose repr raises got past the type check, then broke the message
    saying it is no number; a hostile side or time in force broke the enum lookup."""
    escapes = []
    for value in DUNDER_HOSTILE:
        parts: dict[str, Any] = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": Decimal("0.01"),
            "price": "100",
        }
        parts[field] = value
        try:
            LimitOrder(**parts)
        except SecureTradeError:
            pass
        except Exception as exc:
            escapes.append(f"{type(value).__name__}: {type(exc).__name__}: {exc}")
    assert not escapes, "\n".join(escapes)


class _TextRaisingEverywhere(str):
    def __ne__(self, other: object) -> bool:
        raise RuntimeError("ne")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __hash__(self) -> int:
        raise RuntimeError("hash")


class _TextOfItsOwn(str):
    """A str subclass that keeps str's comparisons and writing (a caller's newtype)."""

    def isprintable(self) -> bool:
        raise RuntimeError("isprintable")


def test_text_refuses_a_str_subclass_redefining_what_it_is_used_for() -> None:
    """A str subclass passed the isinstance check, then its own methods ran in the check
    (``!=``) and wherever the value went (a dict key: its ``__hash__``; a message: its
    ``__repr__``). One that redefines them is refused; one that does not is read with
    str's own methods and given back as a plain str; an enum member is text."""
    from securetrade._checks import is_text, text, whole

    assert not is_text(_TextRaisingEverywhere("walk"))
    with pytest.raises(InvalidRequest):
        text("name", _TextRaisingEverywhere("walk"))
    checked = text("name", _TextOfItsOwn("walk"))
    assert type(checked) is str
    assert checked == "walk"
    assert text("side", Side.BUY) == "BUY"
    assert whole("priority", securetrade.Priority(1), 0) == 1
    for value in DUNDER_HOSTILE:
        with pytest.raises(InvalidRequest):
            whole("count", value, 0)


class _PlainCount(int):
    """An int subclass that redefines nothing (a caller's newtype)."""


def test_settings_refuse_a_number_that_writes_itself_with_a_raising_repr() -> None:
    """Settings kept an int subclass whose repr raises (number() took it): the settings'
    own repr raised then. A subclass that redefines nothing is still a number (whole()
    looked for an int's __len__ before, an AttributeError)."""
    import dataclasses

    from securetrade import Settings
    from securetrade._checks import number, whole

    for field in dataclasses.fields(Settings):
        for value in DUNDER_HOSTILE:
            with contextlib.suppress(SecureTradeError):  # refused, or kept and shown
                repr(Settings(**{field.name: value}))
    assert whole("count", _PlainCount(3), 0) == 3
    assert number("seconds", _PlainCount(3)) == 3.0


def test_a_str_subclass_of_its_own_is_refused_saying_to_pass_a_plain_str() -> None:
    """Session 13 (issue 16): the checks that look a name up (a retention class, an inbound
    key id, an HTTP method, a gateway scope) take a plain copy of a str subclass that
    keeps str's methods, and refuse one of its own with what to give instead."""
    from hostile_values import TextBadEq, TextBadHash
    from securetrade._checks import as_text, text
    from securetrade.privacy import RetentionPolicy

    assert type(as_text(_TextOfItsOwn("walk"))) is str
    assert as_text(TextBadHash("walk")) is None
    assert as_text(b"walk") is None
    for value in (TextBadHash("BUY"), TextBadEq("BUY")):
        with pytest.raises(InvalidRequest, match="pass a plain str"):
            text("name", value)
        with pytest.raises(InvalidRequest, match="pass a plain str"):
            RetentionPolicy().seconds(value)
    assert RetentionPolicy().seconds(_TextOfItsOwn("relationship")) > 0
