"""Nonces shared by every process on one host: a small file per key under an ``flock``."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import _fork
from .._checks import path, safe_repr
from ..errors import InvalidRequest
from .base import Resolution, check_floor, following, stream_name

__all__ = ["FileNonceSource"]

_WIDTH = 8  # the high-water mark, unsigned big-endian


class FileNonceSource:
    """Strictly increasing nonces across threads and processes that share ``directory``.

    Each key's high-water mark lives in its own 8-byte file. A draw takes an exclusive
    ``flock`` on it, reads the mark, writes the next nonce and releases the lock, so a
    process that restarts (or a second one) continues above every nonce already issued.
    The write reaches the page cache before the lock is released; that survives a killed
    process. ``durable=True`` also ``fdatasync``s each draw, for power loss; without it the
    wall-clock floor of the next nonce is what protects a rebooted host.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        resolution: Resolution = Resolution.MILLISECONDS,
        *,
        durable: bool = False,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.resolution = resolution
        self._directory = Path(path("directory", directory))
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidRequest(
                f"nonce directory {self._directory}: {exc.strerror}; pass a writable directory"
            ) from None
        self._durable = durable
        self._time_ns = time_ns
        # flock excludes other open file descriptions, not threads sharing one: a thread
        # lock is needed as well. Descriptors are reopened after a fork, since a child
        # sharing its parent's description would share its lock too.
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        _fork.watch(self)

    def _after_fork(self) -> None:
        """In a forked child (see :mod:`securetrade._fork`): its own descriptors, opened at
        the next draw (the parent's share its flock), and a lock of its own (the parent's may
        be held by a thread that does not exist here). Closing the inherited descriptors
        here leaves the parent's open file descriptions, and their locks, as they are."""
        inherited, self._fds = self._fds, {}
        self._lock = threading.Lock()
        for fd in inherited.values():
            os.close(fd)

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            path = self._directory / f"{name}.nonce"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            self._fds[name] = fd
        return fd

    def _update(self, key_id: str, step: Callable[[int], int]) -> int:
        name = stream_name(key_id)
        with self._lock:
            fd = self._fd(name)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, _WIDTH, 0)
                if len(raw) not in (0, _WIDTH):
                    raise InvalidRequest(f"nonce file {name}.nonce is corrupt")
                current = int.from_bytes(raw, "big") if raw else 0
                value = step(current)
                if value != current:
                    os.pwrite(fd, value.to_bytes(_WIDTH, "big"), 0)
                    if self._durable:
                        os.fdatasync(fd)
                return value
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def next(self, key_id: str) -> int:
        now = self.resolution.now(self._time_ns)
        return self._update(key_id, lambda current: following(current, now))

    def advance_to(self, key_id: str, floor: int) -> None:
        floor = check_floor(floor)
        self._update(key_id, lambda current: max(current, floor))

    def close(self) -> None:
        """Close the open key files (they are reopened on the next draw)."""
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}

    def __enter__(self) -> FileNonceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @safe_repr
    def __repr__(self) -> str:
        return f"FileNonceSource({str(self._directory)!r}, {self.resolution.name.lower()})"
