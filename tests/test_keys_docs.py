"""Every Python snippet in docs/keys.md runs as written (offline, against the simulator)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "keys.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_page_has_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(SNIPPETS[index], f"docs/keys.md[{index}]", "exec")
    exec(code, {"__name__": f"docs_keys_{index}"})
