"""Results in a notebook: short reprs, HTML tables, enums as values, exact DataFrames."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from securetrade import (
    ApiKey,
    Client,
    InvalidRequest,
    LimitOrder,
    OrderStatus,
    Results,
    Side,
    to_pandas,
)
from securetrade.sim import Simulator


@pytest.fixture
def client(sim: Simulator, server: Any, key: ApiKey, tls_options: Any) -> Any:
    with Client(key, journal=":memory:", **tls_options(server)) as made:
        yield made


def _placed(client: Client, n: int = 2) -> list[Any]:
    return [
        client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price=str(50000 + i)),
            idempotency_key=f"tables-{i}",
        )
        for i in range(n)
    ]


def test_enums_print_as_their_value() -> None:
    assert str(OrderStatus.CANCELED) == "CANCELED"
    assert f"{Side.BUY}" == "BUY"
    assert f"{Side.SELL:>5}" == " SELL"
    assert repr(Side.BUY) == "<Side.BUY: 'BUY'>"  # repr still names the class


def test_order_repr_is_short_and_shows_values(client: Client) -> None:
    order = _placed(client, 1)[0]
    text = repr(order)
    assert text.startswith("Order(symbol='BTCUSDT', side=BUY, type=LIMIT, status=NEW")
    assert "price=50000" in text
    assert "Decimal(" not in text
    assert "venue=" not in text  # only the brief columns
    assert len(text) < len(BaseModel.__repr__(order)) / 2


def test_client_lists_are_results_with_html_tables(client: Client) -> None:
    placed = _placed(client, 3)
    orders = client.open_orders("BTCUSDT")
    assert isinstance(orders, Results)
    assert {o.client_order_id for o in orders} == {o.client_order_id for o in placed}
    page = orders._repr_html_()
    assert page.startswith("<table><caption>Order (3)</caption>")
    assert page.count("<tr>") == 4  # header and three rows
    assert "<td>NEW</td>" in page
    assert "<td>50001</td>" in page
    text = repr(orders)
    assert text.count("\n") == 4
    assert text.startswith("Results([")
    assert isinstance(client.balances(), Results)
    assert "<th>free</th>" in client.balances()._repr_html_()


def test_fills_render_and_frame(sim: Simulator, client: Client) -> None:
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="99999"),
        idempotency_key="tables-fill",
    )
    fills = client.fills("BTCUSDT", client_order_id=order.client_order_id)
    assert isinstance(fills, Results)
    assert len(fills) >= 1
    assert "<th>commission</th>" in fills._repr_html_()
    frame = fills.to_pandas()
    assert frame["quantity"].map(type).eq(Decimal).all()
    assert sum(frame["quantity"], Decimal(0)) == order.filled_quantity


def test_html_escapes_text() -> None:
    rows = Results([{"symbol": "<script>alert(1)</script>", "n": 1}])
    page = rows._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_to_pandas_keeps_decimals_exact_unless_floats(client: Client) -> None:
    _placed(client, 2)
    orders = client.open_orders("BTCUSDT")
    frame = orders.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 2
    assert frame["price"].dtype == object
    assert set(frame["price"]) == {Decimal("50000"), Decimal("50001")}
    assert frame["quantity"].map(type).eq(Decimal).all()
    assert set(frame["status"]) == {"NEW"}  # enums as their values, not enum objects
    assert frame["fills"].iloc[0] == "0 items"
    floats = orders.to_pandas(floats=True)
    assert floats["price"].dtype == "float64"
    assert sorted(floats["price"]) == [50000.0, 50001.0]


def test_single_record_and_plain_list_helpers(client: Client) -> None:
    order = _placed(client, 1)[0]
    assert list(order.to_pandas()["client_order_id"]) == [order.client_order_id]
    assert "<table>" in order._repr_html_()
    assert len(to_pandas([order, order])) == 2


def test_to_pandas_refuses_what_is_not_a_result() -> None:
    with pytest.raises(InvalidRequest, match="not a result row"):
        to_pandas([object()])
    with pytest.raises(InvalidRequest, match="floats must be True or False"):
        Results([]).to_pandas(floats="yes")  # type: ignore[arg-type]


def test_empty_results() -> None:
    assert repr(Results()) == "Results([])"
    assert "no results" in Results()._repr_html_()
    assert len(Results().to_pandas()) == 0


def test_long_lists_are_counted_not_dropped() -> None:
    rows = Results([{"n": i} for i in range(120)])
    assert "... 70 more rows" in rows._repr_html_()
    assert rows._repr_html_().count("<tr>") == 51


def test_a_key_check_renders_as_a_table(sim: Simulator) -> None:
    key = sim.create_key(can_withdraw=True)
    with Client(
        key, transport=sim.transport(), journal=":memory:", unsafe_allow_withdraw_scope=True
    ) as client:
        page = client.check_key()._repr_html_()
    assert "<tr><th>venue says</th><td>cancel, read, trade, withdraw</td></tr>" in page
    assert "<tr><th>verdict</th><td>over-permissioned</td></tr>" in page
    assert key.secret.expose().decode() not in page


def test_numeric_enums_format_as_numbers() -> None:
    from securetrade import Priority

    assert f"{Priority.ORDER}" == str(Priority.ORDER.value)
    assert f"{Priority.ORDER:>3d}" == f"{Priority.ORDER.value:>3d}"


def test_instruments_are_a_dict_that_renders_as_one_table(client: Client) -> None:
    rules = client.instruments()
    assert isinstance(rules, dict)
    assert rules["BTCUSDT"].symbol == "BTCUSDT"
    page = rules._repr_html_()
    assert f"<caption>Instrument ({len(rules)})</caption>" in page
    assert "<td>BTCUSDT</td>" in page
    frame = rules.to_pandas()
    assert set(frame["symbol"]) == set(rules)
    assert frame["tick_size"].map(type).eq(Decimal).all()
    assert repr(rules).startswith(f"KeyedResults({len(rules)} items: ")
    rules.pop("BTCUSDT")  # a copy: the client's cache keeps its rules
    assert "BTCUSDT" in client.instruments()
