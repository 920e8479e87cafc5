"""AuditLog: every ChatOps command and button click, allowed or refused, newest first (capped)."""

from __future__ import annotations

import json
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["AuditLog"]

#: entries kept; older ones are dropped
MAX_ENTRIES = 10_000


class AuditLog:
    def __init__(self, redis: Redis, keys: Keys, *, max_entries: int = MAX_ENTRIES) -> None:
        self.redis = redis
        self.keys = keys
        self.max_entries = max_entries

    async def record(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.audit, json.dumps(entry))
        pipe.ltrim(self.keys.audit, 0, self.max_entries - 1)
        await pipe.execute()

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        raw = await self.redis.lrange(self.keys.audit, 0, limit - 1)
        return [json.loads(r) for r in raw]

    async def seen(self, signature: str, ttl_ms: int) -> bool:
        """Whether a signed Slack request was seen before (a replay); remembers it for `ttl_ms`."""
        return not await self.redis.set(self.keys.slack_replay(signature), "1", nx=True, px=ttl_ms)
