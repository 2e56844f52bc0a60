"""The order journal in Redis, for bots of one account on several hosts.

The same rules as the SQLite journal, made atomic by Lua scripts on the server: an intent is
created once (whoever creates it sends), and every send first bumps the intent's attempt
count with a compare-and-set, so two hosts can never both send one attempt. The fence
against a paused host is the venue's deadline: an attempt is signed with the timestamp
its deadline was computed from, and a host that takes over waits for that deadline (plus
the settle margin) and asks the venue before it sends again, so a late send from the paused
host is refused by the venue as expired.

Durability is the server's: run Redis with ``appendonly yes`` and ``appendfsync always``
(checked at start, with a warning when the server says otherwise or will not say).

**A server that loses data** (``FLUSHALL``, a restart without AOF, a failover to a replica
that had not caught up) may lose a claim between its commit and the send. The journal
writes a marker key when it opens; when a claim or an attempt finds the marker gone, the
loss is noted, and for ``loss_horizon`` seconds every new claim is made UNKNOWN rather than
PENDING: the core then asks the venue first and sends only once the venue has no such order
after ``loss_window_ms`` (the longest time an attempt recorded before the loss could still
execute). A failover that keeps the marker but drops recent writes cannot be seen; see
docs/idempotency.md for what then protects an order and what does not.

**Retention** is Redis's own expiry: a finished intent (see
:data:`~securetrade.core.journal.PURGEABLE`) expires ``retention`` seconds after its last
change, and its tombstone ``tombstone_ttl`` seconds later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..models import Fill
from .journal import (
    PURGEABLE,
    RETENTION_S,
    TOMBSTONE_S,
    UNFINISHED,
    Intent,
    IntentState,
    _expired,
    _wire,
    owner_is_gone,
    process_token,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisJournal"]

log = logging.getLogger("securetrade")

_SETTLED = ("ACKED", "FILLED", "CANCELED", "EXPIRED", "REJECTED")

# Shared by the scripts that find an intent missing. KEYS[m]: the marker written when the
# journal was opened; KEYS[s]: the "loss noted" key. A missing marker means the server lost
# data: note it (the venue-time bound after which the lost attempts cannot execute) for
# the horizon, and put the marker back.
_NOTE_LOSS = """
local function note_loss(marker, suspect, now_ms, window_ms, horizon_ms)
  if redis.call('EXISTS', marker) == 1 then return end
  redis.call('SET', marker, now_ms)
  redis.call('SET', suspect, now_ms + window_ms, 'PX', horizon_ms)
end
"""

# KEYS: intent hash, unfinished set of the account, set of accounts, tombstone, marker,
# suspect. ARGV: idempotency key, client order id, account, symbol, fingerprint, owner,
# now, now_ms, loss window ms, loss horizon ms.
# Returns 0 (exists), 1 (created), 2 (created UNKNOWN after a loss), -1 (tombstone).
_BEGIN = (
    _NOTE_LOSS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
note_loss(KEYS[5], KEYS[6], tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]))
local state, deadline, created = 'PENDING', 0, 1
local suspect = redis.call('GET', KEYS[6])
if suspect then state, deadline, created = 'UNKNOWN', suspect, 2 end
redis.call('HSET', KEYS[1], 'idempotency_key', ARGV[1], 'client_order_id', ARGV[2],
  'account', ARGV[3], 'symbol', ARGV[4], 'fingerprint', ARGV[5], 'state', state,
  'attempts', 0, 'deadline_ms', deadline, 'owner', ARGV[6], 'created_at', ARGV[7],
  'updated_at', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return created
"""
)

# KEYS: intent hash, unfinished set, tombstone, marker, suspect.
# ARGV: attempts seen, deadline, owner, now, cid, now_ms, loss window ms, loss horizon ms.
_SENDING = (
    _NOTE_LOSS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  note_loss(KEYS[4], KEYS[5], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
  return 0
end
local seen = redis.call('HMGET', KEYS[1], 'attempts', 'state')
if not seen[1] or tonumber(seen[1]) ~= tonumber(ARGV[1]) then return 0 end
local state = seen[2]
if state == 'ACKED' or state == 'FILLED' or state == 'CANCELED' or state == 'EXPIRED'
  or state == 'REJECTED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'SENDING', 'attempts', tonumber(ARGV[1]) + 1,
  'deadline_ms', ARGV[2], 'owner', ARGV[3], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'error')
redis.call('PERSIST', KEYS[1])
redis.call('DEL', KEYS[3])
redis.call('SADD', KEYS[2], ARGV[5])
return 1
"""
)

# KEYS: fills hash. ARGV: trade id, fill, trade id, fill, ... Returns how many were new.
_FILLS = """
local added = 0
for i = 1, #ARGV, 2 do added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return added
"""

# KEYS: lease key. ARGV: owner, milliseconds.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisJournal:
    """The journal in Redis (``redis`` extra). ``prefix`` separates several bots' journals
    on one server; every host of one bot must use the same one."""

    blocking = True  # every call is a round trip: the async client makes it off its loop

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "securetrade:journal:",
        retention: float = RETENTION_S,
        tombstone_ttl: float = TOMBSTONE_S,
        loss_window_ms: int = 70_000,
        loss_horizon: float = 86_400.0,
    ) -> None:
        """``retention``/``tombstone_ttl`` as for :class:`~securetrade.core.Journal`.
        ``loss_window_ms`` bounds how long after a data loss an attempt recorded before it
        may still execute (default: the longest venue window, 60 s, plus the default
        settle margin); ``loss_horizon`` is how long, in seconds, new claims then ask the
        venue before they send.

        Raises :class:`~securetrade.errors.InvalidRequest` for arguments it cannot use and
        :class:`~securetrade.errors.JournalError` when the server cannot be reached; a client
        opens its journal before sending, so nothing was sent."""
        import redis as redis_module

        from ..errors import InvalidRequest, JournalError

        for name, value, zero_ok in (
            ("retention", retention, False),
            ("tombstone_ttl", tombstone_ttl, False),
            ("loss_horizon", loss_horizon, False),
            ("loss_window_ms", loss_window_ms, True),
        ):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and (value >= 0 if zero_ok else value > 0) and value < float("inf")):
                least = "0 or more" if zero_ok else "above 0"
                raise InvalidRequest(f"RedisJournal: {name} must be a finite number, {least}")
        if not isinstance(prefix, str) or not prefix:
            raise InvalidRequest("RedisJournal: prefix must be a non-empty str")
        if client is None:
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    "RedisJournal needs a Redis URL (redis://host:port/db, rediss:// for TLS) "
                    "or client=redis.Redis(...)"
                )
            try:
                client = redis_module.Redis.from_url(url)
            except ValueError as exc:  # the message names the schemes, never the password
                raise InvalidRequest(f"RedisJournal: unusable Redis URL: {exc}") from None
        self._redis = client
        self._prefix = prefix
        self.retention = retention
        self.tombstone_ttl = tombstone_ttl
        self._loss_args = [loss_window_ms, max(1, int(loss_horizon * 1000))]
        self._marker = f"{prefix}marker"
        self._suspect = f"{prefix}loss"
        self.path = f"redis:{prefix}"
        try:
            self._begin = client.register_script(_BEGIN)
            self._sending = client.register_script(_SENDING)
            self._lease = client.register_script(_LEASE)
            self._release = client.register_script(_RELEASE)
            self._add_fills = client.register_script(_FILLS)
            self._warn_unless_durable()
            client.set(self._marker, int(time.time() * 1000), nx=True)
        except redis_module.RedisError as exc:
            raise JournalError(
                f"RedisJournal: the Redis server cannot be used ({type(exc).__name__}: "
                f"{str(exc)[:200]}); check that it runs and that the URL, password and TLS "
                "settings are right. Nothing was sent."
            ) from exc

    def _warn_unless_durable(self) -> None:
        import redis as redis_module

        try:
            config = self._redis.config_get("append*")
        except redis_module.ResponseError:  # CONFIG is often disabled on managed servers
            log.warning("Redis journal: cannot read the server's AOF settings; make sure it "
                        "runs with appendonly yes and appendfsync always")  # fmt: skip
            return
        values = {_text(k): _text(v) for k, v in config.items()}
        if values.get("appendonly") != "yes" or values.get("appendfsync") != "always":
            log.warning(
                "Redis journal: the server runs with appendonly=%s appendfsync=%s; an intent "
                "acknowledged before a crash of the server may be lost (use yes/always)",
                values.get("appendonly"),
                values.get("appendfsync"),
            )

    # --- keys ------------------------------------------------------------------------------

    def _intent_key(self, cid: str) -> str:
        return f"{self._prefix}intent:{cid}"

    def _unfinished_key(self, account: str) -> str:
        return f"{self._prefix}unfinished:{account}"

    def _tombstone_key(self, cid: str) -> str:
        return f"{self._prefix}tombstone:{cid}"

    def _fills_key(self, cid: str) -> str:
        return f"{self._prefix}fills:{cid}"

    # --- the journal -----------------------------------------------------------------------

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        account: str,
        symbol: str,
        fingerprint: str,
    ) -> tuple[Intent, bool]:
        """Record the intent as PENDING, once; see :meth:`Journal.begin`.

        After a noted data loss the new intent is UNKNOWN instead, with the loss's venue
        bound as its deadline, and ``created`` is False: the caller then resolves it with
        the venue before any send, as for an intent somebody else may have sent.
        """
        now = time.time()
        created = self._begin(
            keys=[
                self._intent_key(client_order_id),
                self._unfinished_key(account),
                f"{self._prefix}accounts",
                self._tombstone_key(client_order_id),
                self._marker,
                self._suspect,
            ],
            args=[
                idempotency_key,
                client_order_id,
                account,
                symbol,
                fingerprint,
                process_token(),
                repr(now),
                int(now * 1000),
                *self._loss_args,
            ],
        )
        if created == -1:
            left = self._redis.pttl(self._tombstone_key(client_order_id))
            raise _expired(client_order_id, now + max(0, int(left)) / 1000)
        intent = self.get(client_order_id)
        if intent is None:  # purged or lost between the script and this read
            raise _expired(client_order_id, now)
        return intent, created == 1

    def get(self, client_order_id: str) -> Intent | None:
        return _intent(self._redis.hgetall(self._intent_key(client_order_id)))

    def sending(self, client_order_id: str, attempts: int, deadline_ms: int) -> bool:
        """Compare-and-set the attempt count; see :meth:`Journal.sending`."""
        intent_key = self._intent_key(client_order_id)
        account = self._redis.hget(intent_key, "account")
        now = time.time()
        return bool(
            self._sending(
                keys=[
                    intent_key,
                    self._unfinished_key("" if account is None else _text(account)),
                    self._tombstone_key(client_order_id),
                    self._marker,
                    self._suspect,
                ],
                args=[
                    attempts,
                    deadline_ms,
                    process_token(),
                    repr(now),
                    client_order_id,
                    int(now * 1000),
                    *self._loss_args,
                ],
            )
        )

    def sending_many(self, attempts: list[tuple[str, int, int]]) -> list[bool]:
        """Each claim is its own atomic script; the server's AOF makes them durable."""
        return [self.sending(cid, seen, deadline) for cid, seen, deadline in attempts]

    def settle(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        order_json: str | None = None,
        error: str | None = None,
        fills: Sequence[Fill] = (),
    ) -> None:
        intent_key = self._intent_key(client_order_id)
        account = self._redis.hget(intent_key, "account")
        if account is None:
            return
        fields: dict[str, str] = {"state": state.value, "updated_at": repr(time.time())}
        if order_json is not None:
            fields["order_json"] = order_json
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(intent_key, mapping=fields)  # type: ignore[arg-type]
        if error is None:
            pipe.hdel(intent_key, "error")
        else:
            pipe.hset(intent_key, "error", error)
        unfinished = self._unfinished_key(_text(account))
        if state in UNFINISHED:
            pipe.sadd(unfinished, client_order_id)
        else:
            pipe.srem(unfinished, client_order_id)
        if fills:
            self._queue_fills(pipe, client_order_id, fills)
        tombstone = self._tombstone_key(client_order_id)
        fills_key = self._fills_key(client_order_id)
        if state in PURGEABLE:  # kept for the retention period, then a tombstone
            keep = max(1, int(self.retention * 1000))
            pipe.pexpire(intent_key, keep)
            pipe.pexpire(fills_key, keep)
            pipe.set(tombstone, "1", px=keep + max(1, int(self.tombstone_ttl * 1000)))
        else:
            pipe.persist(intent_key)
            pipe.persist(fills_key)
            pipe.delete(tombstone)
        pipe.execute()

    def record_fills(self, client_order_id: str, fills: Iterable[Fill]) -> int:
        """Record executions, once per trade id; see :meth:`Journal.record_fills`."""
        pipe = self._redis.pipeline(transaction=False)
        self._queue_fills(pipe, client_order_id, fills)
        results = pipe.execute()
        return int(results[0]) if results else 0

    def _queue_fills(self, pipe: Any, client_order_id: str, fills: Iterable[Fill]) -> None:
        args: list[str] = []
        for fill in fills:
            if fill.trade_id is None:
                continue
            args += [fill.trade_id, json.dumps(_fill_row(fill), separators=(",", ":"))]
        if args:
            self._add_fills(keys=[self._fills_key(client_order_id)], args=args, client=pipe)

    def fills(self, client_order_id: str) -> list[Fill]:
        """The order's recorded fills, in trade id order."""
        raw = self._redis.hgetall(self._fills_key(client_order_id))
        rows = sorted(((_text(k), _text(v)) for k, v in raw.items()), key=_trade_order)
        return [Fill(trade_id=t, **json.loads(v)) for t, v in rows]

    def purge(self) -> int:
        """Retention is Redis's key expiry here (set when an intent settles): nothing to do."""
        return 0

    def tombstone(self, client_order_id: str) -> float | None:
        """Until when (epoch seconds) a purged intent's key is refused; None: no tombstone.
        While the intent itself is kept, its tombstone is only scheduled: None."""
        if self._redis.exists(self._intent_key(client_order_id)):
            return None
        left = int(self._redis.pttl(self._tombstone_key(client_order_id)))
        return None if left < 0 else time.time() + left / 1000

    def _of_account(self, account: str) -> list[Intent]:
        cids = sorted(_text(c) for c in self._redis.smembers(self._unfinished_key(account)))
        pipe = self._redis.pipeline(transaction=False)
        for cid in cids:
            pipe.hgetall(self._intent_key(cid))
        intents = [i for i in (_intent(raw) for raw in pipe.execute()) if i is not None]
        return sorted(intents, key=lambda i: i.created_at)

    def unfinished(self, account: str) -> list[Intent]:
        return [i for i in self._of_account(account) if i.state in UNFINISHED]

    def unresolved(self, account: str | None = None) -> list[Intent]:
        if account is None:
            accounts = sorted(_text(a) for a in self._redis.smembers(f"{self._prefix}accounts"))
        else:
            accounts = [account]
        wanted = (IntentState.SENDING, IntentState.UNKNOWN)
        return [i for a in accounts for i in self._of_account(a) if i.state in wanted]

    def known(self, client_order_ids: list[str]) -> set[str]:
        pipe = self._redis.pipeline(transaction=False)
        for cid in client_order_ids:
            pipe.exists(self._intent_key(cid))
        return {cid for cid, hit in zip(client_order_ids, pipe.execute(), strict=True) if hit}

    def lease(self, account: str, seconds: float) -> bool:
        """The account's reconciliation lease; see :meth:`Journal.lease`."""
        key = f"{self._prefix}lease:{account}"
        if self._lease(keys=[key], args=[process_token(), max(1, int(seconds * 1000))]):
            return True
        holder = self._redis.get(key)
        if holder is not None and owner_is_gone(_text(holder)):
            self._redis.delete(key)  # its holder died on this host: no need to wait it out
            return bool(self._lease(keys=[key], args=[process_token(), int(seconds * 1000)]))
        return False

    def release(self, account: str) -> None:
        self._release(keys=[f"{self._prefix}lease:{account}"], args=[process_token()])

    def close(self) -> None:
        self._redis.close()

    def __repr__(self) -> str:
        return f"RedisJournal(prefix={self._prefix!r})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fill_row(fill: Fill) -> dict[str, str | None]:
    return {
        "price": _wire(fill.price),
        "quantity": _wire(fill.quantity),
        "commission": _wire(fill.commission),
        "commission_asset": fill.commission_asset,
    }


def _trade_order(row: tuple[str, str]) -> tuple[int, str]:
    return (len(row[0]), row[0])  # numeric trade ids in numeric order


def _intent(raw: dict[Any, Any]) -> Intent | None:
    if not raw:
        return None
    row = {_text(k): _text(v) for k, v in raw.items()}
    return Intent(
        idempotency_key=row["idempotency_key"],
        client_order_id=row["client_order_id"],
        account=row["account"],
        symbol=row["symbol"],
        fingerprint=row["fingerprint"],
        state=IntentState(row["state"]),
        attempts=int(row["attempts"]),
        deadline_ms=int(row["deadline_ms"]),
        owner=row["owner"],
        order_json=row.get("order_json"),
        error=row.get("error"),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
