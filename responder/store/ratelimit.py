"""TokenBuckets: token-bucket rate limits shared by every replica through Redis, failing open to in-process buckets.

A bucket holds up to `capacity` tokens and gains one every `interval_ms`; a request takes one token from each of
its buckets (its client address's, its source's) or, when any of them is empty, takes none and learns how long
until it would be served. A bucket is a hash {t: tokens, ms: when counted} that expires once it would be full
again (a missing bucket is a full one), so idle clients cost no memory.

Group commit, as EventStream.append: the checks of concurrent requests go to Redis in one script call, one call
in flight at a time; what arrives meanwhile rides the next one. Every key carries the {rl} hash tag, so a batch
touches one slot on a Redis Cluster.

The time is the app's clock (passed in as milliseconds), not Redis's: the fake clock of the tests drives the
refill. Replicas' clocks disagree by milliseconds; a bucket never refills backwards (a replica behind the last
writer's clock adds nothing until it catches up).

Redis unreachable, slow (over `timeout`) or erroring: the check is decided by an in-process copy of the buckets,
seeded from what Redis last answered, so limits go on holding per replica and an outage never turns into 429s
(or 5xx) for everyone. Redis is tried again at most every `retry_every` seconds meanwhile; the outage is logged
when it starts and when it ends, not per request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.logs import get_logger
from responder.store.redis import Redis

__all__ = ["Decision", "Limit", "TokenBuckets"]

log = get_logger(__name__)

# KEYS: the distinct buckets of the batch.  ARGV[1]: now (ms); then per check: its bucket count n, then n times
# (key index, capacity, ms per token).  Returns per check {allowed 1/0, retry after (ms), position of the bucket
# that refused (1-based, 0 when allowed), whole tokens left in its emptiest bucket}, then per key its tokens after
# the batch (text: Lua numbers come back truncated to integers).
_TAKE = """
local now = tonumber(ARGV[1])
local tokens, stamp, cap, per, dirty = {}, {}, {}, {}, {}
local function load(k, capacity, interval)
  if tokens[k] ~= nil then return end
  local v = redis.call('HMGET', KEYS[k], 't', 'ms')
  local t, ms = tonumber(v[1]), tonumber(v[2])
  if t == nil or ms == nil then
    t, ms = capacity, now
  elseif now > ms then
    t, ms = math.min(capacity, t + (now - ms) / interval), now
  end
  tokens[k], stamp[k], cap[k], per[k] = math.min(t, capacity), ms, capacity, interval
end
local out = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local ok, wait, refused, left = 1, 0, 0, -1
  for j = 0, n - 1 do
    local k = tonumber(ARGV[i + 1 + 3 * j])
    load(k, tonumber(ARGV[i + 2 + 3 * j]), tonumber(ARGV[i + 3 + 3 * j]))
    if tokens[k] < 1 then
      local until_ms = math.ceil((1 - tokens[k]) * per[k] + (stamp[k] - now))
      if ok == 1 then refused = j + 1 end
      ok = 0
      if until_ms > wait then wait = until_ms end
    end
  end
  for j = 0, n - 1 do
    local k = tonumber(ARGV[i + 1 + 3 * j])
    if ok == 1 then
      tokens[k] = tokens[k] - 1
      dirty[k] = true
    end
    local whole = math.floor(tokens[k])
    if left < 0 or whole < left then left = whole end
  end
  out[#out + 1] = ok
  out[#out + 1] = wait
  out[#out + 1] = refused
  out[#out + 1] = math.max(left, 0)
  i = i + 1 + 3 * n
end
for k = 1, #KEYS do
  if dirty[k] then
    redis.call('HSET', KEYS[k], 't', string.format('%.6f', tokens[k]), 'ms', stamp[k])
    redis.call('PEXPIRE', KEYS[k], math.ceil((cap[k] - tokens[k]) * per[k] + (stamp[k] - now)) + 1000)
  end
  out[#out + 1] = string.format('%.6f', tokens[k] or -1)
end
return out
"""


@dataclass(frozen=True)
class Limit:
    """`capacity` tokens at most (the burst), one more every `interval_ms` (requests per period: period / requests)."""

    capacity: int
    interval_ms: float

    @classmethod
    def of(cls, requests: int, per_seconds: float, burst: int | None = None) -> Limit:
        return cls(burst or requests, per_seconds * 1000 / requests)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: seconds until the refusing bucket has a token again (0 when allowed)
    retry_after: float
    #: position (in the buckets asked for) of the first bucket that refused; None when allowed
    refused_by: int | None
    #: whole tokens left in the emptiest bucket after this request
    remaining: int
    #: decided by the in-process buckets (Redis unreachable)
    local: bool = False


@dataclass
class _Waiting:
    buckets: Sequence[tuple[str, Limit]]
    future: asyncio.Future[Decision]


@dataclass
class _LocalBuckets:
    """The in-process copy: the last state Redis reported per key, and the whole state during an outage."""

    size: int
    state: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)  # key -> (tokens, at ms)

    def remember(self, key: str, tokens: float, now_ms: int) -> None:
        self.state[key] = (tokens, now_ms)
        self.state.move_to_end(key)
        while len(self.state) > self.size:
            self.state.popitem(last=False)

    def take(self, buckets: Sequence[tuple[str, Limit]], now_ms: int) -> Decision:
        current: list[tuple[float, int]] = []
        for key, limit in buckets:
            tokens, stamp = self.state.get(key, (float(limit.capacity), now_ms))
            if now_ms > stamp:
                tokens, stamp = tokens + (now_ms - stamp) / limit.interval_ms, now_ms
            current.append((min(tokens, float(limit.capacity)), stamp))
        refused: int | None = None
        wait = 0.0
        for position, ((tokens, stamp), (_key, limit)) in enumerate(zip(current, buckets, strict=True)):
            if tokens < 1:
                refused = position if refused is None else refused
                wait = max(wait, math.ceil((1 - tokens) * limit.interval_ms + (stamp - now_ms)))
        if refused is None:
            current = [(tokens - 1, stamp) for tokens, stamp in current]
        for (key, _limit), (tokens, stamp) in zip(buckets, current, strict=True):
            self.remember(key, tokens, stamp)
        remaining = max(0, min((math.floor(tokens) for tokens, _ in current), default=0))
        return Decision(refused is None, wait / 1000, refused, remaining, local=True)


class TokenBuckets:
    #: checks per script call at most; a longer queue goes out in several calls
    BATCH = 512

    def __init__(self, redis: Redis, *, now_ms: Callable[[], int], timeout: float = 0.5, retry_every: float = 1.0,
                 local_size: int = 10_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.now_ms = now_ms
        self.timeout = timeout
        self.retry_every = retry_every
        self.monotonic = monotonic
        self.local = _LocalBuckets(local_size)
        self._take = redis.register_script(_TAKE)
        self._queue: deque[_Waiting] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._outage_since: float | None = None  # monotonic time the current outage was noticed
        self._last_failure = 0.0

    @property
    def degraded(self) -> bool:
        """True while checks are decided in process (Redis failed and has not answered since)."""
        return self._outage_since is not None

    async def take(self, buckets: Sequence[tuple[str, Limit]]) -> Decision:
        """Take one token from every bucket, or none when any of them is empty (then say how long to wait)."""
        if not buckets:
            return Decision(True, 0.0, None, 0)
        if self._outage_since is not None and self.monotonic() - self._last_failure < self.retry_every:
            return self.local.take(buckets, self.now_ms())
        waiting = _Waiting(buckets, asyncio.get_running_loop().create_future())
        # a caller that gave up (timeout) no longer reads its future: its late error must not be reported unread
        waiting.future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append(waiting)
        if self._flusher is None or self._flusher.done():
            # its own task: a caller's cancellation (client gone) never affects the others' batch
            self._flusher = asyncio.create_task(self._flush(), name="rate-limit-take")
        try:
            return await asyncio.wait_for(asyncio.shield(waiting.future), self.timeout)
        except TimeoutError:
            self._failed(TimeoutError(f"no answer within {self.timeout}s"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any store failure: decide in process (fail open)
            self._failed(exc)
        return self.local.take(buckets, self.now_ms())

    def _failed(self, exc: BaseException) -> None:
        self._last_failure = self.monotonic()
        if self._outage_since is None:
            self._outage_since = self._last_failure
            log.warning("rate limits decided in process: Redis did not answer", error=exc.__class__.__name__,
                        detail=str(exc)[:200], retry_every_s=self.retry_every)

    def _recovered(self) -> None:
        if self._outage_since is not None:
            log.info("rate limits back in Redis", outage_s=round(self.monotonic() - self._outage_since, 1))
            self._outage_since = None

    async def _flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.BATCH, len(self._queue)))]
            index: dict[str, int] = {}
            args: list[str | int | float] = [0]
            for waiting in batch:
                args.append(len(waiting.buckets))
                for key, limit in waiting.buckets:
                    args += [index.setdefault(key, len(index) + 1), limit.capacity, limit.interval_ms]
            now = self.now_ms()
            args[0] = now
            try:
                reply: Any = await self._take(keys=list(index), args=args)
            except asyncio.CancelledError:  # the loop is shutting down: nobody is left to answer
                for waiting in [*batch, *self._queue]:
                    waiting.future.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # every caller of this batch decides in process
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                continue
            self._recovered()
            for position, waiting in enumerate(batch):
                ok, wait, refused, left = (int(v) for v in reply[4 * position:4 * position + 4])
                if not waiting.future.done():
                    waiting.future.set_result(Decision(bool(ok), wait / 1000, refused - 1 if refused else None,
                                                       left))
            offset = 4 * len(batch)
            for key, k in index.items():
                self.local.remember(key, float(reply[offset + k - 1]), now)
