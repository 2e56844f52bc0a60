"""Keys and scopes: least privilege enforced locally, before any I/O.

``ApiKey`` and ``Secret`` hold a credential; ``KeyRing`` rotates it; ``KeyStore`` keeps it
encrypted at rest; ``key_from_env`` reads it from per-environment variables; ``assess``
compares it with what the venue really allows.
"""

from .apikey import ApiKey, Environment, KeyKind, Scope
from .check import KeyCheck, KeyPermissions, assess
from .keystore import KdfParams, KeyStore, default_keystore_path
from .providers import env_names, key_from_env
from .ring import DEFAULT_OVERLAP, KeyRing
from .secret import MASK, Secret

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
