"""The order path's flows and coroutines make no closure cells.

A name that a nested function, lambda or (in Python 3.11) comprehension reads becomes a
cell of its frame, allocated on every call and, for a flow, kept alive across every await
of the order it carries: with a thousand orders in flight those cells alone drove half the
young garbage collections of an event. Each function below is run once per order (or per
request); none may grow a cell again.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from securetrade.client import AsyncClient, Client
from securetrade.core.group_commit import GroupCommit
from securetrade.core.orders import Core, _Sending
from securetrade.core.pipeline import Pipeline
from securetrade.core.reads import Reads

_PER_ORDER: list[Any] = [
    AsyncClient.place_order,
    AsyncClient._run,
    Client.place_order,
    Client._run,
    Core.place_order,
    Core._submit,
    Core._attempts,
    Core._still_allowed,
    Core._claimed,
    Reads.vet,
    Pipeline._exchange,
    Pipeline.perform,
    Pipeline.note_fields,
    GroupCommit.perform,
    _Sending.claim,
    _Sending.before_wait,
    _Sending.before_send,
]


@pytest.mark.parametrize("function", _PER_ORDER, ids=lambda f: f.__qualname__)
def test_no_closure_cells_on_the_order_path(function: Any) -> None:
    code: types.CodeType = function.__code__
    assert code.co_cellvars == (), f"{function.__qualname__} makes cells {code.co_cellvars}"
    assert code.co_freevars == ()
