"""``Secret``: credential bytes that cannot be printed, logged, pickled or compared by timing."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

from .._masking import MASK
from ..errors import InvalidRequest

__all__ = ["MASK", "Secret"]


class Secret:
    """Holds secret bytes; every text form of it is :data:`MASK`.

    The value is reachable only through :meth:`expose`, which the signing layer calls once
    to build a signer. Pickling and ``copy`` are refused so a secret cannot be written out
    by accident; equality runs in constant time.
    """

    __slots__ = ("__value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes) or not value:
            raise InvalidRequest("a secret must be non-empty text or bytes")
        self.__value = value

    def expose(self) -> bytes:
        """Return the raw bytes. Only signers call this; never log what it returns."""
        return self.__value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.__value, other.__value)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.__value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; store keys with the encrypted keystore")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self.__reduce__()

    def __copy__(self) -> NoReturn:
        raise TypeError("a Secret cannot be copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("a Secret cannot be copied")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be serialised")
