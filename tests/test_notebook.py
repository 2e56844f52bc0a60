"""examples/notebook.ipynb runs in a real Jupyter kernel and shows what it promises: HTML
tables for orders and fills, a DataFrame, and the rate-limit chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebook.ipynb"


def _outputs(cell: Any, kind: str) -> list[str]:
    return [out["data"][kind] for out in cell.get("outputs", ()) if kind in out.get("data", {})]


def test_the_notebook_runs_and_renders(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    # Not saved: a last cell asks whether progress bars would show in this kernel.
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "from securetrade.progress import interactive\nprint(interactive())"
        )
    )
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
    by_source = {c.source.splitlines()[-1]: c for c in code}

    orders = _outputs(by_source['client.open_orders("BTCUSDT")'], "text/html")
    assert orders[0].startswith("<table><caption>Order (3)</caption>")
    assert orders[0].count("<td>NEW</td>") == 3
    status = "".join(o.get("text", "") for o in by_source['client.open_orders("BTCUSDT")'].outputs)
    assert status.strip() == "FILLED"  # print(order.status): the enum's value

    fills = _outputs(
        by_source['client.fills("BTCUSDT", client_order_id=bought.client_order_id)'], "text/html"
    )
    assert "<th>commission</th>" in fills[0]

    frame = _outputs(
        by_source['frame[["client_order_id", "side", "price", "quantity", "notional", "status"]]'],
        "text/html",
    )
    assert 'class="dataframe"' in frame[0]
    assert "notional" in frame[0]

    watched = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert watched.strip() == "True"  # a kernel counts as someone watching

    chart = _outputs(by_source["tight.limits.plot(minutes=0.5)"], "image/png")
    assert len(chart) == 1
    assert len(chart[0]) > 1000  # a base64 PNG, not an empty figure
