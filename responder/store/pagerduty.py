"""PagerDutyLinks: which responder incident a PagerDuty alert or incident belongs to.

Two indexes, each a plain string key holding a responder incident id, kept as long as ProviderState:
- Events API dedup key -> the incident whose `pagerduty.trigger` used it (the latest one: a dedup key
  of a resolved alert may page again for a new incident with the same key);
- PagerDuty incident id -> the responder incident, once a webhook was matched, so that events whose
  data carries only a reference to the incident (`incident.annotated`, `incident.responder.*`) find it.
"""

from __future__ import annotations

from responder.store.keys import Keys
from responder.store.provider_state import TTL_SECONDS
from responder.store.redis import Redis

__all__ = ["PagerDutyLinks"]


class PagerDutyLinks:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def link_dedup_key(self, dedup_key: str, incident_id: str) -> None:
        await self.redis.set(self.keys.pagerduty_dedup(dedup_key), incident_id, ex=TTL_SECONDS)

    async def by_dedup_key(self, dedup_key: str) -> str | None:
        value = await self.redis.get(self.keys.pagerduty_dedup(dedup_key))
        return str(value) if value else None

    async def link_pd_incident(self, pd_incident_id: str, incident_id: str) -> None:
        await self.redis.set(self.keys.pagerduty_incident(pd_incident_id), incident_id, ex=TTL_SECONDS)

    async def by_pd_incident(self, pd_incident_id: str) -> str | None:
        value = await self.redis.get(self.keys.pagerduty_incident(pd_incident_id))
        return str(value) if value else None
