"""RuleStateStore: per (rule, group) alert state — pending-since, series, windows, timers — in Redis.

One Lua script does a whole evaluation step atomically, so several replicas evaluating the same
rule group never both see the transition to firing: exactly one caller receives "fire".

States: inactive -> pending (condition true, `for` running) -> firing -> (condition false for
`resolve.after`, or no event for `resolve.quiet`) -> inactive, reported as "resolve".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["Evaluation", "RuleStateStore"]

# KEYS: 1 state hash, 2 series hash | window-all zset, 3 window-flagged zset, 4 timers zset, 5 suppressed hash
# ARGV: 1 mode (series|window), 2 now_ms, 3 for_ms, 4 resolve_ms, 5 quiet_ms, 6 timer member,
#       7 series id | event id (empty on a tick), 8 holds/counted (1|0), 9 window_ms, 10 kind (count|ratio),
#       11 op, 12 threshold, 13 sample event json (empty: keep), 14 group json
_EVALUATE = """
local now = tonumber(ARGV[2])
local for_ms, resolve_ms, quiet_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local has_event = ARGV[7] ~= ''
local cond, value, oldest = false, '', nil
local function cmp(a, op, b)
  if op == '>' then return a > b elseif op == '>=' then return a >= b elseif op == '<' then return a < b
  elseif op == '<=' then return a <= b elseif op == '==' then return a == b else return a ~= b end
end
if ARGV[1] == 'series' then
  if has_event then
    if ARGV[8] == '1' then redis.call('HSET', KEYS[2], ARGV[7], '1') else redis.call('HDEL', KEYS[2], ARGV[7]) end
  end
  cond = redis.call('HLEN', KEYS[2]) > 0
else
  local window = tonumber(ARGV[9])
  if has_event then
    redis.call('ZADD', KEYS[2], now, ARGV[7])
    if ARGV[8] == '1' then redis.call('ZADD', KEYS[3], now, ARGV[7]) end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local total, flagged = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])
  local agg = flagged
  if ARGV[10] == 'ratio' then
    if total > 0 then agg = flagged / total else agg = 0 end
  end
  value = tostring(agg)
  cond = (total > 0 or ARGV[10] == 'count') and cmp(agg, ARGV[11], tonumber(ARGV[12]))
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
end
local state = redis.call('HGET', KEYS[1], 'state') or 'inactive'
if has_event then redis.call('HSET', KEYS[1], 'last_event', now) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'sample', ARGV[13]) end
redis.call('HSETNX', KEYS[1], 'group', ARGV[14])
local last_event = tonumber(redis.call('HGET', KEYS[1], 'last_event') or now)
local quiet = quiet_ms > 0 and (now - last_event) >= quiet_ms
if quiet then cond = false end
local result = 'none'
local pending_since = tonumber(redis.call('HGET', KEYS[1], 'pending_since') or now)
local resolving_since = redis.call('HGET', KEYS[1], 'resolving_since')
if cond then
  if resolving_since then redis.call('HDEL', KEYS[1], 'resolving_since'); resolving_since = nil end
  if state == 'inactive' then
    state = 'pending'; pending_since = now
    redis.call('HSET', KEYS[1], 'pending_since', now)
  end
  if state == 'pending' then
    if now - pending_since >= for_ms then
      state = 'firing'; result = 'fire'
      redis.call('HSET', KEYS[1], 'fired_at', now)
    else
      result = 'pending'
    end
  elseif has_event then
    result = 'update'
  end
else
  if state == 'pending' then
    state = 'inactive'; result = 'reset'
  elseif state == 'firing' then
    if not resolving_since then
      resolving_since = now; redis.call('HSET', KEYS[1], 'resolving_since', now)
    end
    if quiet or now - tonumber(resolving_since) >= resolve_ms then
      state = 'inactive'; result = 'resolve'
    else
      result = 'resolving'
    end
  end
  if state == 'inactive' then
    redis.call('HDEL', KEYS[1], 'pending_since', 'resolving_since', 'fired_at'); resolving_since = nil
  end
end
redis.call('HSET', KEYS[1], 'state', state, 'value', value)
local deadline = nil
local function sooner(t) if t and (deadline == nil or t < deadline) then deadline = t end end
if state == 'pending' then sooner(pending_since + for_ms) end
if state == 'firing' and resolving_since then sooner(tonumber(resolving_since) + resolve_ms) end
if state == 'firing' and quiet_ms > 0 then sooner(last_event + quiet_ms) end
if oldest then sooner(oldest + tonumber(ARGV[9]) + 1) end
if deadline then redis.call('ZADD', KEYS[4], deadline, ARGV[6]) else redis.call('ZREM', KEYS[4], ARGV[6]) end
if state == 'inactive' and deadline == nil and (ARGV[1] ~= 'series' or redis.call('HLEN', KEYS[2]) == 0) then
  redis.call('DEL', KEYS[1])
end
local sample = ''
if result == 'fire' or result == 'resolve' then sample = redis.call('HGET', KEYS[1], 'sample') or '' end
local held = '0'
if result == 'fire' and redis.call('HEXISTS', KEYS[5], ARGV[6]) == 1 then held = '1' end
return {result, state, value, tostring(pending_since), sample, held}
"""


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation step decided."""

    result: str  # none | pending | fire | update | reset | resolving | resolve
    state: str  # inactive | pending | firing
    value: float | None  # the window aggregate, when the rule has `over`
    pending_since_ms: int
    sample: dict[str, Any] | None  # the last event that met the condition (for fire/resolve)
    held: bool = False  # on fire: a silence had held this group's firing back (its suppressed mark is still there)


class RuleStateStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._evaluate = redis.register_script(_EVALUATE)

    async def evaluate(self, member: str, *, mode: str, now_ms: int, for_ms: int, resolve_ms: int, quiet_ms: int,
                       item: str = "", holds: bool = False, window_ms: int = 0, kind: str = "count",
                       op: str = ">", threshold: float = 0.0, sample: str = "", group: str = "{}") -> Evaluation:
        """Run one step for `member` (rule id + group key); `item` empty means a timer tick."""
        keys = [self.keys.rule_state(member)]
        if mode == "series":
            keys += [self.keys.rule_series(member), self.keys.rule_window(member, "flag")]
        else:
            keys += [self.keys.rule_window(member, "all"), self.keys.rule_window(member, "flag")]
        keys += [self.keys.timers, self.keys.suppressed]
        reply = await self._evaluate(keys=keys, args=[
            mode, now_ms, for_ms, resolve_ms, quiet_ms, member, item, "1" if holds else "0",
            window_ms, kind, op, repr(float(threshold)), sample, group])
        result, state, value, pending_since, sample_json, held = (str(x) for x in reply)
        return Evaluation(result, state, float(value) if value else None, int(float(pending_since)),
                          json.loads(sample_json) if sample_json else None, held == "1")

    async def due(self, now_ms: int, limit: int = 500) -> list[str]:
        """Members whose timer has expired: `for` elapsed, resolve delay over, or a window edge."""
        return [str(m) for m in await self.redis.zrangebyscore(self.keys.timers, "-inf", now_ms, start=0, num=limit)]

    async def group_of(self, member: str) -> dict[str, str]:
        raw = await self.redis.hget(self.keys.rule_state(member), "group")
        return json.loads(raw) if raw else {}

    async def forget(self, member: str) -> None:
        """Drop a member whose rule no longer exists (after a reload)."""
        await self.redis.zrem(self.keys.timers, member)
