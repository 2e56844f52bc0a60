"""Every public object has a docstring: what each package exports in ``__all__``, and the
public methods and properties of the public classes (the API reference is built from them)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import securetrade

# Modules that are programs, not API: the benchmark, the command line, the demos.
PROGRAMS = ("securetrade.bench", "securetrade.cli", "securetrade.demo", "securetrade.__main__")
# Names that come from Python, pydantic or the standard library, documented there.
INHERITED = {"model_config", "model_fields", "model_computed_fields"}


def public_modules() -> list[Any]:
    found = [securetrade]
    for info in pkgutil.walk_packages(securetrade.__path__, "securetrade."):
        name = info.name
        if name.startswith(PROGRAMS) or any(part.startswith("_") for part in name.split(".")):
            continue
        found.append(importlib.import_module(name))
    # The packages' exports are the API; a module's own __all__ serves its package.
    return [m for m in found if hasattr(m, "__all__") and hasattr(m, "__path__")]


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    for name, value in vars(cls).items():
        if name.startswith("_") or name in INHERITED:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property) or inspect.isfunction(value):
            yield name, value


def _generated(cls: type, doc: str) -> bool:
    """Python writes a docstring of its own for some classes (an Enum's, a dataclass's
    signature): that is not documentation."""
    return (
        doc.startswith((f"{cls.__name__}(", "An enumeration.")) or "Create a collection of" in doc
    )


def protocols() -> list[type]:
    """The exported Protocols (Venue, Transport, Signer, JournalStore...): an adapter's
    methods implement one, and are documented there once."""
    found = []
    for module in public_modules():
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and getattr(value, "_is_protocol", False):
                found.append(value)
    return found


def _implements(cls: type, protocol: type) -> bool:
    members = [name for name, _ in _own_members(protocol)]
    return bool(members) and all(hasattr(cls, name) for name in members)


def _documented(cls: type, member: str, contracts: list[type]) -> bool:
    # an override inherits the docstring of the method it overrides
    if (inspect.getdoc(getattr(cls, member)) or "").strip():
        return True
    return any(
        _implements(cls, protocol)
        and (inspect.getdoc(getattr(protocol, member, None)) or "").strip()
        for protocol in contracts
        if hasattr(protocol, member)
    )


def undocumented() -> list[str]:
    missing: set[str] = set()
    contracts = protocols()
    for module in public_modules():
        if not (module.__doc__ or "").strip():
            missing.add(module.__name__)
        for name in module.__all__:
            value = getattr(module, name)
            where = f"{module.__name__}.{name}"
            if (
                inspect.ismodule(value)
                or typing.get_origin(value) is not None  # a type alias, such as core.Flow
                or (not callable(value) and not inspect.isclass(value))
            ):
                continue  # constants and aliases are described where defined (#: comments)
            # a class's own docstring: not its base's (an Enum's, Exception's, BaseModel's)
            doc = vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__
            if not (doc or "").strip() or (inspect.isclass(value) and _generated(value, doc)):
                missing.add(where)
            if inspect.isclass(value):
                for member, _ in _own_members(value):
                    if not _documented(value, member, contracts):
                        missing.add(f"{value.__module__}.{value.__qualname__}.{member}")
    return sorted(missing)


def test_every_public_object_has_a_docstring() -> None:
    missing = undocumented()
    assert not missing, f"{len(missing)} public objects without a docstring:\n" + "\n".join(missing)


def test_the_check_sees_classes_functions_and_members() -> None:
    modules = {module.__name__ for module in public_modules()}
    assert {"securetrade", "securetrade.keys", "securetrade.copy", "securetrade.gateway"} <= modules
    members = dict(_own_members(securetrade.Order))
    assert {"average_price", "is_open"} <= set(members)
    assert "Side" in securetrade.__all__
    assert _generated(securetrade.Side, "An enumeration.")
    assert any(p.__name__ == "Venue" for p in protocols())


def test_every_public_package_has_a_reference_page() -> None:
    """The API reference renders each package's exports: none is left out of the site."""
    pages = Path(__file__).resolve().parents[1] / "docs" / "reference"
    rendered = {
        line[4:].strip()
        for page in pages.glob("*.md")
        for line in page.read_text().splitlines()
        if line.startswith("::: ")
    }
    missing = [m.__name__ for m in public_modules() if m.__name__ not in rendered]
    missing = [name for name in missing if name != "securetrade"]  # split across the pages
    assert not missing, f"packages without an API reference page: {missing}"


def test_sphinx_roles_become_reference_links_on_the_site() -> None:
    from tool_loader import load_tool

    roles = load_tool("mkdocs_roles")
    page = (
        "refused with :class:<code>~securetrade.errors.ScopeError</code>; see "
        ":meth:<code>Client.close</code> and :func:<code>to_decimal()</code>"
    )
    assert roles.on_page_content(page) == (
        'refused with <autoref optional identifier="securetrade.errors.ScopeError">'
        "<code>ScopeError</code></autoref>; see "
        '<autoref optional identifier="Client.close"><code>Client.close</code></autoref> and '
        '<autoref optional identifier="to_decimal"><code>to_decimal()</code></autoref>'
    )


def test_the_reference_check_names_what_the_site_lacks(tmp_path: Path) -> None:
    from tool_loader import load_tool

    check = load_tool("check_reference")
    public = {m.__name__ for m in public_modules()} - {"securetrade"}
    assert public <= set(check.PACKAGES)  # the tool checks every public package
    page = tmp_path / "reference" / "keys" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text('<h2 id="securetrade.keys.ApiKey">ApiKey</h2>')
    absent = check.missing(tmp_path)
    assert "securetrade.keys.ApiKey" not in absent
    assert "securetrade.keys.KeyRing" in absent
    assert check.main([str(tmp_path)]) == 1
    assert check.main([str(tmp_path / "nowhere")]) == 2
