"""The package's modules form layers: no import cycle, and every module imports on its own.

The graph is read from the source with ``ast``: every ``import`` of a securetrade module,
at the top of a file, inside a function (a late import) or under ``TYPE_CHECKING``, is an
edge, since each says that one module needs the other. A cycle fails the test and is named.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import securetrade

PACKAGE = Path(securetrade.__file__).resolve().parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name, with its file and whether it is a package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _targets(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The package modules one import statement needs (``from x import y`` names x.y when y
    is a module, else x)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    if target not in known:
        return set()
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(module, is_package, node, known)
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_late_import() -> None:
    """The check itself: the shape of the two cycles this test was written against."""
    graph = {
        "errors": {"transport.redaction"},  # late import inside a function
        "transport.redaction": {"keys.secret"},
        "keys.secret": {"errors"},
        "ratelimit.limiter": {"ratelimit.metrics"},
        "ratelimit.metrics": {"ratelimit.limiter"},  # under TYPE_CHECKING
        "leaf": set(),
    }
    assert cycles(graph) == [
        ["errors", "keys.secret", "transport.redaction"],
        ["ratelimit.limiter", "ratelimit.metrics"],
    ]


def test_the_graph_sees_late_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "securetrade.transport.redaction" in graph["securetrade.errors"]  # late import
    assert "securetrade.ratelimit.model" in graph["securetrade.ratelimit.metrics"]  # typing


_EACH_FIRST = textwrap.dedent(
    """
    import importlib, json, sys, traceback
    failures = {}
    for name in json.loads(sys.argv[1]):
        for loaded in [m for m in sys.modules if m.split(".")[0] == "securetrade"]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception as exc:
            failures[name] = traceback.format_exception_only(exc)[-1].strip()
    print(json.dumps(failures))
    """
)


@pytest.mark.parametrize("part", range(4))
def test_every_module_imports_first_in_a_fresh_interpreter(part: int) -> None:
    """Each module imported before any other of ours (the package's modules forgotten between
    two), as a program importing just that one would: an order-dependent cycle fails here.
    In four parts, each a quarter of the modules, so parallel workers can share them."""
    names = [m for m in _modules() if not m.endswith("__main__")][part::4]
    result = subprocess.run(
        [sys.executable, "-c", _EACH_FIRST, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {}
