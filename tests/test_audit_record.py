"""AuditLog.record: emit with the fields as one dict (the core's per-order notes)."""

from __future__ import annotations

import functools
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from securetrade.core.effects import Resource
from securetrade.core.pipeline import Pipeline
from securetrade.errors import InvalidRequest
from securetrade.record import AuditLog, Event


def test_record_keeps_what_emit_keeps() -> None:
    audit = AuditLog()
    seen: list[Event] = []
    audit.subscribe(seen.append)
    fields = {"client_order_id": "st1", "quantity": Decimal("0.5"), "new": True}
    audit.record("order.intent", dict(fields))
    audit.emit("order.intent", **fields)
    first, second = audit.events("order.intent")
    assert first.kind == second.kind == "order.intent"
    assert first.fields == second.fields == fields
    assert seen == [first, second]


@pytest.mark.parametrize(
    ("kind", "fields"), [("", {}), ("bad\nkind", {}), (5, {}), ("ok", [("a", 1)]), ("ok", None)]
)
def test_record_refuses_what_is_no_event(kind: Any, fields: Any) -> None:
    with pytest.raises(InvalidRequest):
        AuditLog().record(kind, fields)


def test_the_order_path_notes_through_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's notes hand their keywords over as the dict they are (one packing)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    audit = AuditLog()
    monkeypatch.setattr(audit, "record", lambda kind, fields: calls.append((kind, fields)))
    monkeypatch.setattr(audit, "emit", lambda kind, **fields: pytest.fail("emit: repacked"))
    holder = SimpleNamespace(audit=audit, inline=frozenset(Resource))
    holder.note_fields = functools.partial(Pipeline.note_fields, holder)  # type: ignore[arg-type]
    list(Pipeline.note(holder, "order.placed", client_order_id="st1"))  # type: ignore[arg-type]
    assert calls == [("order.placed", {"client_order_id": "st1"})]


def test_a_placed_orders_notes_say_what_they_said() -> None:
    from securetrade import Client, LimitOrder, MarketOrder
    from securetrade.sim import Simulator

    with Simulator() as sim:
        audit = AuditLog()
        key = sim.create_key()
        with Client(key, transport=sim.transport(), journal=":memory:", audit=audit) as client:
            placed = client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
            )
            client.place_order(
                MarketOrder(symbol="BTCUSDT", side="BUY", quote_quantity="50"),
                idempotency_key="quote-1",
            )
    limit, market = audit.events("order.intent")
    assert limit.fields == {
        "client_order_id": placed.client_order_id,
        "symbol": "BTCUSDT",
        "new": True,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": Decimal("0.01"),
        "price": Decimal("60000"),
    }
    assert market.fields["quote_quantity"] == Decimal("50")
    assert market.fields["quantity"] is None
    assert audit.events("order.placed")[0].fields == {
        "client_order_id": placed.client_order_id,
        "order_id": placed.order_id,
        "status": placed.status.value,
    }
