"""The file under the SQLite order journal: opened in WAL mode, its schema created or
migrated, and a path that cannot hold a journal refused with what to change.

The lowest of the journal's three layers (:mod:`.journal_file`, :mod:`.journal_durability`,
:mod:`.journal`): it knows tables and pragmas, not intents or flushes. Kept apart because
none of it runs on the order path, and an opening failure is read here, in one place.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from .._sqlite import busy
from ..errors import JournalError
from .states import UNFINISHED

__all__: list[str] = []  # internal: the layer under Journal (securetrade.core.journal)

# The intents a reconciler looks for (PENDING, SENDING, UNKNOWN), as the condition of the
# partial index on them. A query uses that index only if its WHERE names this same text.
# Comparisons, not "state IN (...)": every write of a row evaluates this, and SQLite
# builds a temporary b-tree for an IN list of more than two values each time.
UNFINISHED_SQL = "(" + " OR ".join(f"state = '{s.value}'" for s in UNFINISHED) + ")"

# One row per venue trade: the unique key is what makes a fill reported twice one fill.
# Version 4 puts the intent's created_at first in that key (0 for an order the journal
# holds no intent of): the fills a commit writes go to the right-hand end of the index,
# one page for the group, where a key led by the client order id (a hash) put each order's
# fills on a page of its own. ``id`` keeps the order the fills were recorded in. The
# default 0 is for a process still running version 3 code on an upgraded file: its
# inserts name no intent_at, and land where fills of no intent go (found, kept once).
_FILLS = """CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY,
    intent_at REAL NOT NULL DEFAULT 0,
    client_order_id TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    commission TEXT NOT NULL,
    commission_asset TEXT,
    UNIQUE (intent_at, client_order_id, trade_id)
)"""

# A version 3 file's fills, moved to the version 4 table (same ids: same order).
_FILLS_V3_TO_V4 = (
    "DROP TRIGGER IF EXISTS fills_of_answer",  # an early version 3 file's, on the old table
    "ALTER TABLE fills RENAME TO fills_v3",
    _FILLS,
    """INSERT INTO fills (id, intent_at, client_order_id, trade_id, price, quantity,
    commission, commission_asset)
    SELECT f.rowid, COALESCE(i.created_at, 0), f.client_order_id, f.trade_id, f.price,
    f.quantity, f.commission, f.commission_asset
    FROM fills_v3 AS f LEFT JOIN intents AS i ON i.client_order_id = f.client_order_id
    ORDER BY f.rowid""",
    "DROP TABLE fills_v3",
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deadline_ms INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    order_json TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)""",
    # Only the intents in flight (version 4): a settled intent leaves this index instead
    # of moving to its state's part of it, one index page less for every commit.
    "DROP INDEX IF EXISTS intents_state",
    "CREATE INDEX IF NOT EXISTS intents_unfinished ON intents(account, state) "
    f"WHERE {UNFINISHED_SQL}",
    """CREATE TABLE IF NOT EXISTS leases (
    account TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
)""",
    _FILLS,
    # Earlier version 3 files recorded an answer's fills with a trigger that parsed the
    # answer's JSON; settle() now takes the fills themselves, in the same transaction.
    "DROP TRIGGER IF EXISTS fills_of_answer",
    """CREATE TABLE IF NOT EXISTS tombstones (
    client_order_id TEXT PRIMARY KEY,
    purged_at REAL NOT NULL,
    expires_at REAL NOT NULL
)""",
)

_VERSION = 4
# Upgraded in place: version 3 added tables to version 2; version 4 re-keyed the fills
# and narrowed the state index to the intents in flight.
_READABLE = (2, 3, 4)

# How long a statement waits for another process's write lock before it fails.
_BUSY_MS = 30_000

# With a durable journal the log, once checkpointed, is kept at most this long on disk.
_WAL_LIMIT_BYTES = 16 * 1024 * 1024

_JOURNAL_TABLES = frozenset({"intents", "leases", "fills", "tombstones"})


def _unusable(path: str, exc: BaseException) -> JournalError:
    """The error for a path that cannot hold a journal: what is wrong, and what to do.

    SQLite's own words ("unable to open database file") name neither the cause nor the fix;
    the path is looked at again to tell which case it is.
    """
    where = Path(path)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    elsewhere = "or pass journal= a path in a directory this process can write"
    if where.is_dir():
        reason = "it is a directory"
        fix = f"pass journal= a file inside it, such as {where / 'journal.sqlite3'}"
    elif isinstance(exc, OSError):  # creating the parent directory failed
        blocker = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a directory"
            fix = f"move that file, {elsewhere}"
        else:
            reason = f"its directory {where.parent} cannot be created ({exc.strerror or exc})"
            fix = f"create it, writable by this process, {elsewhere}"
    elif name == "SQLITE_NOTADB" or "not a database" in text:
        reason = "it is not an SQLite database (some other file is in the way)"
        fix = f"move that file, {elsewhere}"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text:
        reason = "it is read-only (SQLite writes it, and its -wal and -shm files beside it)"
        fix = f"make the file and its directory writable by this process, {elsewhere}"
    elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        reason = f"it cannot be opened or created in {where.parent}"
        fix = f"make that directory writable by this process, {elsewhere}"
    elif name.startswith("SQLITE_BUSY") or "locked" in text:
        reason = "another connection kept it locked for 30 s"
        fix = "retry once that process is done, or give each process its own journal"
    elif name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        reason = "it is damaged"
        fix = "keep it for inspection, and pass journal= a new path"
    else:
        reason = f"it cannot be used ({type(exc).__name__}: {text})"
        fix = elsewhere
    error = JournalError(f"journal {path}: {reason}; {fix}. Nothing was sent.")
    error.__cause__ = exc
    return error


class _JournalFile:
    """The SQLite connection and its settings, prepared for the layers above to write
    through."""

    # Set by Journal.__init__ (securetrade.core.journal), which opens the file.
    path: str
    _db: sqlite3.Connection
    _synchronous: str  # FULL, EXTRA or NORMAL: what a commit before a send waits for

    def _prepare(self) -> None:
        """WAL mode, our settings and the schema. Processes opening a new file at once can
        meet SQLite's deadlock guard, which answers "locked" at once instead of waiting:
        tried again, with jitter, for as long as a busy wait would have lasted."""
        deadline = time.monotonic() + _BUSY_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                if self.needs_flush:  # our flushes checkpoint, off the committing thread
                    self._db.execute("PRAGMA wal_autocheckpoint=0")
                    self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._migrate()
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not busy(exc) or time.monotonic() > deadline:
                    raise
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                time.sleep(random.uniform(0.002, 0.02))  # noqa: S311  # nosec B311 - jitter

    def _migrate(self) -> None:
        """Create or upgrade the schema; refuse a file that is not one of our journals
        (another program's database would otherwise gain our tables silently)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        foreign = sorted(tables - _JOURNAL_TABLES)
        if "intents" not in tables and (tables or version != 0):
            raise JournalError(
                f"journal {self.path}: it is another program's SQLite database (tables: "
                f"{', '.join(foreign) or 'none'}; user_version {version}), not an order "
                "journal; pass journal= a path of its own (a new file is made there). "
                "Nothing was sent."
            )
        if version not in (0, *_READABLE):
            raise JournalError(
                f"journal {self.path}: it is a journal of schema {version}, and this version "
                f"reads {_VERSION}; open it with the securetrade that wrote it. Nothing was sent."
            )
        if version == 0 and tables:  # intents, but no version: a pre-release file
            raise JournalError(
                f"journal {self.path}: it was written by a pre-release securetrade; resolve its "
                "intents with that version, then start a new journal. Nothing was sent."
            )
        if version != _VERSION:
            self._db.execute(f"PRAGMA user_version={_VERSION}")
        if "fills" in tables and "intent_at" not in {
            row[1] for row in self._db.execute("PRAGMA table_info(fills)")
        }:  # a version 3 file's fills table
            for statement in _FILLS_V3_TO_V4:
                self._db.execute(statement)
        for statement in _SCHEMA:  # IF NOT EXISTS: adds what a file lacks
            self._db.execute(statement)

    @property
    def needs_flush(self) -> bool:
        """Whether a commit waits for the disk at all (not in memory, not NORMAL)."""
        return self.path != ":memory:" and self._synchronous != "NORMAL"
