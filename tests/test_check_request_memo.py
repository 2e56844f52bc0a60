"""check_request remembers what passed (methods, paths, header pairs) and checks the rest:
repeated order requests skip the regexes, and nothing unchecked slips through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from securetrade.errors import InvalidRequest
from securetrade.transport import http
from securetrade.transport.base import HttpRequest
from securetrade.transport.http import check_request


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every regex check check_request makes, by name, on a fresh memo."""
    calls: list[str] = []
    monkeypatch.setattr(http, "_PASSED", set())

    def wrap(name: str) -> Callable[[str], Any]:
        real = getattr(http, name)

        def check(text: str) -> Any:
            calls.append(name)
            return real(text)

        return check

    for name in ("_TOKEN", "_TARGET", "_VALUE"):
        monkeypatch.setattr(http, name, wrap(name))
    return calls


def _order_request(key_id: str = "k" * 64, query: str = "") -> HttpRequest:
    headers = (("X-MBX-APIKEY", key_id), ("Content-Type", "application/x-www-form-urlencoded"))
    return HttpRequest("POST", "/api/v3/order" + query, headers, b"symbol=BTCUSDT&signature=ab")


def test_a_repeated_request_is_checked_once(counted: list[str]) -> None:
    check_request(_order_request())
    assert counted  # the first time, every part is checked
    counted.clear()
    check_request(_order_request())
    assert counted == []


def test_a_query_target_is_checked_every_time(counted: list[str]) -> None:
    check_request(_order_request(query="?timestamp=1"))
    counted.clear()
    check_request(_order_request(query="?timestamp=1"))
    assert counted == ["_TARGET"]


def _sly(text: str, twin: str) -> str:
    """``text``, as a str subclass that equals anything and hashes as ``twin``: found in
    the memo under ``twin``, yet other text on the wire."""

    class Sly(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash(twin)

    return Sly(text)


@pytest.mark.usefixtures("counted")
def test_only_what_was_checked_is_skipped() -> None:
    check_request(_order_request())
    key = "k" * 64
    with pytest.raises(InvalidRequest):
        check_request(_order_request(key_id=_sly(key + "\r\nX-Injected: 1", key)))
    with pytest.raises(InvalidRequest):
        check_request(HttpRequest("POST", _sly("/api/v3/order\r\nX: 1", "/api/v3/order"), ()))
    with pytest.raises(InvalidRequest):
        check_request(HttpRequest(_sly("POST x", "POST"), "/api/v3/order", ()))
    # A refused part is not remembered: refused again.
    for _ in range(2):
        with pytest.raises(InvalidRequest):
            check_request(_order_request(key_id="k\r\nX-Injected: 1"))
    assert all(type(p) in (str, tuple) for p in http._PASSED)
