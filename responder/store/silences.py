"""SilenceStore: silences, the firings each one suppressed, and the rule groups held back, in Redis.

Silences live under the {sil} hash tag: one JSON document per silence, an index by end time, and per
silence a capped list of suppressed firings plus their count. Each expires RETENTION after the silence's
end (an open-ended recurring silence does not expire). TTLs are computed from the app's clock, so they
are relative (PEXPIRE), never absolute.

The "suppressed" marks are engine state (under {eng}): rule group -> which silence held its firing back,
plus a due set, so the tick can look at the group again when that silence ends.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from responder.engine.silences import Silence, Suppressed
from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["SilenceStore"]

_NO_END = float("inf")


def _score(silence: Silence) -> float:
    return silence.ends_at.timestamp() * 1000 if silence.ends_at is not None else _NO_END


def _ms(ttl: timedelta) -> int:
    return max(int(ttl.total_seconds() * 1000), 1000)


class SilenceStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def add(self, silence: Silence, ttl: timedelta | None) -> bool:
        """Store a new silence; False when the id is taken."""
        doc = silence.model_dump_json(by_alias=True, exclude_none=True)
        key = self.keys.silence(silence.id)
        if not await self.redis.set(key, doc, nx=True, px=_ms(ttl) if ttl is not None else None):
            return False
        await self.redis.zadd(self.keys.silences_all, {silence.id: _score(silence)})
        return True

    async def save(self, silence: Silence, ttl: timedelta | None) -> None:
        """Overwrite a silence (expired early) and move its hits' expiry along."""
        doc = silence.model_dump_json(by_alias=True, exclude_none=True)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.silence(silence.id), doc, px=_ms(ttl) if ttl is not None else None)
        pipe.zadd(self.keys.silences_all, {silence.id: _score(silence)})
        for key in (self.keys.silence_hits(silence.id), self.keys.silence_hit_count(silence.id)):
            if ttl is not None:
                pipe.pexpire(key, _ms(ttl))
            else:
                pipe.persist(key)
        await pipe.execute()

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self.redis.get(self.keys.silence(silence_id))
        return Silence.model_validate_json(raw) if raw else None

    async def prune(self, before: datetime) -> None:
        """Forget index entries of silences that ended before `before` (their documents expire by TTL)."""
        await self.redis.zremrangebyscore(self.keys.silences_all, "-inf", f"({int(before.timestamp() * 1000)}")

    async def in_effect(self, since: datetime) -> list[Silence]:
        """Silences that end at or after `since`; index entries of vanished documents are dropped."""
        since_ms = int(since.timestamp() * 1000)
        ids = [str(i) for i in await self.redis.zrangebyscore(self.keys.silences_all, since_ms, "+inf")]
        if not ids:
            return []
        docs = await self.redis.mget([self.keys.silence(i) for i in ids])
        gone = [i for i, d in zip(ids, docs, strict=True) if d is None]
        if gone:
            await self.redis.zrem(self.keys.silences_all, *gone)
        return [Silence.model_validate_json(d) for d in docs if d is not None]

    async def add_hit(self, silence_id: str, hit: dict[str, Any], ttl: timedelta | None, keep: int) -> None:
        hits, count = self.keys.silence_hits(silence_id), self.keys.silence_hit_count(silence_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(hits, json.dumps(hit))
        pipe.ltrim(hits, 0, keep - 1)
        pipe.incr(count)
        if ttl is not None:
            pipe.pexpire(hits, _ms(ttl))
            pipe.pexpire(count, _ms(ttl))
        await pipe.execute()

    async def hits(self, silence_id: str, limit: int) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self.redis.lrange(self.keys.silence_hits(silence_id), 0, limit - 1)]

    async def hit_counts(self, silence_ids: list[str]) -> dict[str, int]:
        if not silence_ids:
            return {}
        values = await self.redis.mget([self.keys.silence_hit_count(i) for i in silence_ids])
        return {i: int(v or 0) for i, v in zip(silence_ids, values, strict=True)}

    # -- suppressed rule groups (engine state) --

    async def mark(self, member: str, marker: Suppressed, due_ms: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.suppressed, member, json.dumps(asdict(marker)))
        pipe.zadd(self.keys.suppressed_due, {member: due_ms})
        await pipe.execute()

    async def marker(self, member: str) -> Suppressed | None:
        raw = await self.redis.hget(self.keys.suppressed, member)
        return Suppressed(**json.loads(raw)) if raw else None

    async def unmark(self, member: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.suppressed, member)
        pipe.zrem(self.keys.suppressed_due, member)
        await pipe.execute()

    async def due_markers(self, now_ms: int, limit: int = 200) -> list[Suppressed]:
        """Marks whose silence has ended; each is taken off the due set by exactly one caller."""
        members = await self.redis.zrangebyscore(self.keys.suppressed_due, "-inf", now_ms, start=0, num=limit)
        out = []
        for member in members:
            if await self.redis.zrem(self.keys.suppressed_due, str(member)):
                marker = await self.marker(str(member))
                if marker is not None:
                    out.append(marker)
        return out

    async def recheck_now(self, silence_id: str, now_ms: int) -> None:
        """A silence ended early: the groups it held back become due now."""
        due = {}
        for member, raw in (await self.redis.hgetall(self.keys.suppressed)).items():
            if json.loads(raw).get("silence_id") == silence_id:
                due[str(member)] = now_ms
        if due:
            await self.redis.zadd(self.keys.suppressed_due, due)
