"""ProbeStore: per-slot claims, the last N results and hourly uptime buckets; and reading a watched Redis.

A claim is `SET <claim key> <owner> NX PX <2 x interval>`: every replica schedules every probe, and the
first to claim a slot runs it. Results live in a capped list per probe; uptime in one hash per probe with
`<hour>:n` and `<hour>:ok` counters (hour = epoch hours), pruned past 7 days by the recording script.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from responder.clock import to_ms
from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["HOUR_MS", "ProbeHistory", "ProbeStore", "QueueReading", "WatchedRedisError", "read_watched_redis"]

HOUR_MS = 3_600_000
_KEEP_HOURS = 7 * 24 + 2
_TTL_MS = 8 * 24 * HOUR_MS  # a removed probe's data goes away by itself

# KEYS: results list, uptime hash.  ARGV: result json, keep, hour, ok (1/0), ttl ms, keep hours.
_RECORD = """
local previous = redis.call('LINDEX', KEYS[1], 0)
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':n', 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':ok', 1) end
if redis.call('HLEN', KEYS[2]) > 2 * tonumber(ARGV[6]) + 20 then
  local oldest = tonumber(ARGV[3]) - tonumber(ARGV[6])
  for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
    local h = tonumber(string.match(f, '^(%d+):'))
    if h and h < oldest then redis.call('HDEL', KEYS[2], f) end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return previous
"""


def _uptime(buckets: dict[Any, Any], hour: int, hours: int) -> float | None:
    """Percentage of ok results in the `hours` hours up to and including `hour`; None with no results."""
    total = ok = 0
    for h in range(hour - hours + 1, hour + 1):
        total += int(buckets.get(f"{h}:n", 0))
        ok += int(buckets.get(f"{h}:ok", 0))
    return round(100.0 * ok / total, 3) if total else None


@dataclass(frozen=True)
class ProbeHistory:
    """What the API and the status page show for one probe."""

    results: list[dict[str, Any]]  # newest first
    uptime_24h: float | None
    uptime_7d: float | None


class ProbeStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._record = redis.register_script(_RECORD)

    async def claim(self, probe_id: str, slot: int, owner: str, ttl_ms: int) -> bool:
        """True for exactly one caller per (probe, slot) while the claim lives."""
        return bool(await self.redis.set(self.keys.probe_claim(probe_id, slot), owner, nx=True, px=max(ttl_ms, 1)))

    async def record(self, probe_id: str, result: dict[str, Any], at: datetime, ok: bool, keep: int) -> str | None:
        """Push one result and count it in its hour, in one script; returns the previous result's status."""
        previous = await self._record(keys=[self.keys.probe_results(probe_id), self.keys.probe_uptime(probe_id)],
                           args=[json.dumps(result), keep, to_ms(at) // HOUR_MS, "1" if ok else "0", _TTL_MS,
                                 _KEEP_HOURS])
        if not previous:
            return None
        status = json.loads(previous).get("status")
        return str(status) if status else None

    async def history(self, probe_ids: list[str], now: datetime, limit: int) -> dict[str, ProbeHistory]:
        """Results (newest first, at most `limit`) and uptime over 24 h and 7 d, for many probes at once."""
        if not probe_ids:
            return {}
        hour = to_ms(now) // HOUR_MS
        async with self.redis.pipeline(transaction=False) as pipe:
            for probe_id in probe_ids:
                pipe.lrange(self.keys.probe_results(probe_id), 0, max(limit, 1) - 1)
                pipe.hgetall(self.keys.probe_uptime(probe_id))
            replies = await pipe.execute()
        out: dict[str, ProbeHistory] = {}
        for i, probe_id in enumerate(probe_ids):
            raw, buckets = replies[2 * i], replies[2 * i + 1]
            results = [json.loads(r) for r in raw][:limit] if limit > 0 else []
            out[probe_id] = ProbeHistory(results, _uptime(buckets, hour, 24), _uptime(buckets, hour, 24 * 7))
        return out


@dataclass(frozen=True)
class QueueReading:
    """A watched Redis answered PING in `latency_ms`; `length` of `key` (of `kind`) when one was asked for."""

    latency_ms: float
    kind: str | None = None
    length: int | None = None


class WatchedRedisError(Exception):
    """The watched Redis refused, failed or held the wrong kind of key (the message says which)."""


_LENGTH: dict[str, Callable[[Redis, str], Awaitable[Any]]] = {
    "list": lambda r, k: r.llen(k), "zset": lambda r, k: r.zcard(k), "stream": lambda r, k: r.xlen(k),
    "set": lambda r, k: r.scard(k),
}


async def read_watched_redis(url: str, key: str | None, socket_timeout: float) -> QueueReading:
    """PING another Redis (a BullMQ queue's, say) and read the length of `key` by its TYPE; one connection."""
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout,
                                     socket_connect_timeout=socket_timeout, single_connection_client=True)
    try:
        started = time.perf_counter()
        await client.ping()
        latency_ms = (time.perf_counter() - started) * 1000
        if key is None:
            return QueueReading(latency_ms)
        kind = str(await client.type(key))
        if kind == "none":
            return QueueReading(latency_ms, kind, 0)
        if kind not in _LENGTH:
            raise WatchedRedisError(f"{key} is a {kind}, not a list, zset, stream or set")
        length = int(await _LENGTH[kind](client, key))
        return QueueReading(latency_ms, kind, length)
    except RedisTimeoutError:
        raise TimeoutError from None
    except RedisError as exc:
        raise WatchedRedisError(f"{exc.__class__.__name__}: {exc}") from None
    finally:
        await client.aclose()
