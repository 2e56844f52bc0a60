"""The example third-party adapter is found through its ``securetrade.venues`` entry point,
and imported only when its venue is asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_entry_point_found_and_loaded_lazily(example_adapter: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from securetrade.venues import available_venues, get_venue
        assert "acme" in available_venues(), available_venues()
        assert "acme_securetrade" not in sys.modules
        venue = get_venue("acme")
        assert "acme_securetrade" in sys.modules
        assert venue.name == "acme" and venue is get_venue("acme")
        assert venue.client_order_id("a", "k").startswith("ac")
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(example_adapter)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_not_installed_means_unknown() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from securetrade.venues import get_venue; get_venue('acme')"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        check=False,
    )
    assert result.returncode != 0
    assert "InvalidRequest: unknown venue 'acme'" in result.stderr
