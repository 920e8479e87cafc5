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


class StatusStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._set = redis.register_script(_SET)

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
