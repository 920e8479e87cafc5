"""Events per minute, read from the ingest stream itself: no counter on the write path.

A stream entry id starts with the Redis server's time in ms when it was added, so the ids alone say how
many events arrived in each minute. The stream is walked in chunks by a script that returns only the
per-minute counts (never the entries), so a page load costs a few short round trips and little transfer
even with a full stream. The stream keeps the last `engine.stream_maxlen` events: when it holds that
many, minutes before its oldest entry are incomplete, and `truncated` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["EventRate", "events_per_minute"]

MINUTE_MS = 60_000

# KEYS: 1 stream.  ARGV: 1 start id (exclusive when it starts with "("), 2 end id, 3 count, 4 origin ms.
# Returns {last id or '', entries seen, minute index, count, minute index, count, ...}.
_COUNT = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local origin = tonumber(ARGV[4])
local counts = {}
local order = {}
local last = ''
for _, entry in ipairs(entries) do
  last = entry[1]
  local ms = tonumber(string.match(last, '^(%d+)-'))
  local minute = math.floor((ms - origin) / 60000)
  if counts[minute] == nil then
    counts[minute] = 0
    order[#order + 1] = minute
  end
  counts[minute] = counts[minute] + 1
end
local out = {last, #entries}
for _, minute in ipairs(order) do
  out[#out + 1] = minute
  out[#out + 1] = counts[minute]
end
return out
"""


@dataclass(frozen=True)
class EventRate:
    """Counts per minute, oldest first; `start_ms` is the first minute's start (server time)."""

    start_ms: int
    counts: list[int]
    truncated: bool  # the stream was trimmed inside the window: its first minutes are incomplete

    @property
    def total(self) -> int:
        return sum(self.counts)


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def events_per_minute(redis: Redis, keys: Keys, *, minutes: int = 60, maxlen: int | None = None,
                            chunk: int = 5000) -> EventRate:
    """Accepted events per minute over the last `minutes` minutes, the current (partial) minute last."""
    now = await _server_ms(redis)
    start = (now // MINUTE_MS - minutes + 1) * MINUTE_MS
    counts = [0] * minutes
    script: Any = redis.register_script(_COUNT)
    cursor = str(start)
    scanned = 0
    while True:
        reply = await script(keys=[keys.events], args=[cursor, "+", chunk, start])
        last, seen = str(reply[0]), int(reply[1])
        for i in range(2, len(reply), 2):
            minute = int(reply[i])
            if 0 <= minute < minutes:
                counts[minute] += int(reply[i + 1])
        scanned += seen
        if seen < chunk or not last or (maxlen is not None and scanned > 2 * maxlen):
            break
        cursor = "(" + last
    truncated = False
    if maxlen is not None and await redis.xlen(keys.events) >= maxlen:
        first: Any = await redis.xrange(keys.events, "-", "+", count=1)
        truncated = bool(first) and int(str(first[0][0]).split("-")[0]) > start
    return EventRate(start, counts, truncated)
