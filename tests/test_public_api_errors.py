"""Every public constructor refuses a wrong argument with a typed error (issue 16, failure
10 and "every Settings and constructor argument is validated"): no ``TypeError``,
``AttributeError`` or ``ValueError`` of Python's own reaches the caller."""

from __future__ import annotations

import enum
import importlib
import inspect
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


def _classes() -> dict[str, type]:
    """Every exported class by its public name (``Policy``, ``copy.Follower``), enums
    aside: looking a member up by value follows Python's Enum contract."""
    found: dict[str, type] = {}
    for prefix, module in [("", securetrade)] + [
        (f"{name}.", importlib.import_module(f"securetrade.{name}")) for name in SUBPACKAGES
    ]:
        for name in getattr(module, "__all__", ()):
            kind = getattr(module, name, None)
            if (
                inspect.isclass(kind)
                and not issubclass(kind, (BaseException, enum.Enum))
                and kind not in found.values()
            ):
                found[prefix + name] = kind
    return found


CLASSES = _classes()


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
