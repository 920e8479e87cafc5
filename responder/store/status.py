"""StatusStore: the built-in status page's component states and their history."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["COMPONENT_STATUSES", "StatusStore"]

# Statuspage's vocabulary, so the same playbook works against the built-in page and Statuspage.
COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")

_SET = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, 499)
return 1
"""


PUBLIC_INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")

# KEYS: 1 incidents hash, 2 active zset, 3 resolved zset.
# ARGV: 1 id, 2 update json {status, body, at}, 3 name ('' keeps), 4 components json object, 5 now ms
# One public incident per responder incident; updates newest first (at most 50); resolved ones are kept
# for the page's history (the newest 20). Resolving twice changes nothing.
_INCIDENT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local update = cjson.decode(ARGV[2])
local doc
if raw then
  doc = cjson.decode(raw)
  if doc['status'] == 'resolved' and update['status'] == 'resolved' then return raw end
else
  if update['status'] == 'resolved' then return '' end
  doc = {id = ARGV[1], name = ARGV[3], created_at = update['at'], updates = {}, components = {}}
end
if ARGV[3] ~= '' then doc['name'] = ARGV[3] end
doc['status'] = update['status']
doc['updated_at'] = update['at']
table.insert(doc['updates'], 1, update)
while #doc['updates'] > 50 do table.remove(doc['updates']) end
for k, v in pairs(cjson.decode(ARGV[4])) do doc['components'][k] = v end
if next(doc['components']) == nil then doc['components'] = cjson.decode('{}') end
if update['status'] == 'resolved' then
  doc['resolved_at'] = update['at']
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  local old = redis.call('ZRANGE', KEYS[3], 0, -21)
  for _, id in ipairs(old) do redis.call('HDEL', KEYS[1], id) end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -21)
else
  doc['resolved_at'] = nil
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[1])
end
local out = cjson.encode(doc)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
"""


class StatusStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._set = redis.register_script(_SET)
        self._incident = redis.register_script(_INCIDENT)

    async def set(self, component: str, status: str, message: str, at: datetime,
                  incident_id: str | None = None) -> None:
        doc = {"component": component, "status": status, "message": message, "updated_at": at.isoformat(),
               "incident_id": incident_id}
        await self._set(keys=[self.keys.status_components, self.keys.status_history],
                        args=[component, json.dumps(doc), json.dumps(doc)])

    async def components(self) -> dict[str, dict[str, Any]]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.keys.status_components)
        return {str(name): json.loads(doc) for name, doc in raw.items()}

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(r) for r in await self.redis.lrange(self.keys.status_history, 0, limit - 1)]

    async def publish(self, incident_id: str, *, status: str, body: str, at: datetime, name: str = "",
                      components: dict[str, str] | None = None) -> dict[str, Any] | None:
        """Open or update the public incident of a responder incident; None when resolving one never opened."""
        update = {"status": status, "body": body, "at": at.isoformat()}
        out = await self._incident(
            keys=[self.keys.status_incidents, self.keys.status_incidents_active, self.keys.status_incidents_resolved],
            args=[incident_id, json.dumps(update), name, json.dumps(components or {}), int(at.timestamp() * 1000)])
        return json.loads(out) if out else None

    async def public_incident(self, incident_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self.keys.status_incidents, incident_id)
        return json.loads(raw) if raw else None

    async def public_incidents(self, *, resolved: bool = False, limit: int = 20) -> list[dict[str, Any]]:
        """Active public incidents (newest first), or the recently resolved ones."""
        index = self.keys.status_incidents_resolved if resolved else self.keys.status_incidents_active
        ids = [str(i) for i in await self.redis.zrevrange(index, 0, limit - 1)]
        if not ids:
            return []
        docs = await self.redis.hmget(self.keys.status_incidents, ids)
        return [json.loads(d) for d in docs if d]
