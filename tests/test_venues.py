"""The venue registry: built-ins load lazily, unknown names are typed errors, and a bare
``import securetrade`` loads neither ccxt nor any venue adapter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from securetrade import InvalidRequest
from securetrade.venues import Freshness, available_venues, get_venue
from securetrade.venues import _resolve as resolve  # the loader's own check of an adapter


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_loads_no_ccxt_and_no_adapter() -> None:
    out = _run(
        """
        import sys
        import securetrade
        from securetrade import Client
        from securetrade.sim import Simulator
        print(sorted(m for m in sys.modules if m == "ccxt" or m.startswith(("ccxt.",
              "securetrade.venues.binance", "securetrade.venues.kraken",
              "securetrade.venues.ccxt"))))
        with Simulator() as sim:
            Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
        print(sorted(m for m in sys.modules if m == "ccxt" or m.startswith("ccxt.")))
        print("securetrade.venues.kraken" in sys.modules)
        """
    )
    before, after, kraken = out.splitlines()
    assert before == "[]"
    assert after == "[]"  # a Binance client still needs no ccxt
    assert kraken == "False"


def test_builtins_by_name() -> None:
    assert get_venue("binance").freshness is Freshness.TIMESTAMP
    kraken = get_venue("kraken")
    assert kraken.freshness is Freshness.NONCE
    assert get_venue("kraken") is kraken  # loaded once
    assert {"binance", "kraken"} <= set(available_venues())


def test_unknown_venue_is_a_typed_error() -> None:
    with pytest.raises(InvalidRequest, match=r"unknown venue 'nope' \(known: .*binance"):
        get_venue("nope")
    with pytest.raises(InvalidRequest, match="unknown venue"):
        get_venue("nofamily:x")


def test_loader_checks_what_it_loads() -> None:
    with pytest.raises(InvalidRequest, match="not a venue adapter"):
        resolve(SimpleNamespace(name="x"), None)

    class Factory:  # a class is called to make the adapter
        def __init__(self) -> None:
            self.name, self.endpoints = "made", {}

        def prepare(self) -> None: ...

        def interpret(self) -> None: ...

    assert resolve(Factory, None).name == "made"
