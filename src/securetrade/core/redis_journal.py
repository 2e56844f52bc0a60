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
that had not caught up) may lose a claim between its commit and the send. A journal has a
marker key, written once when the journal is created (:meth:`RedisJournal.create`). Opening
a journal whose marker is missing is refused with :class:`~securetrade.errors.JournalError`:
the server cannot tell a new journal from a flushed one, so the caller must say which
(``create`` for a new one, ``after_loss=True`` for one that lost its data). When a claim or
an attempt finds the marker gone while running, or a journal is opened ``after_loss``, the
loss is noted, and for ``loss_horizon`` seconds every new claim is made UNKNOWN rather than
PENDING: the core then asks the venue first and sends only once the venue has no such order
after ``loss_window_ms`` (the longest time an attempt recorded before the loss could still
execute). A failover that keeps the marker but drops recent writes cannot be seen; see
docs/idempotency.md for what then protects an order and what does not.

**Redis Cluster**: every key of one journal carries the same hash tag (the prefix in braces),
so each script's keys are in one slot.

**Retention** is Redis's own expiry: a finished intent (see
:data:`~securetrade.core.journal.PURGEABLE`) expires ``retention`` seconds after its last
change, and its tombstone ``tombstone_ttl`` seconds later.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._checks import number
from .._redis import redis_client
from ..errors import InvalidRequest, JournalError
from ..models import Fill
from .states import GUARDED, PURGEABLE, SOURCES, UNFINISHED, Intent, IntentState, View
from .store import (
    MAX_PERIOD_S,
    RETENTION_S,
    TOMBSTONE_S,
    _expired,
    _wire,
    check_attempts,
    check_begin,
    check_fills,
    check_id,
    check_ids,
    check_lease_seconds,
    check_settle,
    owner_is_gone,
    process_token,
    retention_period,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisJournal"]

log = logging.getLogger("securetrade")


def _lua_set(states: Iterable[IntentState]) -> str:
    return "{" + ", ".join(f"{st.value}=true" for st in states) + "}"


# The transition table of .states, as Lua: SOURCES[target][current] says whether a write of
# target applies to a row now in current; GUARDED targets also compare (state, attempts).
_MACHINE = (
    "local SOURCES = {"
    + ", ".join(f"{target.value}={_lua_set(sources)}" for target, sources in SOURCES.items())
    + "}\n"
    + f"local GUARDED = {_lua_set(GUARDED)}\n"
    + f"local UNFINISHED = {_lua_set(UNFINISHED)}\n"
    + f"local PURGEABLE = {_lua_set(PURGEABLE)}\n"
)

# Shared by the scripts that find an intent missing. KEYS[m]: the marker written when the
# journal was created; KEYS[s]: the "loss noted" key. A missing marker means the server lost
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
# now, now_ms, loss window ms, loss horizon ms, and the deadline of attempt 1 when the
# claim is fused with it ('' for a plain PENDING claim).
# Returns 0 (exists), 1 (created), 2 (created UNKNOWN after a loss), -1 (tombstone).
_BEGIN = (
    _NOTE_LOSS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
note_loss(KEYS[5], KEYS[6], tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]))
local state, attempts, deadline, created = 'PENDING', 0, 0, 1
if ARGV[11] ~= '' then state, attempts, deadline = 'SENDING', 1, ARGV[11] end
local suspect = redis.call('GET', KEYS[6])
if suspect then state, attempts, deadline, created = 'UNKNOWN', 0, suspect, 2 end
redis.call('HSET', KEYS[1], 'idempotency_key', ARGV[1], 'client_order_id', ARGV[2],
  'account', ARGV[3], 'symbol', ARGV[4], 'fingerprint', ARGV[5], 'state', state,
  'attempts', attempts, 'deadline_ms', deadline, 'owner', ARGV[6], 'created_at', ARGV[7],
  'updated_at', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return created
"""
)

# The transition to SENDING (one more attempt), only from the row the writer read.
# KEYS: intent hash, tombstone, marker, suspect.
# ARGV: state seen, attempts seen, deadline, owner, now, cid, now_ms, loss window ms,
# loss horizon ms, unfinished-set key prefix.
_SENDING = (
    _MACHINE
    + _NOTE_LOSS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  note_loss(KEYS[3], KEYS[4], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
  return 0
end
local row = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'account')
if not SOURCES['SENDING'][row[1]] then return 0 end
if row[1] ~= ARGV[1] or tonumber(row[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'SENDING', 'attempts', tonumber(ARGV[2]) + 1,
  'deadline_ms', ARGV[3], 'owner', ARGV[4], 'updated_at', ARGV[5])
redis.call('HDEL', KEYS[1], 'error')
redis.call('PERSIST', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('SADD', ARGV[10] .. row[3], ARGV[6])
return 1
"""
)

# Any other transition (see .states), and the answer's fills, in one script.
# KEYS: intent hash, tombstone, fills hash. ARGV: target, state seen, attempts seen, now,
# has order json ('1'/'0'), order json, has error, error, cid, unfinished-set key prefix,
# retention ms, tombstone ms, then trade id, fill, trade id, fill, ...
# Returns 1 when applied, 0 when the row is not what the writer saw (or is gone).
_SETTLE = (
    _MACHINE
    + """
local target = ARGV[1]
local row = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'account')
if not row[1] or not SOURCES[target][row[1]] then return 0 end
if GUARDED[target] and (row[1] ~= ARGV[2] or tonumber(row[2]) ~= tonumber(ARGV[3])) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'order_json', ARGV[6]) end
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'error', ARGV[8])
else redis.call('HDEL', KEYS[1], 'error') end
local unfinished = ARGV[10] .. row[3]
if UNFINISHED[target] then redis.call('SADD', unfinished, ARGV[9])
else redis.call('SREM', unfinished, ARGV[9]) end
for i = 13, #ARGV, 2 do redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) end
if PURGEABLE[target] then
  local keep = tonumber(ARGV[11])
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
  redis.call('SET', KEYS[2], '1', 'PX', keep + tonumber(ARGV[12]))
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[3])
  redis.call('DEL', KEYS[2])
end
return 1
"""
)

# KEYS: fills hash. ARGV: trade id, fill, trade id, fill, ... Returns how many were new.
_FILLS = """
local added = 0
for i = 1, #ARGV, 2 do added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return added
"""

# KEYS: lease key. ARGV: owner, milliseconds, and (optionally) a holder known to be dead:
# the lease is taken if it is free, ours, or still held by exactly that dead holder.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisJournal:
    """The journal in Redis (``redis`` extra). ``prefix`` separates several bots' journals
    on one server; every host of one bot must use the same one.

    Create a journal once, when provisioning (:meth:`create`); every bot then opens it
    with the constructor, which refuses a journal whose marker is missing (see the module).
    """

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
        after_loss: bool = False,
        create: bool = False,
    ) -> None:
        """``retention``/``tombstone_ttl`` as for :class:`~securetrade.core.Journal`.
        ``loss_window_ms`` bounds how long after a data loss an attempt recorded before it
        may still execute (default: the longest venue window, 60 s, plus the default
        settle margin); ``loss_horizon`` is how long, in seconds, new claims then ask the
        venue before they send. ``after_loss=True`` opens a journal whose server lost its
        data (its marker is gone): the loss is noted as above. ``create=True`` is what
        :meth:`create` passes: use that instead.

        Raises :class:`~securetrade.errors.InvalidRequest` for arguments it cannot use and
        :class:`~securetrade.errors.JournalError` when the server cannot be reached; a client
        opens its journal before sending, so nothing was sent."""
        import redis as redis_module

        retention_period("RedisJournal: retention", retention)
        retention_period("RedisJournal: tombstone_ttl", tombstone_ttl)
        retention_period("RedisJournal: loss_horizon", loss_horizon)
        number("RedisJournal: loss_window_ms", loss_window_ms, least=0, most=MAX_PERIOD_S * 1000)
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise InvalidRequest(
                "RedisJournal: prefix must be a non-empty str without braces (it is a hash tag)"
            )
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
        self._redis = client = redis_client(client, what="RedisJournal")
        self._prefix = prefix
        self._tag = "{" + prefix + "}"  # one hash slot for the whole journal
        self.retention = retention
        self.tombstone_ttl = tombstone_ttl
        self._loss_args = [loss_window_ms, max(1, int(loss_horizon * 1000))]
        self._marker = f"{self._tag}marker"
        self._suspect = f"{self._tag}loss"
        self.path = f"redis:{prefix}"
        try:
            self._begin = client.register_script(_BEGIN)
            self._sending = client.register_script(_SENDING)
            self._settle = client.register_script(_SETTLE)
            self._lease = client.register_script(_LEASE)
            self._release = client.register_script(_RELEASE)
            self._add_fills = client.register_script(_FILLS)
            self._warn_unless_durable()
            self._open(create=create, after_loss=after_loss)
        except redis_module.RedisError as exc:
            raise JournalError(
                f"RedisJournal: the Redis server cannot be used ({type(exc).__name__}: "
                f"{str(exc)[:200]}); check that it runs and that the URL, password and TLS "
                "settings are right. Nothing was sent."
            ) from exc

    @classmethod
    def create(cls, url: str | None = None, **options: Any) -> RedisJournal:
        """Create the journal at ``prefix`` (or open it if it exists): its marker is written.

        Call this once, when the journal is provisioned, never at every start of a bot:
        a bot that creates the journal each time it starts would take a server that lost
        its data for a new, empty journal, and send again what was already sent.
        """
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "url", "create"}
        unknown = sorted(str(name) for name in options if name not in known)
        if unknown:
            raise InvalidRequest(
                f"RedisJournal.create: no option {unknown[0]!r}; the options are "
                f"{', '.join(sorted(known))}"
            )
        return cls(url, create=True, **options)

    def _open(self, *, create: bool, after_loss: bool) -> None:
        now_ms = int(time.time() * 1000)
        if self._redis.exists(self._marker):
            return
        if create and not after_loss:
            self._redis.set(self._marker, now_ms, nx=True)
            return
        if not after_loss:
            self._redis.close()
            raise JournalError(
                f"no Redis journal at prefix {self._prefix!r}: if it is new, create it once "
                "with RedisJournal.create(url, prefix=...); if it existed, the server lost "
                "its data: open it with after_loss=True, and every new order will ask the "
                "venue first until anything sent before the loss can no longer execute"
            )
        window_ms, horizon_ms = self._loss_args
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._suspect, now_ms + window_ms, px=horizon_ms)
        pipe.set(self._marker, now_ms)
        pipe.execute()
        log.warning(
            "Redis journal %r opened after a data loss: new claims ask the venue first",
            self._prefix,
        )

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
        return f"{self._tag}intent:{cid}"

    def _unfinished_key(self, account: str) -> str:
        return f"{self._tag}unfinished:{account}"

    def _tombstone_key(self, cid: str) -> str:
        return f"{self._tag}tombstone:{cid}"

    def _fills_key(self, cid: str) -> str:
        return f"{self._tag}fills:{cid}"

    # --- the journal -----------------------------------------------------------------------

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        account: str,
        symbol: str,
        fingerprint: str,
        *,
        sending_deadline_ms: int | None = None,
    ) -> tuple[Intent, bool]:
        """Record the intent as PENDING, once; see :meth:`Journal.begin`. With
        ``sending_deadline_ms``, as attempt 1 already SENDING (one script for both).

        After a noted data loss the new intent is UNKNOWN instead, with the loss's venue
        bound as its deadline, and ``created`` is False: the caller then resolves it with
        the venue before any send, as for an intent somebody else may have sent (a fused
        claim too: it never records an attempt then).
        """
        check_begin(idempotency_key, client_order_id, account, symbol, fingerprint,
                    sending_deadline_ms)  # fmt: skip
        now = time.time()
        token = process_token()
        created = self._begin(
            keys=[
                self._intent_key(client_order_id),
                self._unfinished_key(account),
                f"{self._tag}accounts",
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
                token,
                repr(now),
                int(now * 1000),
                *self._loss_args,
                "" if sending_deadline_ms is None else int(sending_deadline_ms),
            ],
        )
        if created == -1:
            left = self._redis.pttl(self._tombstone_key(client_order_id))
            raise _expired(client_order_id, now + max(0, int(left)) / 1000)
        if created == 1:  # exactly what the script wrote: no second round trip to read it
            fused = sending_deadline_ms is not None
            return Intent(
                idempotency_key, client_order_id, account, symbol, fingerprint,
                IntentState.SENDING if fused else IntentState.PENDING, int(fused),
                int(sending_deadline_ms or 0), token, None, None, now, now,
            ), True  # fmt: skip
        intent = self.get(client_order_id)
        if intent is None:  # purged or lost between the script and this read
            raise _expired(client_order_id, now)
        return intent, created == 1

    def get(self, client_order_id: str) -> Intent | None:
        """The intent recorded under ``client_order_id``, or ``None``."""
        check_id("client_order_id", client_order_id)
        return _intent(self._redis.hgetall(self._intent_key(client_order_id)))

    def sending(self, client_order_id: str, seen: View, deadline_ms: int) -> bool:
        """The transition to SENDING, from ``seen`` only; see :meth:`Journal.sending`."""
        ((client_order_id, seen, deadline_ms),) = check_attempts(
            [(client_order_id, seen, deadline_ms)]
        )
        return self._send(client_order_id, seen, deadline_ms)

    def _send(self, client_order_id: str, seen: View, deadline_ms: int) -> bool:
        now = time.time()
        return bool(
            self._sending(
                keys=[
                    self._intent_key(client_order_id),
                    self._tombstone_key(client_order_id),
                    self._marker,
                    self._suspect,
                ],
                args=[
                    seen.state.value,
                    seen.attempts,
                    deadline_ms,
                    process_token(),
                    repr(now),
                    client_order_id,
                    int(now * 1000),
                    *self._loss_args,
                    f"{self._tag}unfinished:",
                ],
            )
        )

    def sending_many(self, attempts: Sequence[tuple[str, View, int]]) -> list[bool]:
        """Each claim is its own atomic script; the server's AOF makes them durable."""
        return [self._send(cid, seen, deadline) for cid, seen, deadline in check_attempts(attempts)]

    def settle(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        expect: View | None = None,
        order_json: str | None = None,
        error: str | None = None,
        fills: Sequence[Fill] = (),
    ) -> bool:
        """A transition of the intent, checked and written in one script; see
        :meth:`Journal.settle`. Returns whether it applied."""
        check_settle(client_order_id, state, expect, order_json, error)
        fills = check_fills(fills)
        if state in GUARDED and expect is None:
            raise InvalidRequest(
                f"a write of {state.value} must name the row it read: pass expect=intent.view"
            )
        fill_args: list[str] = []
        for fill in fills:
            if fill.trade_id is not None:
                fill_args += [fill.trade_id, json.dumps(_fill_row(fill), separators=(",", ":"))]
        return bool(
            self._settle(
                keys=[
                    self._intent_key(client_order_id),
                    self._tombstone_key(client_order_id),
                    self._fills_key(client_order_id),
                ],
                args=[
                    state.value,
                    "" if expect is None else expect.state.value,
                    -1 if expect is None else expect.attempts,
                    repr(time.time()),
                    "0" if order_json is None else "1",
                    order_json or "",
                    "0" if error is None else "1",
                    error or "",
                    client_order_id,
                    f"{self._tag}unfinished:",
                    max(1, int(self.retention * 1000)),
                    max(1, int(self.tombstone_ttl * 1000)),
                    *fill_args,
                ],
            )
        )

    def record_fills(self, client_order_id: str, fills: Iterable[Fill]) -> int:
        """Record executions, once per trade id; see :meth:`Journal.record_fills`."""
        check_id("client_order_id", client_order_id)
        fills = check_fills(fills)
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
        check_id("client_order_id", client_order_id)
        raw = self._redis.hgetall(self._fills_key(client_order_id))
        rows = sorted(((_text(k), _text(v)) for k, v in raw.items()), key=_trade_order)
        return [Fill(trade_id=t, **json.loads(v)) for t, v in rows]

    def purge(self) -> int:
        """Retention is Redis's key expiry here (set when an intent settles): nothing to do."""
        return 0

    def tombstone(self, client_order_id: str) -> float | None:
        """Until when (epoch seconds) a purged intent's key is refused; None: no tombstone.
        While the intent itself is kept, its tombstone is only scheduled: None."""
        check_id("client_order_id", client_order_id)
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
        """The account's intents that have no final state yet."""
        check_id("account", account)
        return [i for i in self._of_account(account) if i.state in UNFINISHED]

    def unresolved(self, account: str | None = None) -> list[Intent]:
        """Intents sent or unknown, for one account or every account in this namespace."""
        if account is None:
            accounts = sorted(_text(a) for a in self._redis.smembers(f"{self._tag}accounts"))
        else:
            accounts = [check_id("account", account)]
        wanted = (IntentState.SENDING, IntentState.UNKNOWN)
        return [i for a in accounts for i in self._of_account(a) if i.state in wanted]

    def known(self, client_order_ids: list[str]) -> set[str]:
        """Which of ``client_order_ids`` have an entry (one pipelined round trip)."""
        client_order_ids = check_ids(client_order_ids)
        pipe = self._redis.pipeline(transaction=False)
        for cid in client_order_ids:
            pipe.exists(self._intent_key(cid))
        return {cid for cid, hit in zip(client_order_ids, pipe.execute(), strict=True) if hit}

    def lease(self, account: str, seconds: float) -> bool:
        """The account's reconciliation lease; see :meth:`Journal.lease`. A server that
        cannot answer raises :class:`JournalError` (the caller sends nothing then)."""
        import redis as redis_module

        check_id("account", account)
        check_lease_seconds(seconds)
        key = f"{self._tag}lease:{account}"
        ms = max(1, int(seconds * 1000))
        try:
            if self._lease(keys=[key], args=[process_token(), ms, ""]):
                return True
            holder = self._redis.get(key)
            if holder is not None and owner_is_gone(_text(holder)):
                # Its holder died on this host: take it over, but only from that very holder
                # (compare-and-set in the script), so two processes cannot both take it.
                return bool(self._lease(keys=[key], args=[process_token(), ms, _text(holder)]))
        except redis_module.RedisError as exc:
            raise _unreachable("take the recovery lease", exc) from exc
        return False

    def release(self, account: str) -> None:
        """Give up the account's recovery lease if this process holds it (else it expires
        by itself, after ``Settings.recovery_lease``)."""
        import redis as redis_module

        check_id("account", account)
        try:
            self._release(keys=[f"{self._tag}lease:{account}"], args=[process_token()])
        except redis_module.RedisError as exc:
            raise _unreachable("release the recovery lease", exc) from exc

    def close(self) -> None:
        """Close the Redis connection; the intents stay in Redis."""
        self._redis.close()

    def __repr__(self) -> str:
        return f"RedisJournal(prefix={self._prefix!r})"


def _unreachable(what: str, exc: Exception) -> JournalError:
    """A Redis failure as the SDK's journal error, saying what to check."""
    return JournalError(
        f"RedisJournal: could not {what} ({type(exc).__name__}: {str(exc)[:200]}); check "
        "that the Redis server runs and is reachable, then try again"
    )


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
