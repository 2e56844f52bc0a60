"""Modules split along their layers keep the names callers and pickles have always used.

``securetrade.models`` became a package and ``sim.binance``, ``sim.kraken`` and
``keys.keystore`` were split into layers; a pickle written before the split names each
class by its old module, so the classes still carry it and the old modules still export
them.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from decimal import Decimal

import pytest

import securetrade.models
from securetrade.keys.keystore import InboundEntry
from securetrade.models import AssetClass, Transfer, TransferKind, to_decimal
from securetrade.sim.binance import BinanceDialect, SimLimits
from securetrade.sim.kraken import KrakenDialect, KrakenLimits, kraken_secret


@pytest.mark.parametrize(
    ("obj", "module"),
    [
        (AssetClass, "securetrade.models"),
        (TransferKind, "securetrade.models"),
        (to_decimal, "securetrade.models"),
        (securetrade.models.replacing, "securetrade.models"),
        (Transfer, "securetrade"),  # exported at the top, as before
        (InboundEntry, "securetrade.keys.keystore"),
        (BinanceDialect, "securetrade.sim.binance"),
        (SimLimits, "securetrade.sim.binance"),
        (KrakenDialect, "securetrade.sim.kraken"),
        (KrakenLimits, "securetrade.sim.kraken"),
        (kraken_secret, "securetrade.sim.kraken"),
    ],
)
def test_moved_names_keep_their_module(obj: object, module: str) -> None:
    assert obj.__module__ == module  # type: ignore[attr-defined]


def test_every_model_export_names_the_package_or_the_top() -> None:
    for name in securetrade.models.__all__:
        module = getattr(getattr(securetrade.models, name), "__module__", None)
        assert module in (None, "securetrade", "securetrade.models"), name


def test_pickles_name_the_modules_they_always_named() -> None:
    transfer = Transfer(
        kind=TransferKind.DEPOSIT,
        transfer_id="t1",
        asset="BTC",
        amount=Decimal("1.5"),
        status="ok",
        at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    data = pickle.dumps(transfer)
    assert b"securetrade.models\x94\x8c\x0cTransferKind" in data
    assert b"securetrade.models.account" not in data
    assert pickle.loads(data) == transfer
    entry = InboundEntry("k1", "tenant", ("trade",), (), None, bytes(32))
    data = pickle.dumps(entry)
    assert b"securetrade.keys.keystore\x94" in data
    assert b"keystore_entries" not in data
    assert pickle.loads(data) == entry
    limits = SimLimits(weight=10)
    data = pickle.dumps(limits)
    assert b"securetrade.sim.binance\x94" in data
    assert b"binance_rules" not in data
    assert pickle.loads(data) == limits
