"""Keys and scopes: least privilege enforced locally, before any I/O.

``ApiKey`` and ``Secret`` hold a credential; ``KeyRing`` rotates it; ``KeyStore`` keeps it
encrypted at rest; ``key_from_env`` reads it from per-environment variables; ``assess``
compares it with what the venue really allows.
"""

from typing import TYPE_CHECKING

from .apikey import ApiKey, Environment, KeyKind, Scope
from .check import KeyCheck, KeyPermissions, assess
from .ring import DEFAULT_OVERLAP, KeyRing
from .secret import MASK, Secret

if TYPE_CHECKING:
    from .keystore import KdfParams, KeyStore, default_keystore_path
    from .providers import env_names, key_from_env
else:  # loaded on first use (securetrade._lazy): an order needs neither
    from .._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "KdfParams": ".keystore",
            "KeyStore": ".keystore",
            "default_keystore_path": ".keystore",
            "env_names": ".providers",
            "key_from_env": ".providers",
        },
    )

__all__ = [
    "DEFAULT_OVERLAP",
    "MASK",
    "ApiKey",
    "Environment",
    "KeyCheck",
    "KeyKind",
    "KeyPermissions",
    "KeyRing",
    "KeyStore",
    "KdfParams",
    "Scope",
    "Secret",
    "assess",
    "default_keystore_path",
    "env_names",
    "key_from_env",
]
