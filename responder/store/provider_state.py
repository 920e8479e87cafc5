"""ProviderState: what a provider remembers about an incident between steps and replicas.

The Slack message's channel and ts (so every update edits the same message), the Statuspage
incident id (so later steps update it rather than opening another), the PagerDuty dedup key.
"""

from __future__ import annotations

from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["ProviderState"]

TTL_SECONDS = 90 * 86400


class ProviderState:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, incident_id: str, provider: str) -> dict[str, str]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.keys.provider_state(incident_id, provider))
        return {str(k): str(v) for k, v in raw.items()}

    async def set(self, incident_id: str, provider: str, **fields: str) -> None:
        key = self.keys.provider_state(incident_id, provider)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's Mapping key type is invariant
        pipe.expire(key, TTL_SECONDS)
        await pipe.execute()

    async def set_if_absent(self, incident_id: str, provider: str, field: str, value: str) -> bool:
        """Claim a field once (the first replica to post the Slack message wins); True when set here."""
        key = self.keys.provider_state(incident_id, provider)
        created = bool(await self.redis.hsetnx(key, field, value))
        if created:
            await self.redis.expire(key, TTL_SECONDS)
        return created
