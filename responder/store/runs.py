"""RunStore: durable playbook runs — leases, per-step idempotency records and remediation budgets."""

from __future__ import annotations

import json
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["RunStore"]

# KEYS: 1 run hash, 2 due zset, 3 incident-runs list. ARGV: 1 run id, 2 doc json, 3 owner, 4 lease deadline ms
_CREATE = """
if redis.call('HSETNX', KEYS[1], 'doc', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'status', 'running')
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1
"""

# KEYS: 1 due zset, 2 run hash prefix. ARGV: 1 now ms, 2 lease deadline ms, 3 owner, 4 limit
# Runs whose lease ran out (their replica died) are taken over by the caller.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[2] .. id, 'owner', ARGV[3])
end
return ids
"""

# KEYS: 1 run hash, 2 due zset. ARGV: 1 run id, 2 owner, 3 lease deadline ms
_RENEW = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

# KEYS: 1 run hash, 2 due zset, 3 step hash. ARGV: 1 run id, 2 owner, 3 lease deadline ms, 4 step record json
# Renew the lease (as _RENEW: 'lost' when another owner holds the run, and nothing written), then write the step's
# start record unless one exists: '' when written, else the existing record. One round trip per step.
_RENEW_BEGIN = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 'lost' end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
if redis.call('HSETNX', KEYS[3], 'rec', ARGV[4]) == 1 then return '' end
return redis.call('HGET', KEYS[3], 'rec') or ''
"""

# KEYS: 1 budget zset. ARGV: 1 now ms, 2 window ms, 3 max, 4 member
_BUDGET = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


# KEYS: 1 repeats zset, 2 run hash prefix. ARGV: 1 now ms, 2 lease deadline ms, 3 limit
# Due repeating steps are leased to the caller (score moved to the lease deadline) and their
# iteration counter is bumped, so one replica runs each iteration.
_CLAIM_REPEATS = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, member in ipairs(members) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
  local sep = string.find(member, '|', 1, true)
  local run_id = string.sub(member, 1, sep - 1)
  local step = string.sub(member, sep + 1)
  local n = redis.call('HINCRBY', KEYS[2] .. run_id, 'repeat:' .. step, 1)
  table.insert(out, member)
  table.insert(out, tostring(n))
end
return out
"""


class RunStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._create = redis.register_script(_CREATE)
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._renew_begin = redis.register_script(_RENEW_BEGIN)
        self._budget = redis.register_script(_BUDGET)
        self._claim_repeats = redis.register_script(_CLAIM_REPEATS)

    async def create(self, run_id: str, incident_id: str, doc: dict[str, Any], owner: str, lease_until: int) -> bool:
        """Create a run owned by `owner`; False when it already exists (the run is never started twice)."""
        return bool(await self._create(
            keys=[self.keys.run(run_id), self.keys.runs_due, self.keys.incident_runs(incident_id)],
            args=[run_id, json.dumps(doc), owner, lease_until]))

    async def claim_expired(self, owner: str, now_ms: int, lease_until: int, limit: int = 10) -> list[str]:
        ids = await self._claim(keys=[self.keys.runs_due, self.keys.run("")], args=[now_ms, lease_until, owner, limit])
        return [str(i) for i in ids]

    async def renew(self, run_id: str, owner: str, lease_until: int) -> bool:
        return bool(await self._renew(keys=[self.keys.run(run_id), self.keys.runs_due],
                                      args=[run_id, owner, lease_until]))

    async def finish(self, run_id: str, status: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.runs_due, run_id)
        pipe.hset(self.keys.run(run_id), "status", status)
        await pipe.execute()

    async def release(self, run_id: str, owner: str) -> None:
        """Hand a run back (shutdown): another replica may claim it at once."""
        await self.renew(run_id, owner, 0)

    async def get(self, run_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(self.keys.run(run_id))
        if not raw:
            return None
        return {**json.loads(raw["doc"]), "status": raw.get("status"), "owner": raw.get("owner")}

    async def for_incident(self, incident_id: str) -> list[str]:
        return [str(r) for r in await self.redis.lrange(self.keys.incident_runs(incident_id), 0, -1)]

    async def begin_step(self, run_id: str, step: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Write the step's start record unless one exists; returns the existing record, or None if new."""
        key = self.keys.step(run_id, step)
        if await self.redis.hsetnx(key, "rec", json.dumps(record)):
            return None
        raw = await self.redis.hget(key, "rec")
        return json.loads(raw) if raw else None

    async def renew_and_begin_step(self, run_id: str, step: str, record: dict[str, Any], owner: str,
                                   lease_until: int) -> tuple[bool, dict[str, Any] | None]:
        """`renew` and `begin_step` in one script: (False, None) when another owner holds the run (nothing is
        written), else (True, the existing record or None if this one was written)."""
        reply = await self._renew_begin(keys=[self.keys.run(run_id), self.keys.runs_due, self.keys.step(run_id, step)],
                                        args=[run_id, owner, lease_until, json.dumps(record)])
        if reply == "lost":
            return False, None
        return True, json.loads(reply) if reply else None

    async def finish_step(self, run_id: str, step: str, record: dict[str, Any]) -> None:
        await self.redis.hset(self.keys.step(run_id, step), "rec", json.dumps(record))

    async def step_record(self, run_id: str, step: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self.keys.step(run_id, step), "rec")
        return json.loads(raw) if raw else None

    async def take_budget(self, playbook: str, key: str, run_id: str, now_ms: int, per_ms: int, limit: int) -> bool:
        """The playbook loop breaker: at most `limit` runs of `playbook` per window for one incident key."""
        return bool(await self._budget(keys=[self.keys.budget(playbook, key)], args=[now_ms, per_ms, limit, run_id]))

    async def take_remediation(self, kind: str, target: str, member: str, now_ms: int, per_ms: int,
                               limit: int) -> bool:
        """Count one automated change of `kind` to `target` (idempotent per `member`); False when over budget."""
        if limit <= 0:
            return False
        return bool(await self._budget(keys=[self.keys.remediation_budget(kind, target)],
                                       args=[now_ms, per_ms, limit, member]))

    async def remediation_used(self, kind: str, target: str, now_ms: int, per_ms: int) -> int:
        """How many changes of `kind` to `target` count against the budget right now (read-only)."""
        return int(await self.redis.zcount(self.keys.remediation_budget(kind, target), f"({now_ms - per_ms}", "+inf"))

    async def schedule_repeat(self, run_id: str, step: str, due_ms: int) -> None:
        await self.redis.zadd(self.keys.repeats_due, {f"{run_id}|{step}": due_ms})

    async def repeat_count(self, run_id: str, step: str) -> int:
        return int(await self.redis.hget(self.keys.run(run_id), f"repeat:{step}") or 0)

    async def cancel_repeat(self, run_id: str, step: str) -> None:
        await self.redis.zrem(self.keys.repeats_due, f"{run_id}|{step}")

    async def claim_repeats(self, now_ms: int, lease_until: int, limit: int = 20) -> list[tuple[str, str, int]]:
        """Due repeating steps as (run id, step name, iteration), leased to the caller."""
        raw = await self._claim_repeats(keys=[self.keys.repeats_due, self.keys.run("")],
                                        args=[now_ms, lease_until, limit])
        out = []
        for i in range(0, len(raw), 2):
            run_id, _, step = str(raw[i]).partition("|")
            out.append((run_id, step, int(raw[i + 1])))
        return out
