"""IncidentStore: incident documents, their timelines and the open-incident index, in Redis."""

from __future__ import annotations

from typing import Any

from responder.incidents.model import Incident, IncidentState, TimelineEntry
from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["IncidentStore"]

# KEYS: 1 open-key index, 2 seq, 3 all zset, 4 triggered zset, 5 incident hash prefix, 6 timeline prefix
# ARGV: 1 incident json starting with `{"id":""` (the id is filled in here), 2 created ms, 3 timeline entry json,
#       4 state
# Opening is atomic: two replicas firing the same key get the same incident. The entry goes on the timeline of the
# incident created, or of the one already open for the key; the reply is {id, created 1|0, that incident's document}.
# The document is stored exactly as Python serialized it (no cjson round trip), so the caller may use it as the
# expected value of a later compare-and-set.
_OPEN = """
local existing = redis.call('GET', KEYS[1])
if existing then
  redis.call('RPUSH', KEYS[6] .. existing, ARGV[3])
  return {existing, '0', redis.call('HGET', KEYS[5] .. existing, 'doc') or ''}
end
local id = tostring(redis.call('INCR', KEYS[2]))
local doc = '{"id":"' .. id .. '"' .. string.sub(ARGV[1], 9)
redis.call('SET', KEYS[1], id)
redis.call('HSET', KEYS[5] .. id, 'doc', doc, 'state', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], id)
redis.call('ZADD', KEYS[4], ARGV[2], id)
redis.call('RPUSH', KEYS[6] .. id, ARGV[3])
return {id, '1', doc}
"""
_BLANK_ID = '{"id":""'

# KEYS: 1 incident hash, 2 timeline, 3 old-state zset, 4 new-state zset, 5 open-key index
# ARGV: 1 expected state, 2 new state, 3 new doc json, 4 score, 5 timeline entry json (may be empty), 6 id,
#       7 expected doc json (may be empty: the state alone is compared)
# Compare-and-set: the Python transition table decides, this only refuses a stale decision.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= ARGV[1] then return state end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'doc') ~= ARGV[7] then return 'changed' end
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'state', ARGV[2])
if ARGV[1] ~= ARGV[2] then
  redis.call('ZREM', KEYS[3], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[6])
end
if ARGV[2] == 'resolved' and redis.call('GET', KEYS[5]) == ARGV[6] then redis.call('DEL', KEYS[5]) end
if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[5]) end
return 'ok'
"""


# KEYS: 1 incident hash, 2 timeline. ARGV: 1 timeline entry json, 2 '1' to return the document
# An entry for an incident that exists (false otherwise), with its document when asked for.
_NOTE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('RPUSH', KEYS[2], ARGV[1])
if ARGV[2] == '1' then return redis.call('HGET', KEYS[1], 'doc') or '' end
return ''
"""


class IncidentStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._open = redis.register_script(_OPEN)
        self._transition = redis.register_script(_TRANSITION)
        self._note = redis.register_script(_NOTE)

    async def open(self, incident: Incident, entry: TimelineEntry) -> tuple[str, bool, Incident | None]:
        """Create the incident unless one is open for its key, and put `entry` on the timeline of the one created
        or found, in one script; returns (id, created, that incident as stored: None if its document is gone)."""
        k = self.keys
        doc = incident.model_copy(update={"id": ""}).model_dump_json() if incident.id else incident.model_dump_json()
        assert doc.startswith(_BLANK_ID)  # `id` is the model's first field
        reply = await self._open(
            keys=[k.open_incident(incident.key), k.incident_seq, k.incidents_all,
                  k.incidents_in(IncidentState.TRIGGERED), k.incident(""), k.timeline("")],
            args=[doc, int(incident.created_at.timestamp() * 1000), entry.model_dump_json(), incident.state.value])
        stored = Incident.model_validate_json(reply[2]) if reply[2] else None
        return str(reply[0]), reply[1] == "1", stored

    async def open_id(self, key: str) -> str | None:
        value = await self.redis.get(self.keys.open_incident(key))
        return str(value) if value else None

    async def get(self, incident_id: str) -> Incident | None:
        raw = await self.redis.hget(self.keys.incident(incident_id), "doc")
        return Incident.model_validate_json(raw) if raw else None

    async def save(self, before: IncidentState, incident: Incident, entry: TimelineEntry | None, *,
                   expected: Incident | None = None) -> str:
        """Write `incident` if it is still in state `before` (and, given `expected`, its stored document is still
        exactly that one); returns 'ok', 'missing', 'changed' (the document differs) or the state found instead."""
        k = self.keys
        reply = await self._transition(
            keys=[k.incident(incident.id), k.timeline(incident.id), k.incidents_in(before),
                  k.incidents_in(incident.state), k.open_incident(incident.key)],
            args=[before.value, incident.state.value, incident.model_dump_json(),
                  int(incident.updated_at.timestamp() * 1000), entry.model_dump_json() if entry else "", incident.id,
                  expected.model_dump_json() if expected is not None else ""])
        return str(reply)

    async def append(self, incident_id: str, entry: TimelineEntry) -> None:
        await self.redis.rpush(self.keys.timeline(incident_id), entry.model_dump_json())

    async def note(self, incident_id: str, entry: TimelineEntry, *, want: bool) -> tuple[bool, Incident | None]:
        """Append `entry` if the incident exists, in one round trip; returns (exists, the incident if `want`)."""
        reply = await self._note(keys=[self.keys.incident(incident_id), self.keys.timeline(incident_id)],
                                 args=[entry.model_dump_json(), "1" if want else "0"])
        if reply is None:
            return False, None
        return True, Incident.model_validate_json(reply) if want and reply else None

    async def timeline(self, incident_id: str, limit: int = 1000) -> list[TimelineEntry]:
        raw = await self.redis.lrange(self.keys.timeline(incident_id), 0, limit - 1)
        return [TimelineEntry.model_validate_json(r) for r in raw]

    async def ids(self, state: IncidentState | None = None, limit: int = 100) -> list[str]:
        key = self.keys.incidents_in(state) if state else self.keys.incidents_all
        return [str(i) for i in await self.redis.zrevrange(key, 0, limit - 1)]

    async def list(self, state: IncidentState | None = None, limit: int = 100) -> list[Incident]:
        ids = await self.ids(state, limit)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for incident_id in ids:
            pipe.hget(self.keys.incident(incident_id), "doc")
        return [Incident.model_validate_json(raw) for raw in await pipe.execute() if raw]

    async def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for state in IncidentState:
            pipe.zcard(self.keys.incidents_in(state))
        values: list[Any] = await pipe.execute()
        return {state.value: int(n) for state, n in zip(IncidentState, values, strict=True)}
