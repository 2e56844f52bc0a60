"""Every public constructor refuses a wrong argument with a typed error (issue 16, failure
10 and "every Settings and constructor argument is validated"): no ``TypeError``,
``AttributeError`` or ``ValueError`` of Python's own reaches the caller."""

from __future__ import annotations

import enum
import importlib
import inspect
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import securetrade
from securetrade import SecureTradeError

WRONG = [None, "", "x", -1, 0, float("nan"), float("inf"), [], {}, object(), True, b"x"]


#: Subpackages whose ``__all__`` is public too (a platform imports securetrade.copy, ...).
SUBPACKAGES = (
    "core", "copy", "streams", "keys", "policy", "ratelimit", "record", "privacy", "gateway",
    "oauth", "verify", "transport", "sim", "models", "clock", "nonce", "signing", "venues",
)  # fmt: skip


def _exported() -> dict[str, Any]:
    """Every name in the ``__all__`` of securetrade and its subpackages, by public name
    (``Policy``, ``copy.Follower``); an object exported twice is named once."""
    found: dict[str, Any] = {}
    for prefix, module in [("", securetrade)] + [
        (f"{name}.", importlib.import_module(f"securetrade.{name}")) for name in SUBPACKAGES
    ]:
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if not any(value is seen for seen in found.values()):
                found[prefix + name] = value
    return found


def _classes() -> dict[str, type]:
    """Every exported class but errors and enums (walked by their own test below)."""
    return {
        name: kind
        for name, kind in _exported().items()
        if inspect.isclass(kind) and not issubclass(kind, (BaseException, enum.Enum))
    }


def _enums() -> dict[str, type[enum.Enum]]:
    return {
        name: kind
        for name, kind in _exported().items()
        if inspect.isclass(kind) and issubclass(kind, enum.Enum)
    }


CLASSES = _classes()
ENUMS = _enums()


def _constructors() -> list[tuple[str, str]]:
    cases = []
    for name, kind in CLASSES.items():
        try:
            signature = inspect.signature(kind)
        except (TypeError, ValueError):
            continue
        params = [
            p
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        required = [p for p in params if p.default is p.empty]
        for param in params:
            if [p for p in required if p is not param]:
                continue  # needs other arguments to be built at all
            cases.append((name, param.name))
    return cases


@pytest.mark.parametrize(("kind", "argument"), _constructors())
def test_a_wrong_argument_is_a_securetrade_error(
    kind: str, argument: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a wrong value taken as a relative file name lands here
    cls: Any = CLASSES[kind]
    for value in WRONG:
        try:
            made = cls(**{argument: value})
        except SecureTradeError:
            continue
        except Exception as exc:  # pragma: no cover - the failure this test reports
            pytest.fail(f"{kind}({argument}={value!r}) raised {type(exc).__name__}: {exc}")
        close = getattr(made, "close", None)
        if callable(close):
            close()


def test_the_walk_covers_the_public_constructors() -> None:
    kinds = {kind for kind, _ in _constructors()}
    assert {"Policy", "RateLimiter", "AuditLog", "KillSwitch", "Settings"} <= kinds
    assert {"core.RedisJournal", "privacy.PersonalDataPolicy", "gateway.SharedState"} <= kinds


class _Unprintable:
    """A value whose ``str`` raises: a message built with ``str(value)`` would raise too."""

    def __str__(self) -> str:
        raise RuntimeError("no text for this value")


#: What an enum is called with besides :data:`WRONG`: a name instead of a value, a huge
#: one, numbers that are not (NaN, infinities), and values with no text.
NOT_MEMBERS = [
    "bogus", "BUY", "buy ", "\x00", "x" * 100_000, 10**100, -(10**100), 1.5,
    float("-inf"), Decimal("NaN"), Decimal("Infinity"), _Unprintable(),
]  # fmt: skip


@pytest.mark.parametrize("kind", sorted(ENUMS))
def test_an_unknown_enum_value_is_a_securetrade_error(kind: str) -> None:
    """``Side("bogus")`` is an InvalidRequest naming the accepted values (a ValueError
    still), the same for every exported enum; a value that is one gives its member."""
    cls = ENUMS[kind]
    for value in WRONG + NOT_MEMBERS:
        message = ""
        try:
            member = cls(value)
        except SecureTradeError as exc:
            message = str(exc)
        except Exception as exc:  # pragma: no cover - the failure this test reports
            pytest.fail(f"{kind}({value!r:.40}) raised {type(exc).__name__}: {exc}")
        if message:
            assert len(message) < 400, f"{kind}: the message repeats the whole value"
            assert all(str(m.value) in message for m in cls), f"{kind}: {message}"
            continue
        assert member.value == value
    for member in cls:
        assert cls(member.value) is member


def test_the_walk_covers_the_exported_enums() -> None:
    assert len(ENUMS) >= 25  # 25 when written
    assert {"Side", "gateway.Side", "policy.Severity", "core.Resource", "venues.Op"} <= set(ENUMS)
