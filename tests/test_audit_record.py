"""AuditLog.record: emit with the fields as one dict (the core's per-order notes)."""

from __future__ import annotations

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
    list(Pipeline.note(holder, "order.placed", client_order_id="st1"))  # type: ignore[arg-type]
    assert calls == [("order.placed", {"client_order_id": "st1"})]
