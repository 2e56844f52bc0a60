"""Lazy exports (PEP 562): a package names a thing at once but loads its module on first use.

Keeping what the first order does not need (keystore, audit trail, anomaly detectors, Redis
and file backends) out of ``import securetrade`` keeps start-up lean for bots, notebooks and
CLI calls. Each package that defers a module also imports it under ``TYPE_CHECKING``, so
mypy and IDEs see the real names, and defines ``__getattr__`` only outside type checking,
so a misspelt name is still a type error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    names: Mapping[str, str],
    *,
    on_load: Callable[[Any], None] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, loading ``names[name]`` when asked.

    ``names`` maps an exported name to the module that defines it, relative to ``package``
    (``{"KeyStore": ".keystore"}``). The value is stored in the package on first access, so
    later lookups are ordinary attribute reads. ``on_load`` sees each value once.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        if on_load is not None:
            on_load(value)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
