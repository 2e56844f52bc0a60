"""Frozen dataclasses built on hot paths as unfrozen drafts (``securetrade._drafts``): what
comes out is the class's own instance, frozen, equal to the one its constructor builds."""

from __future__ import annotations

import dataclasses
import pickle
import secrets

import pytest

from securetrade._drafts import draft_of
from securetrade.keys import Secret
from securetrade.signing import HmacSha256Signer
from securetrade.transport.base import HttpRequest
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE


@dataclasses.dataclass(frozen=True, slots=True)
class _Frozen:
    a: str
    b: int = 2
    c: list[int] = dataclasses.field(default_factory=list)


def test_a_draft_takes_the_same_arguments_and_defaults_and_becomes_the_frozen_class() -> None:
    draft = draft_of(_Frozen)
    made = draft("x")
    made.__class__ = _Frozen
    assert type(made) is _Frozen
    assert made == _Frozen("x")
    assert made.c == []
    assert made.c is not draft("y").c  # a fresh default per instance
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.a = "y"


def test_a_class_of_another_layout_has_no_draft() -> None:
    @dataclasses.dataclass(frozen=True)  # no slots: a __dict__ the draft does not have
    class Unslotted:
        a: str

    with pytest.raises(TypeError):
        draft_of(Unslotted)


def test_binance_signs_an_order_into_the_frozen_request_its_constructor_builds() -> None:
    endpoint = BINANCE.endpoints[Op.PLACE_ORDER]
    params = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1")]
    signer = HmacSha256Signer(Secret(secrets.token_hex(32)))
    request = BINANCE.prepare(endpoint, params, key_id="k", signer=signer, timestamp_ms=1)
    assert type(request) is HttpRequest
    expected = HttpRequest(request.method, request.target, request.headers, request.body)
    assert request == expected
    assert hash(request) == hash(expected)
    assert repr(request) == repr(expected)
    assert b"&signature=" in request.body
    assert pickle.loads(pickle.dumps(request)) == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.body = b""  # type: ignore[misc]
