"""EventStream: the durable ingest stream, read by a consumer group."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.exceptions import ResponseError

from responder.events import Event
from responder.store.keys import Keys
from responder.store.redis import Redis

__all__ = ["Appended", "BacklogFull", "Delivery", "EventStream"]

# KEYS: stream, dedup key per event.  ARGV: maxlen, ttl_ms, engine group, then (event id, event json) per event.
# Dedup check and XADD happen in one script: a redelivery can never slip between them.
# MAXLEN trims the oldest entries, which must already be handled: when the engine group's backlog (entries not
# yet delivered + delivered but not acknowledged) reaches 90% of maxlen, the batch is refused instead.
_APPEND = """
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) == 'table' and not groups.err then
  for _, g in ipairs(groups) do
    local f = {}
    for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
    if f['name'] == ARGV[3] and type(f['lag']) == 'number' then
      local backlog = f['lag'] + (f['pending'] or 0)
      if backlog >= tonumber(ARGV[1]) * 0.9 then return {'full', tostring(backlog)} end
    end
  end
end
local out = {}
for i = 2, #KEYS do
  local id = ARGV[2 * i]
  local existing = redis.call('GET', KEYS[i])
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = '1'
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'id', id, 'e', ARGV[2 * i + 1])
    redis.call('SET', KEYS[i], id, 'PX', ARGV[2])
    out[#out + 1] = id
    out[#out + 1] = '0'
  end
end
return out
"""


class BacklogFull(Exception):
    """The engine is so far behind that appending would let the stream's length cap trim unhandled events:
    the webhook is refused (503) and its sender retries, instead of an accepted event being lost."""

    def __init__(self, backlog: int, maxlen: int) -> None:
        super().__init__(f"the engine is {backlog} events behind (engine.stream_maxlen {maxlen})")
        self.backlog = backlog


@dataclass(frozen=True)
class Appended:
    event_id: str
    duplicate: bool


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a consumer."""

    message_id: str
    event: Event | None  # None when the entry could not be decoded (it is dead-lettered)
    raw: dict[str, str]
    times_delivered: int = 1


@dataclass
class _Waiting:
    """One append() call waiting for the batch that carries its events."""

    events: list[Event]
    future: asyncio.Future[list[Appended]]
    entries: list[tuple[str, str, str]] = field(default_factory=list)  # (dedup key, event id, event json)


def _fail(batch: list[_Waiting], exc: Exception) -> None:
    for waiting in batch:
        if not waiting.future.done():
            waiting.future.set_exception(exc)


class EventStream:
    #: events per script call at most; a larger queue goes out in several calls
    BATCH_EVENTS = 256

    def __init__(self, redis: Redis, keys: Keys, *, maxlen: int = 100_000, dedup_ttl: timedelta = timedelta(days=1)):
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.dedup_ttl_ms = int(dedup_ttl.total_seconds() * 1000)
        self._append = redis.register_script(_APPEND)
        self._queue: deque[_Waiting] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, events: list[Event]) -> list[Appended]:
        """Append events unless their delivery id was seen within the dedup TTL (then return the old id).

        Group commit: the appends of concurrent callers (webhooks arriving together) go to Redis in one
        script call, each caller's events in order and together; a caller returns once its events are in the
        stream, exactly as with a call of its own. One call is in flight at a time; what arrives meanwhile
        rides the next one, so under load a call carries many webhooks and costs one round trip.
        """
        if not events:
            return []
        waiting = _Waiting(events, asyncio.get_running_loop().create_future(),
                           [(self.keys.dedup(e.delivery_id), e.id, e.model_dump_json()) for e in events])
        self._queue.append(waiting)
        if self._flusher is None or self._flusher.done():
            # its own task: a caller's cancellation (client gone) never affects the others' batch
            self._flusher = asyncio.create_task(self._flush(), name="event-stream-append")
        return await asyncio.shield(waiting.future)

    async def _flush(self) -> None:
        while self._queue:
            batch: list[_Waiting] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].events) <= self.BATCH_EVENTS):
                batch.append(self._queue.popleft())
                size += len(batch[-1].events)
            keys = [self.keys.events]
            args: list[str | int] = [self.maxlen, self.dedup_ttl_ms, self.keys.engine_group]
            for waiting in batch:
                for dedup_key, event_id, payload in waiting.entries:
                    keys.append(dedup_key)
                    args += [event_id, payload]
            try:
                flat = await self._append(keys=keys, args=args)
            except asyncio.CancelledError:  # the loop is shutting down: nobody is left to answer
                for waiting in [*batch, *self._queue]:
                    waiting.future.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # every caller of this batch sees the store's error
                _fail(batch, exc)
                continue
            if flat and flat[0] == "full":
                _fail(batch, BacklogFull(int(flat[1]), self.maxlen))
                continue
            offset = 0
            for waiting in batch:
                n = len(waiting.events)
                if not waiting.future.done():
                    waiting.future.set_result([Appended(str(flat[i]), flat[i + 1] == "1")
                                               for i in range(offset, offset + 2 * n, 2)])
                offset += 2 * n

    async def ensure_group(self, group: str) -> None:
        try:
            await self.redis.xgroup_create(self.keys.events, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _decode(self, message_id: str, fields: dict[str, str], times: int = 1) -> Delivery:
        try:
            event = Event.model_validate_json(fields["e"])
        except (KeyError, ValueError):
            event = None
        return Delivery(message_id, event, fields, times)

    async def read(self, group: str, consumer: str, *, count: int = 100, block_ms: int = 1000,
                   pending: bool = False, after: str = "0") -> list[Delivery]:
        """New entries for this consumer (or, with pending=True, its own unacknowledged ones after `after`)."""
        reply: Any = await self.redis.xreadgroup(group, consumer, {self.keys.events: after if pending else ">"},
                                                 count=count, block=None if pending or not block_ms else block_ms)
        out: list[Delivery] = []
        for _stream, entries in reply or []:
            for message_id, fields in entries:
                if fields:  # trimmed entries come back empty from a history read
                    out.append(self._decode(message_id, fields))
                else:
                    await self.ack(group, [message_id])
        return out

    async def claim_stale(self, group: str, consumer: str, *, min_idle_ms: int, count: int = 100) -> list[Delivery]:
        """Take over entries another consumer read but did not acknowledge for `min_idle_ms`."""
        reply = await self.redis.xautoclaim(self.keys.events, group, consumer, min_idle_ms, "0-0", count=count)
        entries = reply[1] if reply else []
        deleted = reply[2] if reply and len(reply) > 2 else []
        if deleted:
            await self.ack(group, list(deleted))
        out = []
        for message_id, fields in entries:
            if not fields:
                await self.ack(group, [message_id])
                continue
            info = await self.redis.xpending_range(self.keys.events, group, message_id, message_id, 1)
            times = int(info[0]["times_delivered"]) if info else 1
            out.append(self._decode(message_id, fields, times))
        return out

    async def ack(self, group: str, message_ids: list[str]) -> None:
        if message_ids:
            await self.redis.xack(self.keys.events, group, *message_ids)

    async def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        """Park an entry that keeps failing, with the reason, and acknowledge it."""
        fields: dict[Any, Any] = {**delivery.raw, "reason": reason[:500]}
        await self.redis.xadd(self.keys.dead_letters, fields, maxlen=10_000)
        await self.ack(group, [delivery.message_id])

    async def length(self) -> int:
        return int(await self.redis.xlen(self.keys.events))
