"""Keys and scopes: least privilege enforced locally, before any I/O."""

from .apikey import ApiKey, Environment, KeyKind, Scope
from .secret import MASK, Secret

__all__ = ["MASK", "ApiKey", "Environment", "KeyKind", "Scope", "Secret"]
