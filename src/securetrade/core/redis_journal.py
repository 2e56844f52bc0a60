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
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .journal import UNFINISHED, Intent, IntentState, owner_is_gone, process_token

if TYPE_CHECKING:
    import redis

__all__ = ["RedisJournal"]

log = logging.getLogger("securetrade")

_SETTLED = ("ACKED", "FILLED", "CANCELED", "EXPIRED", "REJECTED")

# KEYS: intent hash, unfinished set of the account, set of accounts.
# ARGV: idempotency key, client order id, account, symbol, fingerprint, owner, now.
_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'idempotency_key', ARGV[1], 'client_order_id', ARGV[2],
  'account', ARGV[3], 'symbol', ARGV[4], 'fingerprint', ARGV[5], 'state', 'PENDING',
  'attempts', 0, 'deadline_ms', 0, 'owner', ARGV[6], 'created_at', ARGV[7],
  'updated_at', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# KEYS: intent hash, unfinished set. ARGV: attempts seen, deadline, owner, now, cid.
_SENDING = """
local seen = redis.call('HMGET', KEYS[1], 'attempts', 'state')
if not seen[1] or tonumber(seen[1]) ~= tonumber(ARGV[1]) then return 0 end
local state = seen[2]
if state == 'ACKED' or state == 'FILLED' or state == 'CANCELED' or state == 'EXPIRED'
  or state == 'REJECTED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'SENDING', 'attempts', tonumber(ARGV[1]) + 1,
  'deadline_ms', ARGV[2], 'owner', ARGV[3], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'error')
redis.call('SADD', KEYS[2], ARGV[5])
return 1
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

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "securetrade:journal:",
    ) -> None:
        if client is None:
            import redis as redis_module

            if url is None:
                raise ValueError("give a Redis url or a client")
            client = redis_module.Redis.from_url(url)
        self._redis = client
        self._prefix = prefix
        self._begin = client.register_script(_BEGIN)
        self._sending = client.register_script(_SENDING)
        self._lease = client.register_script(_LEASE)
        self._release = client.register_script(_RELEASE)
        self.path = f"redis:{prefix}"
        self._warn_unless_durable()

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

    # --- the journal -----------------------------------------------------------------------

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        account: str,
        symbol: str,
        fingerprint: str,
    ) -> tuple[Intent, bool]:
        """Record the intent as PENDING, once; see :meth:`Journal.begin`."""
        created = self._begin(
            keys=[
                self._intent_key(client_order_id),
                self._unfinished_key(account),
                f"{self._prefix}accounts",
            ],
            args=[
                idempotency_key,
                client_order_id,
                account,
                symbol,
                fingerprint,
                process_token(),
                repr(time.time()),
            ],
        )
        intent = self.get(client_order_id)
        assert intent is not None
        return intent, bool(created)

    def get(self, client_order_id: str) -> Intent | None:
        return _intent(self._redis.hgetall(self._intent_key(client_order_id)))

    def sending(self, client_order_id: str, attempts: int, deadline_ms: int) -> bool:
        """Compare-and-set the attempt count; see :meth:`Journal.sending`."""
        intent_key = self._intent_key(client_order_id)
        account = self._redis.hget(intent_key, "account")
        if account is None:
            return False
        return bool(
            self._sending(
                keys=[intent_key, self._unfinished_key(_text(account))],
                args=[attempts, deadline_ms, process_token(), repr(time.time()), client_order_id],
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
        pipe.execute()

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
