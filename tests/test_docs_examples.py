"""Every Python block in README.md and docs/ runs, against the simulator and real servers.

A page's blocks run in order in one namespace (like a notebook), each with the page's
line numbers in tracebacks. ``>>>`` blocks are doctests, checked output and all. Hidden
``<!-- docs-test ... -->`` comments give a block what the page's prose provides (see
tests/docs_support.py). Blocks with top-level ``await`` run on the page's event loop.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import doctest
import inspect
import re
from pathlib import Path

import pytest

from docs_support import Support

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PIECES = re.compile(r"^```python\n(.*?)^```|^<!-- docs-test\n(.*?)^-->", re.MULTILINE | re.DOTALL)


def pieces(page: Path) -> list[tuple[str, str, int]]:
    """(kind, code, first line) of each block and hidden set-up, in page order."""
    text = page.read_text()
    found = []
    for match in PIECES.finditer(text):
        kind = "block" if match.group(1) is not None else "setup"
        code = match.group(1) if kind == "block" else match.group(2)
        start = match.start(1 if kind == "block" else 2)
        found.append((kind, code, text.count("\n", 0, start) + 1))
    return found


def _run(
    code: str, line: int, name: str, namespace: dict[str, object], loop: asyncio.AbstractEventLoop
) -> None:
    if code.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(code, namespace, name, name, line - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, clear_globs=False)
        assert runner.failures == 0, f"{name}:{line}: a doctest failed (output above)"
        return
    padded = "\n" * (line - 1) + code
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    result = eval(compile(padded, name, "exec", flags=flags), namespace)
    if inspect.iscoroutine(result):
        loop.run_until_complete(result)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = pieces(page)
    blocks = [p for p in found if p[0] == "block"]
    ran = 0
    loop = asyncio.new_event_loop()
    try:
        with contextlib.ExitStack() as stack:
            namespace: dict[str, object] = {
                "__name__": f"docs_{page.stem}",
                "docs": Support(stack, tmp_path),
            }
            for kind, code, line in found:
                _run(code, line, str(page.relative_to(ROOT)), namespace, loop)
                ran += kind == "block"
            for value in list(namespace.values()):  # what the page opened and left open
                close = getattr(value, "close", None)
                if type(value).__name__ in ("Client", "Journal") and callable(close):
                    close()
    finally:
        loop.close()
    assert ran == len(blocks)


def test_the_runner_finds_every_block() -> None:
    counted = sum(p.read_text().count("```python\n") for p in PAGES)
    assert counted == sum(1 for page in PAGES for p in pieces(page) if p[0] == "block")
    assert counted >= 30
